"""``qdlab electronic bands|gap`` and ``qdlab analyze linewidth``: JSON output, one-line errors, no partial files."""

import json

import numpy as np
import pytest
from ase.io import write
from typer.testing import CliRunner

from qdlab.build import PerovskiteRecipe, build
from qdlab.cli.main import app

runner = CliRunner()


def _run(args):
    return runner.invoke(app, args)


def test_bands_reference_json(tmp_path):
    r = _run(["electronic", "bands", "reference", "--params", "CsPbI3-nestoklon", "-o", str(tmp_path / "b"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["gap_R_eV"] == pytest.approx(1.018, abs=0.005)
    assert set(out["effective_masses_me"]) == {"electron", "hole"}
    assert (tmp_path / "b" / "bands.png").exists()


def test_gap_structure_and_errors(tmp_path):
    atoms = build(PerovskiteRecipe(size="2", composition="CsPbBr3", seed=0))
    p = tmp_path / "nc.extxyz"
    write(p, atoms, format="extxyz")
    r = _run(["electronic", "gap", str(p), "--json", "-o", str(tmp_path / "g.json")])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["gap_eV"] == pytest.approx(out["lumo_eV"] - out["homo_eV"])
    assert "weights_by_depth" in out and out["weights_by_element"]["Pb"]["lumo"] > 0.5
    bad = atoms.copy()
    bad[[a.index for a in bad if a.symbol == "Pb"][0]].symbol = "Sn"
    write(tmp_path / "sn.extxyz", bad, format="extxyz")
    r = _run(["electronic", "gap", str(tmp_path / "sn.extxyz"), "-o", str(tmp_path / "sn.json")])
    assert r.exit_code == 2 and r.stderr.startswith("error: unsupported element(s) Sn") and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "sn.json").exists()
    (tmp_path / "p.json").write_text('{"name": "x"}')
    r = _run(["electronic", "gap", str(p), "--params", str(tmp_path / "p.json"), "-o", str(tmp_path / "x.json")])
    assert r.exit_code == 2 and "missing entry orbitals" in r.stderr and not (tmp_path / "x.json").exists()


def test_linewidth_json_and_too_short(tmp_path):
    t = np.arange(2000) * 10.0
    gap = 2.5 + 0.01 * np.cos(2 * np.pi * 40 * t / 20000.0)
    csv = tmp_path / "trace.csv"
    csv.write_text("time_fs,gap_eV\n" + "\n".join(f"{a},{b}" for a, b in zip(t, gap)) + "\n")
    r = _run(["analyze", "linewidth", str(csv), "-T", "10", "-o", str(tmp_path / "lw"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert {"reorganization_meV", "gamma_harmonic_meV", "gamma_dephasing_meV", "fwhm_histogram_meV",
            "t2_star_fs"} <= set(out)
    assert set(out["huang_rhys_bands"]) == {"S_2meV", "S_7meV", "S_17meV"}
    short = tmp_path / "short.csv"
    short.write_text("time_fs,gap_eV\n" + "\n".join(f"{a},{b}" for a, b in zip(t[:50], gap[:50])) + "\n")
    r = _run(["analyze", "linewidth", str(short), "-o", str(tmp_path / "lw2")])
    assert r.exit_code == 2 and "too short" in r.stderr and not (tmp_path / "lw2").exists()


def test_fit_command_writes_a_loadable_set(tmp_path):
    from qdlab.electronic.tb.fit import tb_gaps
    from qdlab.electronic.tb.params import load_params

    atoms = build(PerovskiteRecipe(size="1", composition="CsPbBr3", seed=0))
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(6):
        a = atoms.copy()
        a.positions += rng.normal(0, 0.05, a.positions.shape)
        frames.append(a)
    for a, g in zip(frames, tb_gaps(frames, load_params("CsPbBr3-kashikar").with_changes(eta=2.5))):
        a.info["gap_eV"] = g + 0.4
    write(tmp_path / "ref.extxyz", frames, format="extxyz")
    out = tmp_path / "fitted.json"
    r = _run(["electronic", "fit", str(tmp_path / "ref.extxyz"), "--holdout-every", "3", "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["parameters"]["eta"] == pytest.approx(2.5, abs=0.01) and res["held_out"]["fitted"]["n"] == 2
    assert load_params(out).eta == pytest.approx(2.5, abs=0.01)
    r = _run(["electronic", "fit", str(tmp_path / "ref.extxyz"), "--key", "nope", "-o", str(tmp_path / "n.json")])
    assert r.exit_code == 2 and "no info['nope']" in r.stderr and not (tmp_path / "n.json").exists()
