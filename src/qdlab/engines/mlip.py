"""Pretrained universal ML potentials behind ASE's Calculator interface.

Weights that ship inside PyPI wheels: CHGNet (0.3.0 default, 0.2.0, r2scan) and SevenNet
(7net-0, 7net-l3i5, 7net-mf-0). Any of them, and MatterSim (seed 000's potential, whose weights
cannot be downloaded here), also load from a user checkpoint path. Each engine subclasses the
package's own calculator, so numbers are identical to it; qdlab adds a check of supported
elements before the first call and a NaN guard on the results.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator

from qdlab.errors import QdlabError

# CHGNet 0.4 converts a grad-requiring volume tensor on every call; harmless, but it floods logs
warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar",
                        category=UserWarning)

CHGNET_MODELS = ("0.3.0", "0.2.0", "r2scan")
SEVENN_MODELS = ("7net-0", "7net-l3i5", "7net-mf-0")


class EngineError(QdlabError):
    """An engine cannot be created or cannot handle a structure."""


def set_threads(threads: int | None) -> None:
    """Torch intra-op threads (None: leave as is)."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))


_ALLOCATOR_TUNED = False


def tune_allocator() -> bool:
    """Keep freed memory in the process heap (glibc ``mallopt``: mmap threshold fixed at 32 MiB,
    trim threshold and top pad 1 GiB). glibc's default adapts its mmap threshold upward only as
    blocks are freed, so torch tensors of a few hundred-atom graph are mmapped and unmapped again
    for several calls, each time page-faulted anew (measured for a 701-atom CHGNet call: 100–160k
    minor faults on many later calls, ~5k with this setting). One arena for threads created
    from now on (threads that already exist keep theirs: campaign workers also get
    ``MALLOC_ARENA_MAX=1`` at start, see :mod:`qdlab.campaign.cluster`). Once per process; False
    where glibc's mallopt is not available."""
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold, m_arena_max = -1, -2, -3, -8
        ok = all(libc.mallopt(opt, val) == 1 for opt, val in ((m_mmap_threshold, 32 << 20), (m_arena_max, 1),
                                                             (m_trim_threshold, 1 << 30), (m_top_pad, 1 << 30)))
    except (OSError, AttributeError):
        return False
    _ALLOCATOR_TUNED = ok
    return ok


def _resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise EngineError(f"device {device!r} requested but no CUDA device is available; use --device cpu")
    elif device != "cpu":
        raise EngineError(f"device must be cpu, cuda[:N] or auto, not {device!r}")
    return device


def boxed(atoms):
    """``atoms`` itself, or for a cell-less cluster a copy in a box with 15 Å of vacuum on each
    side (the packages build periodic graphs from the cell; a rigid translation, so energies,
    forces and Hessians do not change)."""
    if atoms.pbc.any() or abs(atoms.cell.volume) >= 1e-6:
        return atoms
    from qdlab.build.box import vacuum_box

    return vacuum_box(atoms, 15.0)


class _Guard:
    """Mixin: element check before, finite check after the wrapped calculator's calculate()."""

    supported_numbers: frozenset[int] = frozenset()
    engine_name = "engine"

    def calculate(self, atoms=None, properties=None, system_changes=None):  # type: ignore[override]
        target = atoms if atoms is not None else self.atoms
        bad = sorted(set(target.get_chemical_symbols()) - {s for s in _symbols(self.supported_numbers)})
        if bad and self.supported_numbers:
            raise EngineError(f"{self.engine_name} does not support element(s) {', '.join(bad)}")
        run_on = boxed(target)
        if run_on is target:
            run_on = atoms
        self._run(run_on, properties, system_changes)
        if run_on is not atoms:
            self.atoms = target.copy()  # cache against the caller's atoms, not the boxed copy
        for key in ("energy", "forces"):
            val = self.results.get(key)  # type: ignore[attr-defined]
            if val is not None and not np.all(np.isfinite(val)):
                raise EngineError(f"{self.engine_name} returned non-finite {key}")


    def _run(self, atoms, properties, system_changes) -> None:
        """Call the wrapped package calculator (next class in the MRO)."""
        kwargs = {}
        if properties is not None:
            kwargs["properties"] = properties
        if system_changes is not None:
            kwargs["system_changes"] = system_changes
        super().calculate(atoms, **kwargs)  # type: ignore[misc]


def _symbols(numbers) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[z] for z in numbers]


