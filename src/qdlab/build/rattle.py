"""Random displacements for training data (seed 000): magnitude ∝ covalent radius.

Each atom moves along a uniformly random direction by ``f × r_cov`` with ``f`` drawn uniformly
from the range of its class: ligand/organic atoms 10–15 %, inorganic core atoms 15–25 %
(SCIENCE.md §1). The class comes from the ``role`` label (``"ligand"`` = organic) when present,
otherwise from the element (H, B, C, N, O, F, P, S are organic).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import covalent_radii

from qdlab.errors import QdlabError

ORGANIC_ELEMENTS = {1, 5, 6, 7, 8, 9, 15, 16}


def rattle(atoms: Atoms, seed: int = 0, organic: tuple[float, float] = (0.10, 0.15),
           inorganic: tuple[float, float] = (0.15, 0.25), prerelax=None, fmax: float = 0.5,
           max_steps: int = 200) -> Atoms:
    """Return a rattled copy of ``atoms`` (labels and metadata kept).

    ``prerelax``: an ASE calculator; if given, the rattled structure is relaxed with L-BFGS until
    fmax < ``fmax`` eV/Å (at most ``max_steps`` steps) to avoid steric crowding.
    """
    for lo, hi in (organic, inorganic):
        if not 0 <= lo <= hi:
            raise QdlabError(f"rattle fraction range ({lo}, {hi}) must satisfy 0 ≤ low ≤ high")
    rng = np.random.default_rng(seed)
    out = atoms.copy()
    n = len(out)
    if "role" in out.arrays:
        is_org = out.arrays["role"] == "ligand"
    else:
        is_org = np.isin(out.numbers, list(ORGANIC_ELEMENTS))
    lo = np.where(is_org, organic[0], inorganic[0])
    hi = np.where(is_org, organic[1], inorganic[1])
    frac = rng.uniform(lo, hi)
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    out.positions += direction * (frac * covalent_radii[out.numbers])[:, None]
    out.info["rattle_seed"] = int(seed)
    if prerelax is not None:
        from ase.optimize import LBFGS

        out.calc = prerelax
        LBFGS(out, logfile=None).run(fmax=fmax, steps=max_steps)
        out.calc = None
    return out


def gaussian_rattle(atoms: Atoms, sigma_A: float, seed: int | None = 0) -> Atoms:
    """A copy of ``atoms`` with seeded Gaussian displacements of standard deviation ``sigma_A`` Å
    per Cartesian component (the relax workflow's rattle, which lets the optimiser leave the
    saddle point of a symmetric cut); ``sigma_A`` = 0 gives an unchanged copy."""
    if sigma_A < 0:
        raise QdlabError(f"rattle amplitude must be ≥ 0 Å, not {sigma_A}")
    out = atoms.copy()
    if sigma_A > 0:
        rng = np.random.default_rng(int(seed or 0))
        out.positions += rng.normal(0.0, sigma_A, out.positions.shape)
    return out
