"""Fit-then-held-out machinery (qdlab.workflows.gap_fit) with a stand-in "DFT": tight binding with another
Harrison exponent (η = 3 instead of the set's 2). The fit on rattles must recover η = 3 and then reproduce
the stand-in's gap changes on the held-out normal-mode geometries. The real CP2K numbers are in
benchmarks/bench_tb_vs_dft.py (--rattles)."""

import numpy as np
import pytest
from ase import Atoms

from qdlab.errors import QdlabError
from qdlab.workflows.gap_fit import fit_on_rattles, held_out_table, rattle_geometries, run_rattles
from qdlab.workflows.gap_validation import GapValidationSettings, plan_validation, run_validation


def _cluster():
    axes = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    a = Atoms("PbBr6Cs2", positions=np.vstack([[0, 0, 0], 2.95 * axes, [[4.5, 4.5, 4.5], [-4.5, -4.5, -4.5]]]))
    a.positions[1] += [0.05, 0.02, 0.0]
    return a


def _stand_in():
    from qdlab.electronic.tb.cluster import TightBinding

    tb = TightBinding("CsPbBr3-kashikar", soc=False, eta=3.0)
    calls = []

    def dft(g, restart):
        calls.append(g.name)
        return {"gap_eV": tb.solve(g.atoms, 1).gap_eV, "seconds": 0.0}
    return dft, calls


def test_rattles_are_seeded_and_sized():
    a = _cluster()
    g1, g2 = rattle_geometries(a, 3, 0.05, 7), rattle_geometries(a, 3, 0.05, 7)
    assert [g.name for g in g1] == ["r0", "r1", "r2"]
    assert all(np.array_equal(x.atoms.positions, y.atoms.positions) for x, y in zip(g1, g2))
    d = np.concatenate([g.atoms.positions - a.positions for g in rattle_geometries(a, 40, 0.05, 7)])
    assert d.std() == pytest.approx(0.05, rel=0.1)   # 1080 N(0, σ²) samples: σ within 10 %
    with pytest.raises(QdlabError):
        rattle_geometries(a, 0)


def test_fit_on_rattles_recovers_eta_and_validates_held_out(tmp_path):
    from qdlab.workflows.phonons import vibrational_analysis

    a = _cluster()
    settings = GapValidationSettings(modes=(0, 5), amplitude_A=0.1, soc=False)
    dft, calls = _stand_in()
    geoms = rattle_geometries(a, 4, 0.05, 11)
    part = run_rattles(geoms, tmp_path / "train", settings, dft=dft, max_new=2)
    assert sorted(part) == ["r0", "r1"] and calls == ["r0", "r1"]
    recs = run_rattles(geoms, tmp_path / "train", settings, dft=dft)
    assert calls == ["r0", "r1", "r2", "r3"]                      # resumed, not recomputed
    ref_gap = dft(geoms[0].__class__("ref", "reference", None, 0, a), None)["gap_eV"]
    fit = fit_on_rattles(a, ref_gap, geoms, recs, settings, ("eta",))
    assert fit.values[0] == pytest.approx(3.0, abs=1e-3)          # the stand-in's exponent
    assert fit.summary()["train"]["fitted"]["rmse_meV"] < 1e-2

    k = np.random.default_rng(1).normal(size=(27, 27))
    freq, modes, _ = vibrational_analysis(k @ k.T + 27 * np.eye(27), a.get_masses(), a.positions, True)
    val = run_validation(a, freq, modes, a.get_masses(), tmp_path / "val", settings, dft=dft)
    import json
    records = json.loads((tmp_path / "val" / "records.json").read_text())["records"]
    plan, chosen = plan_validation(a, freq, modes, a.get_masses(), settings)
    chars = {c.index: c for c in chosen}
    untuned = held_out_table(plan, chars, records, settings, fit.params.with_changes(eta=2.0))
    assert untuned.summary() == val.summary()                     # recomputing TB with the base set = the run
    fitted = held_out_table(plan, chars, records, settings, fit.params)
    for row in fitted.rows:
        assert row.tb_delta_eV == pytest.approx(row.dft_delta_eV, abs=1e-5)
    assert fitted.summary()["n_pass"] == 4


def test_stale_training_folder_is_refused(tmp_path):
    a = _cluster()
    settings = GapValidationSettings(soc=False)
    dft, _ = _stand_in()
    run_rattles(rattle_geometries(a, 1, 0.05, 1), tmp_path, settings, dft=dft)
    (tmp_path / "r0" / "record.json").unlink()
    with pytest.raises(QdlabError, match="another geometry"):
        run_rattles(rattle_geometries(a, 1, 0.05, 2), tmp_path, settings, dft=dft)


def test_pb_edge_reruns_training_records_without_the_edge_and_fits_on_it(tmp_path):
    """Switching to ``dft_gap="pb-edge"`` reruns rattles whose record has no edge gap, and the fit then
    uses the edge gap (here the stand-in's edge is its η = 3 gap, its plain gap a constant)."""
    a = _cluster()
    dft, calls = _stand_in()
    geoms = rattle_geometries(a, 3, 0.05, 5)
    run_rattles(geoms, tmp_path, GapValidationSettings(soc=False), dft=dft)
    edge = GapValidationSettings(soc=False, dft_gap="pb-edge")

    def dft_edge(g, restart):
        calls.append("edge-" + g.name)
        return {"gap_eV": 1.0, "edge_gap_eV": dft(g, restart)["gap_eV"]}

    recs = run_rattles(geoms, tmp_path, edge, dft=dft_edge)
    assert calls[3:] == ["edge-r0", "r0", "edge-r1", "r1", "edge-r2", "r2"]
    ref_gap = dft(geoms[0].__class__("ref", "reference", None, 0, a), None)["gap_eV"]
    assert fit_on_rattles(a, ref_gap, geoms, recs, edge, ("eta",)).values[0] == pytest.approx(3.0, abs=1e-3)
    n = len(calls)
    run_rattles(geoms, tmp_path, edge, dft=dft_edge)
    assert len(calls) == n                                          # complete records are reused


def test_periodic_rattles_fit_eta_at_gamma(tmp_path):
    """``periodic=True``: rattles of a 2×2×2 CsPbBr3 supercell stay periodic, the TB side is the Γ gap of the
    cell, and the fit recovers the stand-in's η = 3 (stand-in DFT: TB Γ gap with η = 3)."""
    from qdlab.electronic.tb.cluster import TightBinding

    prim = Atoms("PbBr3Cs", scaled_positions=[[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]],
                 cell=np.eye(3) * 5.98, pbc=True)
    a = prim * (2, 2, 2)
    settings = GapValidationSettings(soc=False, periodic=True)
    stand_in = TightBinding("CsPbBr3-kashikar", soc=False, eta=3.0)
    geoms = rattle_geometries(a, 4, 0.05, 11, periodic=True)
    assert all(np.all(g.atoms.pbc) for g in geoms)
    recs = run_rattles(geoms, tmp_path, settings, dft=lambda g, r: {"gap_eV": stand_in.gap_eV(g.atoms), "seconds": 0.0})
    fit = fit_on_rattles(a, stand_in.gap_eV(a), geoms, recs, settings, ("eta",))
    assert fit.values[0] == pytest.approx(3.0, abs=1e-3)
    assert fit.summary()["train"]["initial"]["rmse_meV"] > 0.5 > 100 * fit.summary()["train"]["fitted"]["rmse_meV"]