def chgnet_calculator(model: str = "0.3.0", checkpoint: str | os.PathLike | None = None,
                      device: str = "cpu") -> Calculator:
    """CHGNet (default engine). ``model`` one of 0.3.0, 0.2.0, r2scan; or a checkpoint path."""
    try:
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator
    except ImportError:
        raise EngineError("CHGNet is not installed: pip install chgnet==0.4.2 (after torch==2.13.0)") from None
    device = _resolve_device(device)
    tune_allocator()
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.exists():
            raise EngineError(f"CHGNet checkpoint {path} does not exist")
        net = CHGNet.from_file(str(path))
    else:
        if model not in CHGNET_MODELS:
            raise EngineError(f"unknown CHGNet model {model!r}; choose from {', '.join(CHGNET_MODELS)}")
        net = CHGNet.load(model_name=model, use_device=device, verbose=False)

    class CHGNetEngine(_Guard, CHGNetCalculator):
        """CHGNet that predicts only what is asked: energy + forces unless stress/magmoms are
        requested (the package calculator always runs task "efsm": measured 5× slower for the
        forces of a 189-atom cluster, 0.60 s vs 0.12 s, identical energies and forces)."""

        supported_numbers = frozenset(range(1, 95))
        engine_name = f"CHGNet {model if checkpoint is None else checkpoint}"

        def calculate(self, atoms=None, properties=None, system_changes=None):  # type: ignore[override]
            props = properties or ["energy", "forces"]
            self._task = "ef" + ("s" if "stress" in props else "") + ("m" if "magmoms" in props else "")
            super().calculate(atoms, props, system_changes)

        def _run(self, atoms, properties, system_changes):
            CHGNetCalculator.calculate(self, atoms, properties, system_changes, task=self._task)

        def get_forces_batch(self, frames, batch_size: int = 16) -> list[np.ndarray]:
            """Forces (eV/Å) of many structures in batched model calls (fast on a GPU)."""
            from pymatgen.io.ase import AseAtomsAdaptor

            graphs = [self.model.graph_converter(AseAtomsAdaptor.get_structure(a)) for a in frames]
            preds = self.model.predict_graph(graphs, task="ef", batch_size=batch_size)
            preds = preds if isinstance(preds, list) else [preds]
            return [np.asarray(p["f"], float) for p in preds]

        def get_hessian(self, atoms, rows_per_pass: int = 16) -> np.ndarray:
            """Analytic Hessian ∂²E/∂x∂x' (eV/Å², 3N × 3N, not symmetrised) by back-propagating
            through CHGNet's autograd forces (its force graph keeps ``create_graph=True``): one
            batched backward pass per ``rows_per_pass`` rows, no finite-difference noise."""
            import torch
            from chgnet.model.model import BatchedGraph
            from pymatgen.io.ase import AseAtomsAdaptor

            model = self.model
            model.eval()
            graph = model.graph_converter(AseAtomsAdaptor.get_structure(boxed(atoms))).to(self.device)
            bg = BatchedGraph.from_graphs([graph], bond_basis_expansion=model.bond_basis_expansion,
                                          angle_basis_expansion=model.angle_basis_expansion, compute_stress=False)
            pos = bg.atom_positions[0]
            minus_grad = model._compute(bg, compute_force=True)["f"][0].reshape(-1)  # forces = −∂E/∂x
            n3 = minus_grad.numel()
            hess = np.empty((n3, n3))
            for r0 in range(0, n3, rows_per_pass):
                rows = torch.arange(r0, min(r0 + rows_per_pass, n3))
                seeds = torch.zeros(len(rows), n3, dtype=minus_grad.dtype, device=minus_grad.device)
                seeds[torch.arange(len(rows)), rows] = 1.0
                (block,) = torch.autograd.grad(minus_grad, pos, grad_outputs=seeds, is_grads_batched=True,
                                               retain_graph=True)
                hess[r0:r0 + len(rows)] = -block.reshape(len(rows), n3).detach().cpu().numpy()
            if not np.all(np.isfinite(hess)):
                raise EngineError(f"{self.engine_name} returned a non-finite Hessian")
            return hess

    return CHGNetEngine(model=net, use_device=device, on_isolated_atoms="ignore")


def sevenn_calculator(model: str = "7net-0", checkpoint: str | os.PathLike | None = None,
                      device: str = "cpu", modal: str | None = None) -> Calculator:
    """SevenNet. ``model`` one of 7net-0, 7net-l3i5, 7net-mf-0 (needs ``modal``); or a checkpoint."""
    try:
        from sevenn.calculator import SevenNetCalculator
    except ImportError:
        raise EngineError("SevenNet is not installed: pip install sevenn==0.13.0 (after torch==2.13.0)") from None
    device = _resolve_device(device)
    tune_allocator()
    if checkpoint is not None:
        if not Path(checkpoint).exists():
            raise EngineError(f"SevenNet checkpoint {checkpoint} does not exist")
        src = str(checkpoint)
    else:
        if model not in SEVENN_MODELS:
            raise EngineError(f"unknown SevenNet model {model!r}; choose from {', '.join(SEVENN_MODELS)}")
        src = model
    if src == "7net-mf-0" and modal is None:
        modal = "PBE"

    class SevenNetEngine(_Guard, SevenNetCalculator):
        engine_name = f"SevenNet {src}"

    calc = SevenNetEngine(src, device=device, modal=modal)
    species = calc.sevennet_config.get("chemical_species") if hasattr(calc, "sevennet_config") else None
    if isinstance(species, (list, tuple)):
        from ase.data import atomic_numbers

        calc.supported_numbers = frozenset(atomic_numbers[s] for s in species if s in atomic_numbers)
    return calc


def mattersim_calculator(checkpoint: str | os.PathLike, device: str = "cpu") -> Calculator:
    """MatterSim from a checkpoint path (its weights cannot be downloaded here)."""
    try:
        from mattersim.forcefield import MatterSimCalculator, Potential
    except ImportError:
        raise EngineError("MatterSim is not installed: pip install --no-deps mattersim plus its requirements "
                          "(keeping torch==2.13.0)") from None
    if not Path(checkpoint).exists():
        raise EngineError(f"MatterSim checkpoint {checkpoint} does not exist")
    device = _resolve_device(device)
    tune_allocator()
    try:
        potential = Potential.from_checkpoint(str(checkpoint), device=device, load_training_state=False)
    except (KeyError, AssertionError, RuntimeError) as exc:
        raise EngineError(f"{checkpoint} is not a MatterSim (m3gnet) checkpoint: {exc}") from None

    class MatterSimEngine(_Guard, MatterSimCalculator):
        supported_numbers = frozenset(range(1, int(potential.model.model_args.get("max_z", 94)) + 1))
        engine_name = f"MatterSim {checkpoint}"

    return MatterSimEngine(potential=potential, device=device, compute_stress=False)
