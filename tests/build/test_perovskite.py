"""Perovskite cubes, cuboids, phases, core/shell, slabs: counts, charges, geometry, labels."""

import numpy as np
import pytest
from ase.io import read, write
from scipy.spatial import cKDTree

from qdlab.build import PerovskiteRecipe, SlabRecipe, build, summary
from qdlab.errors import BuildError


def _counts(atoms):
    return summary(atoms)["counts"]


# Published compositions (SCIENCE.md §1; seed 003 Table / seed 000 models)
@pytest.mark.parametrize("n,cs,pb,i", [(2, 19, 8, 36), (3, 56, 27, 108), (4, 117, 64, 240), (9, 992, 729, 2430)])
def test_cspbi3_corner_removal_compositions(n, cs, pb, i):
    atoms = build(PerovskiteRecipe(composition="CsPbI3", size=str(n), neutrality="surface-charge"))
    assert _counts(atoms) == {"Cs": cs, "I": i, "Pb": pb}
    assert abs(atoms.get_initial_charges().sum()) < 1e-9  # partial charges balance exactly
    assert atoms.info["charge"] == 0


@pytest.mark.parametrize("n,cs,pb,br", [(3, 54, 27, 108), (4, 112, 64, 240), (5, 200, 125, 450)])
def test_cspbbr3_remove_a_compositions(n, cs, pb, br):
    atoms = build(PerovskiteRecipe(composition="CsPbBr3", size=str(n)))
    assert _counts(atoms) == {"Br": br, "Cs": cs, "Pb": pb}
    assert len(atoms) == cs + pb + br


@pytest.mark.parametrize("size", ["1", "2", "3", "6", "7", "2x3x4", "4x4x6", "1x1x5"])
@pytest.mark.parametrize("neutrality", ["remove-a", "surface-charge", "electrons"])
def test_net_charge_zero_every_strategy(size, neutrality):
    dims = [int(s) for s in size.split("x")] * (3 if "x" not in size else 1)
    nx, ny, nz = dims
    if size == "1" and neutrality == "surface-charge":  # all 8 A are corners: nothing left to charge
        with pytest.raises(BuildError, match="no surface A left"):
            build(PerovskiteRecipe(composition="CsPbBr3", size=size, neutrality=neutrality))
        return
    atoms = build(PerovskiteRecipe(composition="CsPbBr3", size=size, neutrality=neutrality))
    c = _counts(atoms)
    # closed forms of SCIENCE.md §1 (independent of the lattice enumeration)
    assert c["Pb"] == nx * ny * nz
    assert c["Br"] == nx * ny * (nz + 1) + nx * (ny + 1) * nz + (nx + 1) * ny * nz
    surplus = (nx + 1) * (ny + 1) * (nz + 1) + 2 * c["Pb"] - c["Br"]
    n_removed = (nx + 1) * (ny + 1) * (nz + 1) - c.get("Cs", 0)
    formal = c.get("Cs", 0) + 2 * c["Pb"] - c["Br"]
    if neutrality == "remove-a":
        assert n_removed == surplus and formal == 0
        assert atoms.info["extra_electrons"] == 0
    else:
        assert n_removed == 8
    if neutrality == "electrons":
        assert atoms.info["extra_electrons"] == formal == surplus - 8
    assert atoms.info["charge"] == 0
    assert abs(atoms.get_initial_charges().sum() - atoms.info["extra_electrons"]) < 1e-9


