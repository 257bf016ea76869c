"""LJ + Coulomb: LAMMPS agreement, −∇E, invariances, analytic pairs."""

import numpy as np
import pytest
from ase import Atoms

from engines.conftest import fd_forces, rigid_motion
from qdlab.build import PerovskiteRecipe, build
from qdlab.engines import get_calculator
from qdlab.engines.classical import COULOMB, SEED003_LJ, LJCoulomb
from qdlab.errors import QdlabError


@pytest.fixture(scope="module")
def cube():
    return build(PerovskiteRecipe(composition="CsPbI3", size="3", neutrality="surface-charge"))


def test_agrees_with_lammps(cube):
    """pair_style lj/cut/coul/cut, all pairs: energy to 1e-6 relative, forces to 1e-5 eV/Å."""
    from qdlab.engines.lammps_peer import lj_coulomb_lammps

    ref = lj_coulomb_lammps(cube, SEED003_LJ)
    a = cube.copy()
    a.calc = LJCoulomb()
    e = a.get_potential_energy()
    assert abs(e - ref.energy) / abs(ref.energy) < 1e-6
    assert np.abs(a.get_forces() - ref.forces).max() < 1e-5


def test_forces_are_minus_gradient(cube):
    calc = LJCoulomb()
    rng = np.random.default_rng(0)
    a = cube.copy()
    a.positions += rng.normal(scale=0.05, size=a.positions.shape)
    a.calc = calc
    idx = [0, 5, 60, 150]
    ref = fd_forces(a, LJCoulomb(), idx, h=1e-4)
    dev = np.abs(a.get_forces()[idx] - ref).max()
    assert dev < 1e-5  # measured ~1e-8 eV/Å (central differences, h = 1e-4 Å)


def test_rigid_motion_invariance(cube):
    a = cube.copy()
    a.calc = LJCoulomb()
    b, R = rigid_motion(cube)
    b.calc = LJCoulomb()
    assert abs(a.get_potential_energy() - b.get_potential_energy()) < 1e-9 * abs(a.get_potential_energy())
    np.testing.assert_allclose(b.get_forces(), a.get_forces() @ R.T, atol=1e-9)


def test_pair_analytic():
    s, eps = SEED003_LJ["I"]
    for r in (3.5, 2 ** (1 / 6) * s, 6.0):
        d = Atoms("I2", positions=[[0, 0, 0], [0, 0, r]])
        d.set_initial_charges([0.3, -0.5])
        d.calc = LJCoulomb()
        e_ref = 4 * eps * ((s / r) ** 12 - (s / r) ** 6) + COULOMB * 0.3 * -0.5 / r
        f_ref = 4 * eps * (12 * s ** 12 / r ** 13 - 6 * s ** 6 / r ** 7) + COULOMB * 0.3 * -0.5 / r ** 2
        assert d.get_potential_energy() == pytest.approx(e_ref, rel=1e-12)
        np.testing.assert_allclose(d.get_forces()[1], [0, 0, f_ref], rtol=1e-12, atol=1e-14)
    # per-atom energies split each pair in halves
    np.testing.assert_allclose(d.get_potential_energies(), [e_ref / 2] * 2)


def test_block_sizes_agree(cube):
    from qdlab.engines.classical import lj_coulomb

    sym = cube.get_chemical_symbols()
    sig = np.array([SEED003_LJ[x][0] for x in sym])
    eps = np.array([SEED003_LJ[x][1] for x in sym])
    q = cube.get_initial_charges()
    e1, f1, _ = lj_coulomb(cube.positions, sig, eps, q, block=7)
    e2, f2, _ = lj_coulomb(cube.positions, sig, eps, q, block=1000)
    assert e1 == pytest.approx(e2, rel=1e-12)
    np.testing.assert_allclose(f1, f2, atol=1e-10)


def test_errors():
    a = Atoms("Au2", positions=[[0, 0, 0], [0, 0, 3]])
    a.calc = get_calculator("classical")
    with pytest.raises(QdlabError, match="no parameters for Au"):
        a.get_potential_energy()
    with pytest.raises(QdlabError, match="unknown engine"):
        get_calculator("vasp9")
