"""The HTML report: tables and embedded figures, checked in headless Chromium."""

from __future__ import annotations

import re

import numpy as np
import typer
from typer.testing import CliRunner

from campaign.helpers import dump_dom
from qdlab.campaign import expand, spec_from_dict
from qdlab.campaign.tasks import run_task
from qdlab.cli import campaign as cc
from qdlab.store.results import ResultStore

runner = CliRunner()


def _store(tmp_path) -> ResultStore:
    """A small store filled by calling the units of work directly (no cluster): two passivation
    labels × two sizes of phonons + peaks, an MD → RMSF branch, a failure and a parity row."""
    spec = spec_from_dict({
        "name": "rep", "store": str(tmp_path / "rep.db"),
        "grid": [{"composition": "CsPbI3", "size": ["2", "3"], "neutrality": "surface-charge", "seed": [0]}],
        "engines": [{"name": "classical"}],
        "steps": [{"workflow": "relax", "fmax": 0.05, "rattle_A": 0.0},
                  {"workflow": "phonons", "method": "analytic"},
                  {"workflow": "peaks", "regions": {"M1": [10, 60, 10], "M2": [64, 90], "M3": [105, 116]}},
                  {"workflow": "md", "after": "relax", "steps": 40, "interval": 4, "temperature_K": 100},
                  {"workflow": "rmsf"}]})
    rs = ResultStore(spec.store)
    rs.check()
    out = {}
    for t in expand(spec):
        parent = out.get(t.parent)
        out[t.key] = run_task(t.to_dict(), parent, spec.store, str(rs.files))
        assert out[t.key]["status"] == "done", out[t.key]
    # the same structures relabelled as a "capped" system, so that the plots compare passivations
    for r in rs.rows(workflow="peaks"):
        assert "M1_cm1" in r.results, r.results
        kvp = dict(r.kvp) | {"passivation": "MA", "M1_cm1": r.results["M1_cm1"] + 3}
        rs.put(r.key + "x", None, {k: v for k, v in kvp.items() if k not in ("task_key", "status")},
               r.data | {"results": r.results | {"M1_cm1": r.results["M1_cm1"] + 3}})
    rs.put("failedtask", None, {"campaign": "rep", "step": "relax", "composition": "CsPbBr3", "size": "1x1x1",
                                "passivation": "bare", "engine": "classical"},
           {"error": "LJ+Coulomb has no parameters for Br"}, status="failed")
    rng = np.random.default_rng(0)
    fr = rng.normal(0, 1, 300)
    path = rs.files / "parity" / "parity.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, energy_ref_eV_atom=rng.normal(-3, 0.1, 20), energy_pred_eV_atom=rng.normal(-3, 0.1, 20),
             forces_ref_eV_A=fr, forces_pred_eV_A=fr + rng.normal(0, 0.05, 300))
    rs.put("paritytask", None, {"campaign": "rep", "step": "parity", "workflow": "parity", "engine": "classical"},
           {"files": {"parity": "parity/parity.npz"}, "results": {"reference": "synthetic"}})
    return rs


def test_report_in_headless_browser(tmp_path):
    rs = _store(tmp_path)
    app = typer.Typer()
    app.command("report")(cc.report_cmd)
    app.command("other")(lambda: None)
    out = tmp_path / "report.html"
    r = runner.invoke(app, ["report", rs.url, "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    n_img = html.count("<img ")
    assert n_img >= 5  # peaks vs size, 2 DOS, RMSF, parity
    assert "src=\"http" not in html and "<link" not in html  # self-contained
    for heading in ("Phonon mode centres vs size", "phonon DOS per size", "Relaxations", "RMSF after MD",
                    "Parity", "Failed tasks", "Provenance", "no parameters for Br"):
        assert heading in html, heading
    dom = dump_dom(out)
    m = re.search(r'<div id="qdlab-check"([^>]*)>', dom)
    assert m, dom[:2000]
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', m.group(1)))
    assert attrs["status"] == "ok" and attrs["images"] == str(n_img) and attrs["broken"] == "0", attrs
    assert attrs["errors"] == "0"


def test_broken_figure_is_detected(tmp_path):
    """The in-page check really fails on a figure that does not decode."""
    rs = _store(tmp_path)
    out = tmp_path / "report.html"
    from qdlab.report.html import write_report

    write_report(rs, out)
    html = out.read_text()
    html = html.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1)
    out.write_text(html)
    dom = dump_dom(out)
    assert 'data-status="failed"' in dom and 'data-broken="1"' in dom
