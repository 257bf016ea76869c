"""One campaign task on its own: errors surface as one line (no hidden NameError)."""

from __future__ import annotations

from qdlab.campaign.spec import expand, spec_from_dict
from qdlab.campaign.tasks import run_task


def test_unopenable_store_reports_the_real_error(tmp_path):
    spec = spec_from_dict({"name": "x", "engines": [{"name": "classical"}],
                           "grid": [{"composition": "CsPbI3", "size": "2", "neutrality": "surface-charge"}],
                           "steps": [{"workflow": "relax", "steps": 1}]})
    task = expand(spec)[0].to_dict()
    out = run_task(task, None, str(tmp_path / "results.txt"), str(tmp_path / "files"))
    assert out["status"] == "failed" and out["written"] is False
    assert "use a .db (SQLite) file" in out["error"] and "NameError" not in out["error"]
