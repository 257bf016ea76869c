"""Small workflows run as a separate process by test_kill_writers.py and SIGKILLed at random
moments: ``python kill_targets.py TARGET FOLDER``. Each resumes from what it finds in FOLDER and
writes ``FOLDER/result.npz`` when it finishes. Engines are slowed down on purpose (a sleep per
call) so that a kill lands inside the work, not only in Python's start-up."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np


def _model():
    from qdlab.build import PerovskiteRecipe, build

    return build(PerovskiteRecipe(composition="CsPbI3", size="1", neutrality="electrons"))


class SlowPointCharges:
    """Dipole source μ = Σ q_i r_i (e·Å) of the model's formal charges, 20 ms per structure."""

    name = "slow-point-charges"

    def dipoles(self, atoms, positions: np.ndarray) -> np.ndarray:
        q = atoms.get_initial_charges()
        out = []
        for x in positions:
            time.sleep(0.02)
            out.append(q @ x)
        return np.array(out)


def born(folder: Path) -> None:
    from qdlab.analysis.ir_harmonic import born_charges

    z = born_charges(_model(), SlowPointCharges(), checkpoint=folder / "born.npz")
    _finish(folder, z=z)


def slow_lj():
    """ASE's Lennard-Jones with a 5 ms sleep per call (an outside ``module:factory`` engine)."""
    from ase.calculators.lj import LennardJones

    class Slow(LennardJones):
        def calculate(self, *a, **k):
            time.sleep(0.005)
            super().calculate(*a, **k)

    return Slow(sigma=3.0, epsilon=0.01, rc=8.0)


def committee(folder: Path) -> None:
    from qdlab.workflows.committee import EngineChoice, committee_phonons

    members = [EngineChoice(name="classical"), EngineChoice(name="kill_targets:slow_lj")]
    res = committee_phonons({"nc": _model()}, members, folder / "units", method="fd")
    _finish(folder, **{f"f{k}": v for k, v in enumerate(res.frequencies_cm1["nc"].values())})


def kernel(folder: Path) -> None:
    """The exciton checkpoint writer (``save_kernel``) rewriting a 3.7 MB kernel in a loop, alternating
    two versions; ``load_kernel`` must then give one of them or None (→ recompute), never a torn one."""
    from qdlab.electronic.bse import BSEKernel
    from qdlab.workflows.excitons import save_kernel

    fields = BSEKernel.__dataclass_fields__
    for it in range(10_000):
        v = it % 2
        k = BSEKernel(**{f: _kernel_field(f, v) for f in fields})
        save_kernel(k, folder / "kernel.npz", key=f"v{v}")


def _kernel_field(name: str, version: int):
    import zlib

    rng = np.random.default_rng(zlib.crc32(name.encode()) + version)  # the same in every process
    return rng.normal(size=(16, 16, 16, 16)) + version


def _finish(folder: Path, **arrays) -> None:
    from qdlab.store.files import atomic_path

    with atomic_path(folder / "result.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    globals()[sys.argv[1]](Path(sys.argv[2]))
