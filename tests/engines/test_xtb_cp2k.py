"""Reference labellers on tiny systems: GFN2-xTB forces and frontier orbitals; CP2K availability."""

import shutil

import numpy as np
import pytest
from ase.build import molecule

from engines.conftest import fd_forces, rigid_motion
from qdlab.engines import get_calculator
from qdlab.errors import QdlabError


def test_xtb_forces_orbitals_invariance():
    m = molecule("CH3COOH")
    m.positions += np.random.default_rng(0).normal(scale=0.02, size=m.positions.shape)
    calc = get_calculator("xtb")
    m.calc = calc
    e = m.get_potential_energy()
    ref = fd_forces(m, get_calculator("xtb"), [0, 3], h=1e-3)
    assert np.abs(m.get_forces()[[0, 3]] - ref).max() < 1e-3
    assert calc.results["homo"] < calc.results["lumo"]
    b, R = rigid_motion(m)
    b.calc = get_calculator("xtb")
    assert abs(b.get_potential_energy() - e) < 1e-6


def test_cp2k_missing_executable_message():
    if shutil.which("cp2k_shell"):
        pytest.skip("cp2k is installed; the slow test covers it")
    with pytest.raises(QdlabError, match="apt-get install cp2k"):
        get_calculator("cp2k")
