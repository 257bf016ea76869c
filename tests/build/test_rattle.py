"""Rattling ∝ covalent radius (seed 000)."""

import numpy as np
from ase.data import covalent_radii

from qdlab.build import PerovskiteRecipe, build, rattle


def test_rattle_magnitudes_and_labels():
    atoms = build(PerovskiteRecipe(size="3", ligands=["MA:0.5", "BzO:0.5"]))
    out = rattle(atoms, seed=1)
    disp = np.linalg.norm(out.positions - atoms.positions, axis=1)
    frac = disp / covalent_radii[atoms.numbers]
    org = atoms.arrays["role"] == "ligand"
    assert frac[org].min() >= 0.10 - 1e-12 and frac[org].max() <= 0.15 + 1e-12
    assert frac[~org].min() >= 0.15 - 1e-12 and frac[~org].max() <= 0.25 + 1e-12
    # uniform fractions fill their ranges; directions isotropic (mean displacement ≈ 0)
    assert frac[~org].max() - frac[~org].min() > 0.09
    mean_dir = ((out.positions - atoms.positions) / disp[:, None]).mean(0)
    assert np.linalg.norm(mean_dir) < 0.1
    np.testing.assert_array_equal(out.arrays["role"], atoms.arrays["role"])
    assert out.info["recipe"] == atoms.info["recipe"]
    np.testing.assert_array_equal(rattle(atoms, seed=1).positions, out.positions)
    assert not np.array_equal(rattle(atoms, seed=2).positions, out.positions)


def test_rattle_prerelax_with_calculator():
    from ase.calculators.emt import EMT
    from ase.cluster import Icosahedron

    cu = Icosahedron("Cu", 2)
    out = rattle(cu, seed=0, prerelax=EMT(), fmax=0.5)
    out.calc = EMT()
    assert np.linalg.norm(out.get_forces(), axis=1).max() < 0.5  # ASE's fmax criterion
    assert np.abs(out.positions - cu.positions).max() > 0.01  # it was rattled
