"""TB-vs-DFT normal-mode comparison machinery: mode descriptors on analytic displacements, selection,
checkpointed run/assemble with a stand-in gap code (the real CP2K run is benchmarks/bench_tb_vs_dft.py)."""

import json

import numpy as np
import pytest
from ase import Atoms

from qdlab.errors import QdlabError
from qdlab.workflows.gap_validation import (GapValidationSettings, mode_characters, plan_validation, run_validation,
                                           select_modes)


def _octahedron(d=2.95):
    """Ideal PbBr6 + 2 Cs far away (Cs weight test)."""
    axes = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    pos = np.vstack([[0, 0, 0], d * axes, [[4.5, 4.5, 4.5], [-4.5, -4.5, -4.5]]])
    return Atoms("PbBr6Cs2", positions=pos)


def _mass_weighted(u, m):
    e = u * np.sqrt(m)[:, None]
    return e / np.linalg.norm(e)


def test_mode_descriptors_on_rotation_breathing_and_cs_motion():
    a = _octahedron()
    m = a.get_masses()
    r = a.positions
    rot = np.zeros_like(r)
    rot[1:7] = np.cross([0, 0, 1.0], r[1:7])          # rigid rotation of the octahedron about z
    breathe = np.zeros_like(r)
    breathe[1:7] = r[1:7] / np.linalg.norm(r[1:7], axis=1)[:, None]   # every Pb–Br bond stretches by 1
    cs = np.zeros_like(r)
    cs[7:] = [[1, 0, 0], [-1, 0, 0]]
    modes = np.array([_mass_weighted(u, m) for u in (rot, breathe, cs)])
    ch = mode_characters(a, np.array([10.0, 100.0, 20.0]), modes, m)
    # rotation: all Pb-relative Br motion is ω × r, no bond-length change (first order)
    assert ch[0].rotation == pytest.approx(1.0, abs=1e-9) and ch[0].stretch == pytest.approx(0.0, abs=1e-12)
    # breathing: unit bond change per Å of largest displacement, no rotation
    assert ch[1].stretch == pytest.approx(1.0, abs=1e-12) and ch[1].rotation == pytest.approx(0.0, abs=1e-12)
    # Cs-only motion: all eigenvector weight on Cs
    assert ch[2].cs_weight == pytest.approx(1.0, abs=1e-12) and ch[2].stretch == pytest.approx(0.0, abs=1e-12)
    chosen = select_modes(ch)
    assert chosen["rotation"] == 0 and chosen["stretch"] == 1 and len(chosen) == 3   # one mode per character


def test_bridge_angle_rate_matches_finite_geometry():
    # Pb–Br–Pb bridge bent by moving the bridge Br sideways: dθ/dx = −2·(180/π)/d at 180° is 0 to first
    # order; at a 160° bridge the analytic rate is d/dx of 2·atan2(d·cos(10°)... checked by finite difference
    d = 2.95
    half = np.radians(80.0)
    a = Atoms("PbPbBr", positions=[[-d * np.sin(half), 0, 0], [d * np.sin(half), 0, 0], [0, d * np.cos(half), 0]])
    m = a.get_masses()
    u = np.zeros((3, 3))
    u[2] = [0, 1.0, 0]
    ch = mode_characters(a, np.array([50.0]), _mass_weighted(u, m)[None], m)[0]
    h = 1e-4

    def angle(y):
        v1, v2 = a.positions[0] - [0, y, 0], a.positions[1] - [0, y, 0]
        return np.degrees(np.arccos(v1 @ v2 / np.linalg.norm(v1) / np.linalg.norm(v2)))

    y0 = a.positions[2, 1]
    assert ch.bridge_deg_per_A == pytest.approx((angle(y0 + h) - angle(y0 - h)) / (2 * h), rel=1e-5)


