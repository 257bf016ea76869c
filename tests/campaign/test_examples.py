"""Every campaign spec in examples/ plans without error (`qdlab campaign plan SPEC --json`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qdlab.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPECS = sorted(EXAMPLES.glob("*.toml"))


def test_examples_exist():
    assert {p.name for p in SPECS} >= {"demo.toml", "seed000_fig5.toml", "md_rmsf.toml"}


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_example_spec_plans(spec, tmp_path):
    local = shutil.copy(spec, tmp_path / spec.name)  # the store is created beside the spec
    res = CliRunner().invoke(app, ["campaign", "plan", str(local), "--json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert plan["n_tasks"] > 0 and plan["n_pending"] == plan["n_tasks"] and plan["force_calls"] > 0
    assert not plan.get("store_error")
    steps = {t["step"] for t in plan["tasks"]}
    expected = {"demo": {"relax", "phonons", "peaks"}, "seed000_fig5": {"relax", "phonons", "peaks"},
                "md_rmsf": {"relax", "md", "rmsf", "rdf"},
                "thermal_binding": {"relax", "phonons", "thermal", "binding"}}.get(spec.stem)
    assert expected is None or steps == expected


def test_demo_example_is_the_demo(tmp_path):
    """examples/demo.toml is the campaign `qdlab demo` runs: the same task keys (recipes, settings,
    engine), whatever the store path."""
    from qdlab.campaign.demo import demo_spec
    from qdlab.campaign.spec import expand, load_spec

    example = load_spec(shutil.copy(EXAMPLES / "demo.toml", tmp_path / "demo.toml"))
    assert [t.key for t in expand(example)] == [t.key for t in expand(demo_spec(tmp_path / "out"))]


def test_planning_creates_no_store(tmp_path):
    """`campaign plan` of a campaign that never ran: every task pending and no SQLite file made."""
    local = shutil.copy(EXAMPLES / "demo.toml", tmp_path / "demo.toml")
    res = CliRunner().invoke(app, ["campaign", "plan", str(local), "--json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert plan["n_pending"] == plan["n_tasks"] > 0 and not plan.get("store_error")
    assert not (tmp_path / "demo.db").exists()
