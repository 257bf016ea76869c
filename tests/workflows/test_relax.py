"""Relaxation: convergence, frozen atoms, restart after interruption, labels kept."""

import numpy as np
import pytest

from qdlab.build import PerovskiteRecipe, build
from qdlab.engines import get_calculator
from qdlab.errors import QdlabError
from qdlab.workflows.relax import relax


@pytest.fixture(scope="module")
def cube():
    return build(PerovskiteRecipe(composition="CsPbI3", size="2", neutrality="surface-charge"))


@pytest.mark.parametrize("opt", ["lbfgs", "fire", "bfgs"])
def test_converges_and_keeps_labels(cube, opt):
    res = relax(cube, get_calculator("classical"), optimizer=opt, fmax=0.05, steps=2000)
    assert res.converged and res.fmax_eV_A < 0.05
    a = res.atoms.copy()
    a.calc = get_calculator("classical")
    assert np.sqrt((a.get_forces() ** 2).sum(1)).max() < 0.05  # independent re-evaluation
    assert res.energy_eV < -100
    for key in ("role", "depth", "facet", "ligand_id"):
        np.testing.assert_array_equal(res.atoms.arrays[key], cube.arrays[key])
    assert res.atoms.info["recipe"] == cube.info["recipe"]


def test_frozen_atoms_do_not_move(cube):
    res = relax(cube, get_calculator("classical"), fmax=0.05, steps=500, fix="element=Pb|role=A&depth=0")
    frozen = (cube.symbols == "Pb") | ((cube.arrays["role"] == "A") & (cube.arrays["depth"] == 0))
    assert res.n_fixed == frozen.sum() > 0
    np.testing.assert_array_equal(res.atoms.positions[frozen], cube.positions[frozen])
    assert np.abs(res.atoms.positions[~frozen] - cube.positions[~frozen]).max() > 0.01


def test_restart_from_trajectory(cube, tmp_path):
    traj = tmp_path / "relax.traj"
    calc = get_calculator("classical")
    first = relax(cube, calc, fmax=0.001, steps=5, trajectory=traj)  # "interrupted" after 5 steps
    assert not first.converged and traj.exists()
    second = relax(cube, calc, fmax=0.002, steps=3000, trajectory=traj)
    assert second.restarted_from_step >= 5
    full = relax(cube, calc, fmax=0.002, steps=3000)
    assert second.converged and second.energy_eV == pytest.approx(full.energy_eV, abs=1e-3)
    other = build(PerovskiteRecipe(composition="CsPbI3", size="3", neutrality="surface-charge"))
    with pytest.raises(QdlabError, match="different structure"):
        relax(other, calc, trajectory=traj)


def test_bad_input(cube):
    with pytest.raises(QdlabError, match="optimizer"):
        relax(cube, get_calculator("classical"), optimizer="sd")
    with pytest.raises(QdlabError, match="selection key"):
        relax(cube, get_calculator("classical"), fix="colour=red")
