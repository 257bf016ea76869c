"""Tight binding: bulk checks against published gaps, solver cross-checks, couplings, bad input.

Independent references: Nestoklon's bulk gap at R, 1.018 eV (his paper's TB; SCIENCE §7); Kashikar's
no-SOC gap of CsPbBr3 at R, 2.16 eV; the volume deformation potential measured independently
(SCIENCE §7: +2.0 eV for η = 2, +3.0 eV for η = 3 with the CsPbI3 set); the j-splitting 3λ of
2λ L·S (analytic); dense ``numpy.linalg.eigh`` for the sparse solver; finite differences for the
Hellmann–Feynman gradient.
"""

import json

import numpy as np
import pytest

from qdlab.build import PerovskiteRecipe, build
from qdlab.electronic import BandEdgeEngine
from qdlab.electronic.tb.bulk import bulk_bands, cubic_cell, gamma_edges
from qdlab.electronic.tb.cluster import TightBinding, solve, weights_by
from qdlab.electronic.tb.coupling import LinearGapModel, gap_gradient
from qdlab.electronic.tb.hamiltonian import prepare
from qdlab.electronic.tb.params import load_params
from qdlab.electronic.tb.slater_koster import soc_matrix
from qdlab.errors import QdlabError


def _nc(n, comp="CsPbBr3", a=5.98, rattle=0.0, seed=0, **kw):
    atoms = build(PerovskiteRecipe(size=str(n), composition=comp, lattice=a, seed=seed, **kw))
    if rattle:
        atoms.positions += np.random.default_rng(seed).normal(0, rattle, atoms.positions.shape)
    return atoms


def test_soc_matrix_splits_p_shell_by_three_lambda():
    ev = np.linalg.eigvalsh(soc_matrix())
    assert np.allclose(ev, [-2, -2, 1, 1, 1, 1])


def test_nestoklon_cspbi3_gap_at_R():
    b = bulk_bands(load_params("CsPbI3-nestoklon"), n_per_segment=4)
    assert b.gap_R_eV == pytest.approx(1.018, abs=0.005)
    assert b.gap_path_eV == pytest.approx(b.gap_R_eV, abs=1e-9)       # direct gap at R
    for carrier in ("electron", "hole"):
        m = b.masses_me[carrier]
        assert 0.05 < m["100"] < 1.0
        assert m["111"] == pytest.approx(m["100"], rel=0.02)           # j = 1/2 bands are isotropic


def test_kashikar_cspbbr3_gaps_settle_the_lambda_convention():
    p = load_params("CsPbBr3-kashikar")
    assert bulk_bands(p, soc=False, n_per_segment=2).gap_R_eV == pytest.approx(2.16, abs=0.005)
    soc = bulk_bands(p, n_per_segment=2).gap_R_eV
    assert 2.16 - soc == pytest.approx(2 * 0.53, abs=0.005)           # j = 1/2 CB lowered by 2λ


@pytest.mark.parametrize("soc", [False, True])
def test_gamma_gap_of_a_2x2x2_supercell_is_the_gap_at_R(soc):
    """Band folding (analytic): R = (½,½,½) of the cubic cell is a reciprocal-lattice vector of the 2×2×2
    supercell, so the supercell's Γ edges are the primitive cell's R edges (to round-off)."""
    p = load_params("CsPbBr3-kashikar")
    prim = bulk_bands(p, soc=soc, n_per_segment=2)
    vb, cb = gamma_edges(cubic_cell(p) * (2, 2, 2), p, soc=soc)
    assert vb == pytest.approx(prim.vbm_R_eV, abs=1e-9) and cb == pytest.approx(prim.cbm_R_eV, abs=1e-9)
    vb1, cb1 = gamma_edges(cubic_cell(p), p, soc=soc)       # the primitive cell's Γ is not its gap
    assert cb1 - vb1 > prim.gap_R_eV + 1.0
    with pytest.raises(QdlabError, match="3D-periodic"):
        gamma_edges(_nc(1), p)


@pytest.mark.parametrize("eta,expected", [(2.0, 2.0), (3.0, 3.0)])
def test_volume_deformation_potential(eta, expected):
    p = load_params("CsPbI3-nestoklon").with_changes(eta=eta)
    a, h = p.bulk["a_A"], 0.002
    g = [bulk_bands(p, cubic_cell(p, a * (1 + s * h)), n_per_segment=2).gap_R_eV for s in (-1, 1)]
    assert (g[1] - g[0]) / (3 * 2 * h) == pytest.approx(expected, rel=0.05)


def test_sparse_shift_invert_equals_dense_eigh():
    atoms = _nc(3, rattle=0.03)
    sys = prepare(atoms, load_params("CsPbBr3-kashikar"))
    dense, sparse = solve(sys, 6, dense=True), solve(sys, 6, dense=False)
    assert sparse.gap_eV == pytest.approx(dense.gap_eV, abs=1e-8)
    for e in dense.energies_eV:
        assert np.min(np.abs(sparse.energies_eV - e)) < 1e-8
    assert sparse.energies_eV[sparse.homo_index] == pytest.approx(dense.energies_eV[dense.homo_index], abs=1e-8)


