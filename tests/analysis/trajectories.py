"""Shared fixtures and helpers for the trajectory analyses: small labelled models and rattled frames.

A plain module, not a conftest.py: a second ``conftest`` module name would shadow tests/conftest.py for
``from conftest import ...`` in other test folders. Test modules import the fixtures they use.
"""

import numpy as np
import pytest

from qdlab.build import PbSRecipe, PerovskiteRecipe, build


def rattled_frames(atoms, n_frames, scale, seed=0, dt_fs=50.0):
    """Copies of ``atoms`` with Gaussian displacements (σ = ``scale`` Å) and info['time_fs']."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_frames):
        b = atoms.copy()
        b.positions += rng.normal(scale=scale, size=b.positions.shape)
        b.info["time_fs"] = k * dt_fs
        out.append(b)
    return out


@pytest.fixture(scope="session")
def cube():
    """CsPbBr3 3×3×3 (Cs54Pb27Br108, 189 atoms), Cs–Br terminated, with depth labels."""
    return build(PerovskiteRecipe(size="3"))


@pytest.fixture(scope="session")
def cube_frames(cube):
    return rattled_frames(cube, 6, 0.12, seed=1)


@pytest.fixture(scope="session")
def pbs():
    """Seed 001's model: Pb19S6 octahedron capped by 26 acetates."""
    return build(PbSRecipe(size=2, ligand="OAc"))


@pytest.fixture(scope="session")
def pbs_frames(pbs):
    return rattled_frames(pbs, 5, 0.08, seed=2)


def mda_universe(positions, atoms, box=None):
    """An MDAnalysis Universe over the given frames (MemoryReader, float32 as MDAnalysis stores them)."""
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    u = mda.Universe.empty(len(atoms), trajectory=True)
    sym = np.array(atoms.get_chemical_symbols(), dtype=object)
    u.add_TopologyAttr("name", sym)
    u.add_TopologyAttr("type", sym)
    u.add_TopologyAttr("masses", atoms.get_masses())
    u.load_new(np.asarray(positions, np.float32), format=MemoryReader, order="fac", dimensions=box)
    return u