def test_run_validation_checkpoints_and_assembles(tmp_path):
    from qdlab.electronic.tb.cluster import TightBinding
    from qdlab.workflows.phonons import vibrational_analysis

    a = _octahedron()
    a.positions[1] += [0.05, 0.02, 0.0]    # break the symmetry a little
    rng = np.random.default_rng(1)
    k = rng.normal(size=(27, 27))
    freq, modes, _ = vibrational_analysis(k @ k.T + 27 * np.eye(27), a.get_masses(), a.positions, True)
    settings = GapValidationSettings(modes=(0, 5), amplitude_A=0.1, soc=False)
    tb = TightBinding("CsPbBr3-kashikar", soc=False, eta=3.0)   # a stand-in "DFT": TB with another distance law
    calls = []

    def fake(g, restart):
        calls.append(g.name)
        return {"gap_eV": tb.solve(g.atoms, 1).gap_eV, "seconds": 0.0}

    part = run_validation(a, freq, modes, a.get_masses(), tmp_path, settings, dft=fake, max_new=2)
    assert calls == ["ref", "m0p"] and [r.name for r in part.rows] == ["m0p"]   # partial table of what is finished
    res = run_validation(a, freq, modes, a.get_masses(), tmp_path, settings, dft=fake)
    assert calls == ["ref", "m0p", "m5p", "m0m", "m5m"]
    rec = json.loads((tmp_path / "records.json").read_text())["records"]
    for row in res.rows:   # ΔE are differences of the recorded gaps; ratio and sign follow from them
        assert row.dft_delta_eV == pytest.approx(rec[row.name]["dft"]["gap_eV"] - rec["ref"]["dft"]["gap_eV"], abs=1e-12)
        assert row.ratio == pytest.approx(row.tb_delta_eV / row.dft_delta_eV)
        assert res.passes(row) == (row.sign_agrees and abs(row.ratio - 1) <= 0.3)
    plan, _ = plan_validation(a, freq, modes, a.get_masses(), settings)
    disp = np.linalg.norm(plan[1].atoms.positions - plan[0].atoms.positions, axis=1)
    assert disp.max() == pytest.approx(0.1, abs=1e-12)   # amplitude = largest atomic displacement
    res2 = run_validation(a, freq, modes, a.get_masses(), tmp_path, settings, dft=lambda g, r: 1 / 0)  # all resumed
    assert res2.summary() == res.summary()
    assert "| 0 |" in res.table() and res.summary()["n_rows"] == 4
    # another TB set (here: the stand-in's own η = 3) reuses every DFT record and recomputes TB only
    res3 = run_validation(a, freq, modes, a.get_masses(), tmp_path, settings.model_copy(update={"params": str(
        _eta3_file(tmp_path))}), dft=lambda g, r: 1 / 0)
    assert all(r.tb_delta_eV == pytest.approx(r.dft_delta_eV, abs=1e-9) for r in res3.rows) and res3.summary()["n_pass"] == 4


def _eta3_file(tmp_path):
    from qdlab.electronic.tb.params import load_params

    p = tmp_path / "eta3.json"
    p.write_text(json.dumps(load_params("CsPbBr3-kashikar").with_changes(eta=3.0).to_dict()))
    return p


def test_bad_mode_index_is_refused():
    a = _octahedron()
    m = a.get_masses()
    modes = np.zeros((1, len(a), 3))
    modes[0, 1, 0] = 1.0
    with pytest.raises(QdlabError, match="out of range"):
        plan_validation(a, np.array([10.0]), modes, m, GapValidationSettings(modes=(3,)))