def test_cluster_gap_approaches_bulk_from_above():
    eng = TightBinding("CsPbBr3-kashikar")
    gaps = [eng.states(_nc(n), 4).gap_eV for n in (2, 3, 4)]
    bulk = bulk_bands(load_params("CsPbBr3-kashikar"), n_per_segment=2).gap_R_eV
    assert gaps[0] > gaps[1] > gaps[2] > bulk
    assert gaps[2] - bulk < 1.0


def test_states_interface_weights_and_ipr():
    atoms = _nc(2, ligands=["MA:0.5"])
    eng = TightBinding()
    assert isinstance(eng, BandEdgeEngine)
    st = eng.states(atoms, 4)
    assert np.allclose(st.atom_weights.sum(axis=1), 1.0)
    ignored = np.isin(atoms.get_chemical_symbols(), ["Cs", "C", "N", "H"])
    assert np.all(st.atom_weights[:, ignored] == 0)
    by_el = weights_by(st.atom_weights, atoms.get_chemical_symbols())
    assert by_el["Pb"][st.occupied].mean() < by_el["Br"][st.occupied].mean()   # VBM: Br p
    assert by_el["Pb"][~st.occupied].mean() > 0.5                              # CBM: Pb p
    n_tb = st.info["n_tb_atoms"]
    assert np.all(st.ipr() >= 1.0 / n_tb - 1e-12) and np.all(st.ipr() <= 1.0)


def test_hellmann_feynman_gradient_matches_finite_differences():
    atoms = _nc(2, rattle=0.05, seed=1)
    eng = TightBinding()
    sol = eng.solve(atoms, 4)
    gh, gl = gap_gradient(sol, len(atoms))
    rng = np.random.default_rng(2)
    for _ in range(2):
        u = rng.normal(size=atoms.positions.shape)
        u /= np.linalg.norm(u)
        d = 1e-4
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions += d * u
        minus.positions -= d * u
        fd = (eng.solve(plus, 4).gap_eV - eng.solve(minus, 4).gap_eV) / (2 * d)
        assert np.sum((gl - gh) * u) == pytest.approx(fd, abs=1e-6)
    model = LinearGapModel.from_solution(atoms, sol)
    moved = atoms.copy()
    moved.positions += 0.005 * rng.normal(size=atoms.positions.shape)
    moved.rotate(30, "z", center="COM")
    assert model.gap(moved.positions) == pytest.approx(eng.solve(moved, 4).gap_eV, abs=5e-3)


def test_bad_input_one_line_errors(tmp_path):
    atoms = _nc(1)
    sn = atoms.copy()
    sn[[a.index for a in sn if a.symbol == "Pb"][0]].symbol = "Sn"
    with pytest.raises(QdlabError, match="unsupported element"):
        TightBinding("CsPbBr3-kashikar").states(sn)
    lonely = atoms[[a.index for a in atoms if a.symbol != "Pb"]]
    with pytest.raises(QdlabError, match="no Pb–Br network"):
        TightBinding("CsPbBr3-kashikar").states(lonely)
    raw = load_params("CsPbI3-nestoklon").to_dict()
    raw["onsite_eV"]["Pb"].pop("p")
    (tmp_path / "a.json").write_text(json.dumps(raw))
    with pytest.raises(QdlabError, match="missing entry onsite_eV.Pb.p"):
        load_params(tmp_path / "a.json")
    raw = load_params("CsPbI3-nestoklon").to_dict()
    raw["bonds"][0]["V_eV"]["pp_pi"] = float("nan")
    (tmp_path / "b.json").write_text(json.dumps(raw))
    with pytest.raises(QdlabError, match="finite"):
        load_params(tmp_path / "b.json")


def test_cacabr3_shell_is_a_type_one_barrier():
    # seed 004: the CBM of CsPbBr3/CsCaBr3 has ~1.7 % of its density on Ca; the core/shell gap is that of
    # the bare core (the shell confines like vacuum)
    eng = TightBinding("CsPbBr3-kashikar")
    cs = _nc(4, shell="Ca:1")
    st = eng.states(cs, 2)
    by_el = weights_by(st.atom_weights, cs.get_chemical_symbols())
    lumo = int(np.argmin(np.where(st.occupied, np.inf, st.energies_eV)))
    homo = int(np.argmax(np.where(st.occupied, st.energies_eV, -np.inf)))
    assert by_el["Ca"][lumo] < 0.1 and by_el["Ca"][homo] < 0.1
    core = eng.states(_nc(2), 2).gap_eV
    assert st.gap_eV == pytest.approx(core, abs=0.15)


def test_octahedral_tilts_open_the_gap():
    # the known sign (orthorhombic lead halides have wider gaps than cubic at equal Pb–X bonds): the
    # direction cosines carry it; the builder keeps Pb–X lengths while tilting (a⁻a⁻c⁺)
    eng = TightBinding()
    gaps = [eng.states(_nc(2, "CsPbI3", a=6.29, **({"phase": "orthorhombic", "tilt_deg": (t, t, t)} if t else {})), 2).gap_eV
            for t in (0, 8, 15)]
    assert gaps[0] < gaps[1] < gaps[2]
