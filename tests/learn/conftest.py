"""Shared fixtures of the learning tests: a tiny CsPbI3 cluster with classical labels, and the
shared CP2K reference set (tests that need it skip when it is absent)."""

import os
from pathlib import Path

import pytest

from qdlab.build import PerovskiteRecipe, build, rattle
from qdlab.engines import get_calculator
from qdlab.engines.classical import LJCoulomb
from qdlab.store.db import provenance, set_labels

CP2K_DATA = Path(os.environ.get("QDLAB_CP2K_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"
                                / "cspbbr3_416_cp2k_100.extxyz"))


class Counting(LJCoulomb):
    """Classical engine that counts its calculations and, after ``stop_after`` of them, stops the
    run the way a kill would (KeyboardInterrupt: an interruption, not a failed frame)."""

    def __init__(self, stop_after=None, **kw):
        super().__init__(**kw)
        self.calls = 0
        self.stop_after = stop_after

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        super().calculate(atoms, properties, system_changes or ["positions"])


def classical_frames(n: int, seed0: int = 0):
    """``n`` rattled 2×2×2 CsPbI3 clusters (63 atoms) labelled with the classical force field."""
    cube = build(PerovskiteRecipe(composition="CsPbI3", size="2", neutrality="surface-charge"))
    calc = get_calculator("classical")
    frames = []
    for s in range(seed0, seed0 + n):
        a = rattle(cube, seed=s)
        a.calc = calc
        e, f = a.get_potential_energy(), a.get_forces()
        a.calc = None
        frames.append(provenance(set_labels(a, e, f, engine="classical"), source="rattle"))
    return frames


@pytest.fixture(scope="session")
def cube():
    return build(PerovskiteRecipe(composition="CsPbI3", size="2", neutrality="surface-charge"))


@pytest.fixture(scope="session")
def tiny_set():
    """6 labelled rattled clusters: 4 train, 1 val, 1 test."""
    frames = classical_frames(6)
    for a, split in zip(frames, ["train"] * 4 + ["val", "test"]):
        a.info["split"] = split
    return frames


@pytest.fixture(scope="session")
def cp2k_path():
    if not CP2K_DATA.exists():
        pytest.skip(f"shared CP2K reference data {CP2K_DATA} not available")
    return CP2K_DATA