def test_evaluate_dft_runs_reuses_and_resumes(tmp_path):
    """evaluate_dft with a stand-in executable that writes a stored real CP2K output excerpt."""
    import os
    from pathlib import Path

    from qdlab.engines.cp2k_mo import read_cp2k_mos
    from qdlab.workflows.gap_validation import GapGeometry, evaluate_dft

    data = Path(__file__).parents[1] / "engines" / "data" / "cp2k_pbbr2_mos.out"
    exe = tmp_path / "fake_cp2k"
    exe.write_text(f"#!/bin/sh\necho run >> runs.log\ncp {data} gap.out\n")
    os.chmod(exe, 0o755)
    settings = GapValidationSettings(command=str(exe))
    g = GapGeometry("m1p", "stretch", 1, 1, _octahedron())
    (tmp_path / "m1p").mkdir()
    (tmp_path / "m1p" / "gap-RESTART.wfn").write_text("x")    # an interrupted earlier run of this geometry
    rec = evaluate_dft(g, tmp_path, settings, restart=str(tmp_path / "ref" / "gap-RESTART.wfn"))
    inp = (tmp_path / "m1p" / "gap.inp").read_text()
    assert f"WFN_RESTART_FILE_NAME {tmp_path / 'm1p' / 'gap-RESTART.wfn'}" in inp   # resumes from its own wavefunction
    assert rec["gap_eV"] == pytest.approx(read_cp2k_mos(data)[0].gap_eV) and rec["converged"] and rec["scf_steps"] == 17
    evaluate_dft(g, tmp_path, settings)               # finished output: reused, not rerun
    assert (tmp_path / "m1p" / "runs.log").read_text().count("run") == 1
    with pytest.raises(QdlabError, match="not found"):
        evaluate_dft(GapGeometry("x", "x", 0, 1, _octahedron()), tmp_path, GapValidationSettings(command="/no/cp2k"))


def test_evaluate_dft_pb_edge_prints_pdos_and_reruns_an_output_without_it(tmp_path):
    """``dft_gap="pb-edge"``: the input asks for &PDOS with 16 empty MOs, a finished output without PDOS
    files is rerun, and the record holds the gap to the first Pb-derived MO (stand-in executable that
    writes a stored real CP2K run of Cs7Pb2Br11)."""
    import os
    from pathlib import Path

    from qdlab.engines.cp2k_mo import edge_gap, read_cp2k_pdos
    from qdlab.workflows.gap_validation import GapGeometry, dft_gap_of, evaluate_dft

    data = Path(__file__).parents[1] / "engines" / "data" / "cp2k_cs7pb2br11"
    exe = tmp_path / "fake_cp2k"
    exe.write_text(f"#!/bin/sh\necho run >> runs.log\ncp {data}/gap.out {data}/gap-k1-1.pdos {data}/gap-k2-1.pdos "
                   f"{data}/gap-k3-1.pdos .\n")
    os.chmod(exe, 0o755)
    plain = GapValidationSettings(command=str(exe))
    edge = GapValidationSettings(command=str(exe), dft_gap="pb-edge")
    g = GapGeometry("ref", "reference", None, 0, _octahedron())
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "gap.out").write_text((data / "gap.out").read_text())   # finished, but without PDOS
    rec0 = evaluate_dft(g, tmp_path, plain)
    assert not (tmp_path / "ref" / "runs.log").exists() and "edge_gap_eV" not in rec0
    with pytest.raises(QdlabError, match="without PDOS"):
        dft_gap_of(rec0, edge)
    rec = evaluate_dft(g, tmp_path, edge)
    inp = (tmp_path / "ref" / "gap.inp").read_text()
    assert "&PDOS" in inp and "ADDED_MOS 16" in inp and (tmp_path / "ref" / "runs.log").read_text().count("run") == 1
    want = edge_gap(read_cp2k_pdos(data))["edge_gap_eV"]
    assert dft_gap_of(rec, edge) == pytest.approx(want) and dft_gap_of(rec, plain) == pytest.approx(rec0["gap_eV"])
    assert want > rec["gap_eV"] + 0.3       # the Cs 6s LUMO lies 0.42 eV below the Pb-derived edge here
    evaluate_dft(g, tmp_path, edge)          # now complete: reused
    assert (tmp_path / "ref" / "runs.log").read_text().count("run") == 1


def _supercell(a=5.9):
    """Cubic CsPbBr3, 2×2×2 (periodic): Pb at the corners, so every octahedron crosses the cell boundary."""
    prim = Atoms("PbBr3Cs", scaled_positions=[[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]],
                 cell=np.eye(3) * a, pbc=True)
    return prim * (2, 2, 2)


