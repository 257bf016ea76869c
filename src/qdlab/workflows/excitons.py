"""Exciton fine structure of nanocrystals: states near the gap → BSE kernel → excitons.

plan → evaluate → assemble, as every long workflow:
- :func:`plan_excitons` lists the units (one structure each: a size and phase of the seed 003 series);
- :func:`evaluate_exciton_unit` runs one unit with checkpoints in ``workdir``: converged states
  (``<name>.states.npz``), the bare BSE kernels (``<name>.kernel.npz``) and the result
  (``<name>.excitons.json``), each written atomically and reused when the inputs match;
- :func:`assemble_excitons` collects the rows (gap, lowest exciton ⟨S²⟩, bright–dark and bright
  splittings) in size order.
:func:`rescreen` reruns the BSE with another ε from the stored kernels (no states recomputed), and
:func:`basis_series` solves it on smaller bases from the same kernel (convergence in the basis size).
Energies in eV, lengths in Å at this boundary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from pydantic import BaseModel, Field

from qdlab.electronic.bse import (EPS_CSPBI3, BSEKernel, Excitons, build_kernel, check_kernel_size,
                                  fine_structure, solve_bse)
from qdlab.electronic.pseudopotential.engine import GridStates, StatesSettings, nanocrystal_states
from qdlab.electronic.pseudopotential.params import HARTREE_EV
from qdlab.errors import QdlabError
from qdlab.store.files import atomic_path, write_text


#: BSE basis when none is asked: the seed's 60 (of 60–80) electron and hole states, or all there are.
DEFAULT_BSE_STATES = 60


class ExcitonSettings(BaseModel):
    """Settings of the exciton workflow (shared by CLI, API and a campaign step ``excitons``).

    ``n_electrons``/``n_holes`` None: min(states available, 60) (seed 003 used 60–80). Screening:
    isotropic ``eps`` (default 4.9, the truncated bare kernel) unless ``eps_xyz`` is given, which
    uses the seed's erf-split kernel with the anisotropic q̃² (``coulomb="split"`` is implied).
    """

    states: StatesSettings = Field(default_factory=StatesSettings)
    n_electrons: int | None = Field(None, ge=1, description="electron spinor states in the BSE (None: ≤ 60)")
    n_holes: int | None = Field(None, ge=1, description="hole spinor states in the BSE (None: ≤ 60)")
    eps: float = Field(EPS_CSPBI3, gt=0, description="static (high-frequency) dielectric constant")
    eps_xyz: tuple[float, float, float] | None = Field(None, description="anisotropic ε_x, ε_y, ε_z")
    coulomb: str = Field("truncated", pattern="^(truncated|split)$", description="cluster Coulomb kernel")
    max_memory_GB: float = Field(16.0, gt=0, description="refuse a BSE kernel above this estimate")
    broadening_eV: float = Field(0.01, gt=0)

    def bse_sizes(self, n_empty: int, n_occupied: int) -> tuple[int, int]:
        """(electrons, holes) in the BSE given the states available."""
        return (min(n_empty, self.n_electrons or DEFAULT_BSE_STATES),
                min(n_occupied, self.n_holes or DEFAULT_BSE_STATES))


@dataclass(frozen=True)
class ExcitonUnit:
    """One structure of a series: its name (checkpoint stem) and atoms (Å)."""

    name: str
    atoms: Atoms


def plan_excitons(structures: dict[str, Atoms]) -> list[ExcitonUnit]:
    """Units of work, one per named structure (smallest first)."""
    return [ExcitonUnit(k, v) for k, v in sorted(structures.items(), key=lambda kv: len(kv[1]))]


def save_kernel(k: BSEKernel, path: Path, key: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, key=key, **{f: getattr(k, f) for f in BSEKernel.__dataclass_fields__})


def load_kernel(path: Path, key: str | None = None) -> BSEKernel | None:
    """The stored kernel (None when unreadable or, with ``key``, built from other inputs)."""
    try:
        with np.load(path) as z:
            if key is not None and str(z["key"]) != key:
                return None
            return BSEKernel(**{f: z[f] for f in BSEKernel.__dataclass_fields__ if f in z.files})
    except (OSError, KeyError, ValueError):
        return None


def kernel_from_states(gs: GridStates, n_electrons: int, n_holes: int, coulomb: str = "truncated",
                       eps_xyz: tuple[float, float, float] | None = None) -> BSEKernel:
    """BSE kernels on the lowest ``n_electrons`` and highest ``n_holes`` states (Hartree); the direct
    term bare, or screened by ``eps_xyz`` through the split kernel."""
    st = gs.states
    occ = np.flatnonzero(st.occupied)[::-1][:n_holes]
    emp = np.flatnonzero(~st.occupied)[:n_electrons]
    e = st.energies_eV / HARTREE_EV
    if eps_xyz is not None:
        coulomb = "split"
    return build_kernel(gs.psi[emp], gs.psi[occ], e[emp], e[occ], gs.cell_B, gs.dV,
                        coulomb=coulomb, eps_xyz=eps_xyz)


def splits_multiplet(gs: GridStates, n_electrons: int, n_holes: int, tol_eV: float = 1e-3) -> bool:
    """True when the BSE basis cuts through a degenerate set of states (results then depend on
    which partners were kept: choose n_electrons/n_holes that close the multiplets)."""
    e, occ = gs.states.energies_eV, gs.states.occupied
    ev, ec = np.sort(e[occ])[::-1], np.sort(e[~occ])
    cut_v = len(ev) > n_holes and abs(ev[n_holes] - ev[n_holes - 1]) < tol_eV
    cut_c = len(ec) > n_electrons and abs(ec[n_electrons] - ec[n_electrons - 1]) < tol_eV
    return bool(cut_v or cut_c)


def evaluate_exciton_unit(unit: ExcitonUnit, settings: ExcitonSettings, workdir: str | Path,
                          progress=None) -> dict:
    """States, kernel and excitons of one structure; every stage checkpointed in ``workdir``."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    st = settings.states
    s = st.model_copy(update={"n_below": max(st.n_below, settings.n_holes or 0),
                              "n_above": max(st.n_above, settings.n_electrons or 0)})
    gs = nanocrystal_states(unit.atoms, s, checkpoint=work / f"{unit.name}.states.npz", progress=progress)
    occ = gs.states.occupied
    nc, nv = settings.bse_sizes(int((~occ).sum()), int(occ.sum()))
    cost = check_kernel_size(int(np.prod(gs.psi.shape[2:])), nc, nv, settings.max_memory_GB)
    coulomb = "split" if settings.eps_xyz is not None else settings.coulomb
    key = f"{gs.states.info['key']}:{nc}:{nv}:{coulomb}:{settings.eps_xyz}"
    kpath = work / f"{unit.name}.kernel.npz"
    kernel = load_kernel(kpath, key) if kpath.exists() else None
    if kernel is None:
        kernel = kernel_from_states(gs, nc, nv, coulomb, settings.eps_xyz)
        save_kernel(kernel, kpath, key)
    exc = solve_bse(kernel, settings.eps)
    row = result_row(unit, gs, exc)
    row.update({"n_electrons": nc, "n_holes": nv, "coulomb": coulomb, "eps_xyz": settings.eps_xyz,
                "kernel_estimate": cost, "splits_multiplet": splits_multiplet(gs, nc, nv)})
    write_text(work / f"{unit.name}.excitons.json", json.dumps(row, indent=2, default=float))
    return row


