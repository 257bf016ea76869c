"""`qdlab reproduce` at the tiniest sizes: the campaign runs, our numbers print beside the paper's."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from qdlab.cli import campaign as cc

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("reproduce")(cc.reproduce_cmd)
    app.command("other")(lambda: None)
    return app


def test_reproduce_seed000_fig5_tiny(tmp_path):
    r = runner.invoke(_app(), ["reproduce", "seed000-fig5", "--sizes", "1", "--passivations", "bare,MA", "--quick",
                               "-o", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["campaign"]["n_failed"] == 0 and d["campaign"]["n_done"] == 6
    assert [row[2] for row in d["rows"]] == ["bare", "MA"]
    bare = d["data"]["1|bare"]
    assert 10 < bare["M1"] < 60 and 60 < bare["M2"] < 130 and 90 < bare["M3"] < 160
    assert d["published"] == {"M2_cm1": 100.0, "M3_cm1": 129.0}
    assert any("M1 blueshift" in c for c in d["checks"])
    html = (tmp_path / "seed000-fig5.html").read_text()
    assert "Ours vs published" in html and html.count("<img ") >= 2
    # a rerun resumes from the store: nothing left to do
    r = runner.invoke(_app(), ["reproduce", "seed000-fig5", "--sizes", "1", "--passivations", "bare,MA", "--quick",
                               "-o", str(tmp_path)])
    assert r.exit_code == 0 and "M1 blueshift" in r.output and "0/0" in r.output


def test_reproduce_seed000_fig7_tiny(tmp_path):
    r = runner.invoke(_app(), ["reproduce", "seed000-fig7", "--sizes", "1", "--passivations", "BzO/MA,MA/PhS",
                               "--quick", "-o", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["campaign"]["n_failed"] == 0 and d["campaign"]["n_done"] == 6
    assert {row[1] for row in d["rows"]} == {"BzO/MA", "MA/PhS"}
    assert all(0 < v[0] < 1.0 for v in d["data"].values())  # mean Pb RMSF in Å
    assert any("BzO/MA lowest mean Pb RMSF" in c for c in d["checks"])


def test_reproduce_refuses_unknown_target(tmp_path):
    r = runner.invoke(_app(), ["reproduce", "seed009-fig1", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "unknown target" in r.stderr