def test_periodic_mode_descriptors_use_the_minimum_image():
    """A breathing octahedron at the cell corner (its Br wrap around the boundary) and the R-point
    rotation of every octahedron (a0a0c−: neighbours turn the other way) in a 2×2×2 periodic supercell."""
    a = _supercell()
    m = a.get_masses()
    s = np.array(a.get_chemical_symbols())
    pb0 = int(np.where(s == "Pb")[0][0])
    breathe = np.zeros((len(a), 3))
    d = a.get_distances(pb0, range(len(a)), mic=True, vector=True)
    near = np.where((s == "Br") & (np.linalg.norm(d, axis=1) < 3.6))[0]
    assert len(near) == 6
    breathe[near] = d[near] / np.linalg.norm(d[near], axis=1)[:, None]
    rot = np.zeros((len(a), 3))
    for p in np.where(s == "Pb")[0]:                 # ±ω about z, sign alternating on the Pb sublattice
        n = np.rint(a.positions[p] / 5.9).astype(int)
        sgn = (-1) ** n.sum()
        dv = a.get_distances(p, range(len(a)), mic=True, vector=True)
        for x in np.where((s == "Br") & (np.linalg.norm(dv, axis=1) < 3.6))[0]:
            if abs(dv[x, 2]) < 1e-6:                   # equatorial Br: each is shared by two Pb turning oppositely
                rot[x] = sgn * np.cross([0, 0, 1.0], dv[x]) / 2.95
    modes = np.array([_mass_weighted(u, m) for u in (breathe, rot)])
    ch = mode_characters(a, np.array([100.0, 20.0]), modes, m)
    # 6 of the 48 Pb–Br bonds stretch by 1 Å/Å and the 6 on the far side of the same Br shorten by 1: rms √(12/48)
    assert ch[0].stretch == pytest.approx(0.5, abs=1e-12)
    assert ch[1].rotation == pytest.approx(1.0, abs=1e-9) and ch[1].stretch == pytest.approx(0.0, abs=1e-12)
    assert ch[0].bridge_deg_per_A == pytest.approx(0.0, abs=1e-6)      # 180° bridges: no first-order change
    from qdlab.workflows.gap_validation import _bonds

    cluster = a.copy()
    cluster.pbc = False               # the same atoms as a cluster: the 12 bonds across the boundary are not bonds
    assert len(_bonds(a, 3.6)[1]) == 48 and len(_bonds(cluster, 3.6)[1]) == 36


def test_periodic_validation_runs_tb_at_gamma_and_cp2k_periodic(tmp_path):
    """``periodic=True``: the geometries stay periodic, TB takes the Γ gap of the cell (for the undisplaced
    2×2×2 supercell: the bulk gap at R, band folding), CP2K gets a periodic input."""
    from qdlab.electronic.tb.bulk import bulk_bands
    from qdlab.electronic.tb.params import load_params
    from qdlab.engines.cp2k_mo import cp2k_gap_input
    from qdlab.workflows.gap_validation import evaluate_tb

    a = _supercell(load_params("CsPbBr3-kashikar").bulk["a_A"])
    m = a.get_masses()
    u = np.zeros((1, len(a), 3))
    u[0, 1] = [0.0, 0.0, 1.0]
    settings = GapValidationSettings(modes=(0,), amplitude_A=0.1, soc=False, periodic=True)
    plan, _ = plan_validation(a, np.array([30.0]), _mass_weighted(u[0], m)[None], m, settings)
    assert all(np.all(g.atoms.pbc) for g in plan) and len(plan) == 3
    want = bulk_bands(load_params("CsPbBr3-kashikar"), soc=False, n_per_segment=2).gap_R_eV
    assert evaluate_tb(plan[0], settings) == pytest.approx(want, abs=1e-9)
    assert evaluate_tb(plan[1], settings) != pytest.approx(want, abs=1e-4)      # the displacement moves it
    assert "POISSON_SOLVER PERIODIC" in cp2k_gap_input(plan[1].atoms)
    cluster = a.copy()
    cluster.pbc = False
    with pytest.raises(QdlabError, match="3D-periodic"):
        plan_validation(cluster, np.array([30.0]), u, m, settings)