def result_row(unit: ExcitonUnit, gs: GridStates, exc: Excitons, n_show: int = 12) -> dict:
    st = gs.states
    return {"name": unit.name, "formula": unit.atoms.get_chemical_formula(), "n_atoms": len(unit.atoms),
            "gap_eV": st.gap_eV, "homo_eV": st.homo_eV, "lumo_eV": st.lumo_eV, "eps": exc.eps,
            "optical_gap_eV": float(exc.energies_eV[0]), "binding_eV": float(exc.binding_eV[0]),
            "energies_eV": exc.energies_eV[:n_show].tolist(), "s2": exc.s2[:n_show].tolist(),
            "oscillator_xyz": exc.oscillator[:n_show].tolist(), **fine_structure(exc),
            "grid": st.info.get("grid"), "states_seconds": st.info.get("seconds_total", st.info.get("seconds")),
            "w_ortho_mean": st.info.get("w_ortho_mean")}


def assemble_excitons(rows: list[dict]) -> list[dict]:
    """Rows in size order (number of atoms)."""
    return sorted(rows, key=lambda r: r["n_atoms"])


def stored_kernel(workdir: str | Path, name: str) -> BSEKernel:
    """The BSE kernel :func:`evaluate_exciton_unit` saved for ``name`` in ``workdir`` (one-line error if none)."""
    path = Path(workdir) / f"{name}.kernel.npz"
    kernel = load_kernel(path)
    if kernel is None:
        raise QdlabError(f"no readable BSE kernel at {path}")
    return kernel