def test_surface_charge_value_cspbi3():
    """q_surf = −(N_Pb q_Pb + N_I q_I + N_Cs,core q_Cs)/N_Cs,surf with seed 003's charges."""
    atoms = build(PerovskiteRecipe(composition="CsPbI3", size="3", neutrality="surface-charge"))
    n = 3
    n_core_cs = (n - 1) ** 3
    n_surf_cs = (n + 1) ** 3 - 8 - n_core_cs
    expected = -(27 * 0.85 + 108 * -0.57 + n_core_cs * 0.86) / n_surf_cs
    q = atoms.get_initial_charges()
    surf = (atoms.arrays["role"] == "A") & (atoms.arrays["depth"] == 0)
    assert surf.sum() == n_surf_cs
    np.testing.assert_allclose(q[surf], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(q[atoms.symbols == "Pb"], 0.85)
    np.testing.assert_allclose(q[(atoms.symbols == "Cs") & ~surf], 0.86)


def test_b_x_distances_half_lattice_in_cubic_cut():
    a = 5.95
    atoms = build(PerovskiteRecipe(size="4", lattice=a))
    b = atoms.positions[atoms.symbols == "Pb"]
    x = atoms.positions[atoms.symbols == "Br"]
    d, _ = cKDTree(x).query(b, k=7)
    np.testing.assert_allclose(d[:, :6], a / 2, atol=1e-9)  # complete octahedra at a/2
    assert (d[:, 6] > a / 2 + 1.0).all()


def test_orthorhombic_tilts_keep_complete_octahedra():
    a, tilt = 6.29, 10.0
    atoms = build(PerovskiteRecipe(composition="CsPbI3", size="4", phase="orthorhombic",
                                   tilt_deg=(tilt, tilt, tilt), neutrality="surface-charge"))
    pb = atoms.positions[atoms.symbols == "Pb"]
    i_pos = atoms.positions[atoms.symbols == "I"]
    d, idx = cKDTree(i_pos).query(pb, k=7)
    # rigid octahedra: Pb–I stays a/2 to within the second-order mismatch of shared corners
    np.testing.assert_allclose(d[:, :6], a / 2, atol=0.05)
    assert (d[:, 6] > a / 2 + 0.8).all()
    # Pb–I–Pb angles of inner bridges are bent well below 180° (cubic: exactly 180°)
    tree = cKDTree(pb)
    angles = []
    for x in i_pos:
        dd, jj = tree.query(x, k=2)
        if dd[1] < a / 2 + 0.1:
            v1, v2 = pb[jj[0]] - x, pb[jj[1]] - x
            angles.append(np.degrees(np.arccos(v1 @ v2 / np.linalg.norm(v1) / np.linalg.norm(v2))))
    angles = np.array(angles)
    assert 140 < angles.mean() < 170
    assert angles.max() < 179


def test_core_shell_counts_match_seed_004():
    atoms = build(PerovskiteRecipe(size="6", shell="Ca:1"))
    c = _counts(atoms)
    assert c["Ca"] == 152 and c["Pb"] == 64  # seed 004: 152 Ca in the shell, 64 Pb in the core
    assert atoms.info["charge"] == 0
    assert atoms.arrays["shell"][atoms.symbols == "Ca"].all()
    assert not atoms.arrays["shell"][atoms.symbols == "Pb"].any()


def test_depth_and_facet_labels():
    atoms = build(PerovskiteRecipe(size="5"))
    role, depth, facet = atoms.arrays["role"], atoms.arrays["depth"], atoms.arrays["facet"]
    # B sit at odd depths (½, 1½, 2½ cells) ; centre octahedron of a 5-cube at 2.5 cells
    assert set(depth[role == "B"]) == {1, 3, 5}
    assert (depth[role == "B"] == 5).sum() == 1
    # every surface X is an outward X on exactly one facet (6 n²)
    surf_x = (role == "X") & (depth == 0)
    assert surf_x.sum() == 6 * 25
    assert all(len(f) == 2 for f in facet[surf_x])
    # surface positions lie on the bounding planes of their facet
    pos = atoms.positions
    for f in ("-x", "+x"):
        sel = (facet == f) & (depth == 0)
        xs = pos[sel, 0]
        assert np.ptp(xs) < 1e-9
    assert (facet[depth >= 2] == "-").all()


def test_same_recipe_and_seed_identical_model(tmp_path):
    r = PerovskiteRecipe(size="4", ligands=["MA:0.3", "BzO:0.3"], seed=7)
    a, b = build(r), build(r)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.numbers, b.numbers)
    for key in ("role", "ligand_id", "depth", "facet", "motif"):
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key])
    c = build(r.model_copy(update={"seed": 8}))
    assert not np.array_equal(np.sort(a.positions[a.symbols == "Cs"], axis=0),
                              np.sort(c.positions[c.symbols == "Cs"], axis=0))


def test_extxyz_round_trip_keeps_labels_and_metadata(tmp_path):
    atoms = build(PerovskiteRecipe(size="3", ligands=["MA:0.5", "BzO:0.5"], neutrality="surface-charge"))
    path = tmp_path / "nc.extxyz"
    write(path, atoms)
    back = read(path)
    for key in ("role", "ligand", "ligand_id", "depth", "facet", "motif", "shell"):
        np.testing.assert_array_equal(back.arrays[key], atoms.arrays[key])
    np.testing.assert_allclose(back.get_initial_charges(), atoms.get_initial_charges())
    for key in ("recipe", "seed", "qdlab_version", "charge", "extra_electrons", "kind"):
        assert back.info[key] == atoms.info[key]
    assert '"neutrality": "surface-charge"' in back.info["recipe"]


def test_vacuum_and_nonperiodic():
    atoms = build(PerovskiteRecipe(size="3", vacuum=15.0))
    assert not atoms.pbc.any()
    span = np.ptp(atoms.positions, axis=0)
    np.testing.assert_allclose(atoms.cell.lengths(), span + 30.0)


def test_slab_periodic_and_neutral():
    a = 5.95
    atoms = build(SlabRecipe(size="2x3x4", lattice=a))
    assert list(atoms.pbc) == [True, True, False]
    c = _counts(atoms)
    assert c == {"Br": 6 * (3 * 4 + 1), "Cs": 6 * 5, "Pb": 6 * 4}  # Cs_{nz+1}Pb_{nz}Br_{3nz+1} per column
    np.testing.assert_allclose(atoms.cell.lengths()[:2], [2 * a, 3 * a])
    # periodic images keep complete octahedra: every Pb has 6 Br at a/2 under the minimum image
    from ase.neighborlist import neighbor_list

    i, d = neighbor_list("id", atoms, a / 2 + 0.01)
    pb = np.flatnonzero(atoms.symbols == "Pb")
    br_nb = np.bincount(i[np.isin(i, pb)], minlength=len(atoms))[pb]
    assert (br_nb == 6).all()


@pytest.mark.parametrize("kwargs,msg", [
    ({"size": "0"}, "at least 1"),
    ({"size": "3x0x3"}, "at least 1"),
    ({"size": "abc"}, "must be an integer"),
    ({"composition": "CsQqBr3"}, "unknown element"),
    ({"composition": "CsPbBr2"}, "ABX3"),
    ({"composition": "CsPbBr3", "shell": "Ca:3", "size": "4"}, "no core left"),
    ({"composition": "CsSnF3", "lattice": None}, "no default lattice"),
])
def test_bad_input_one_line_errors(kwargs, msg):
    with pytest.raises(BuildError, match=msg) as exc:
        build(PerovskiteRecipe(**kwargs))
    assert "\n" not in str(exc.value)