def solve_screened(kernel: BSEKernel, eps: float | None = None) -> Excitons:
    """BSE of a stored kernel with isotropic ``eps`` (None: 4.9, CsPbI3 ε∞). A kernel built with anisotropic
    ``eps_xyz`` already holds its screened direct term: it is solved as stored (``eps`` must be None);
    another ε needs the direct integrals again (:func:`evaluate_exciton_unit`)."""
    if kernel.anisotropic and eps is not None:
        raise QdlabError("this kernel was screened with anisotropic eps_xyz; rerun the unit with the new ε "
                         "(the states are reused, the direct integrals are recomputed)")
    return solve_bse(kernel, EPS_CSPBI3 if eps is None else eps)


def basis_series(kernel: BSEKernel, sizes, eps: float | None = None, tol_eV: float = 1e-3) -> list[dict]:
    """BSE basis convergence from one kernel: for each k in ``sizes`` the fine structure
    (:func:`~qdlab.electronic.bse.fine_structure`, energies eV, splittings meV) on the lowest k electron and
    highest k hole states — subsets of the stored integrals, so the series costs no new ones. The optical gap
    is the lowest exciton's energy, as in the unit's row (the first bright one is ``bright_eV[0]``).
    ``cuts_multiplet``: the k-th and (k+1)-th electron or hole states are degenerate within ``tol_eV``
    (a basis that keeps part of a Kramers pair or multiplet; its row depends on which partner was kept).
    ``eps`` as in :func:`solve_screened`."""
    n_c, n_v = len(kernel.e_c), len(kernel.e_v)
    bad = [k for k in sizes if not 1 <= int(k) <= min(n_c, n_v)]
    if bad:
        raise QdlabError(f"basis size {bad[0]} outside 1…{min(n_c, n_v)} (the kernel holds {n_c} electron and "
                         f"{n_v} hole states)")
    tol = tol_eV / HARTREE_EV
    rows = []
    for k in sorted({int(k) for k in sizes}):
        exc = solve_screened(kernel.subset(k, k), eps)
        fs = fine_structure(exc)
        cut = any(k < len(e) and abs(e[k] - e[k - 1]) < tol for e in (kernel.e_c, kernel.e_v))
        rows.append({"k": k, "optical_gap_eV": fs["lowest_eV"], **fs, "cuts_multiplet": bool(cut)})
    return rows


def rescreen(workdir: str | Path, name: str, eps: float | None = None) -> Excitons:
    """BSE with another isotropic ε from the stored bare kernels of ``name`` (no states recomputed;
    ``eps`` as in :func:`solve_screened`)."""
    return solve_screened(stored_kernel(workdir, name), eps)


def run_series(structures: dict[str, Atoms], settings: ExcitonSettings, workdir: str | Path,
               progress=None) -> list[dict]:
    """Plan, evaluate every unit serially (resumable), assemble."""
    return assemble_excitons([evaluate_exciton_unit(u, settings, workdir, progress)
                              for u in plan_excitons(structures)])
