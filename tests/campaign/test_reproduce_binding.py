"""seed000-figS6 / seed000-fig6 reproduce targets on tiny systems (CHGNet, quick settings)."""

import json

import pytest
from typer.testing import CliRunner

from qdlab.cli.main import app

pytest.importorskip("chgnet")


def test_reproduce_list_has_library_targets():
    res = CliRunner().invoke(app, ["reproduce", "list"])
    assert res.exit_code == 0 and "seed000-figS6" in res.output and "seed000-fig6" in res.output
    assert "seed001-ir" in res.output


@pytest.mark.slow
def test_seed001_ir_target_runs_the_library_pipeline(tmp_path):
    """`qdlab reproduce seed001-ir --quick` = reproduce_seed001_ir: bands beside seed 001's ranges (SCIENCE §6)."""
    res = CliRunner().invoke(app, ["reproduce", "seed001-ir", "--quick", "-o", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "seed001_ir.json").read_text())
    assert summary["paper_cm1"] and summary["rows"][0]["spectrum"] == "harmonic/seed001"
    assert summary["formula"] == "C20H30O20Pb6S"


def test_figs6_tiny_committee(tmp_path):
    from qdlab.campaign.reproduce_binding import reproduce_figs6

    s = reproduce_figs6(tmp_path, size="2x2x1", host_ligands=(), ligands=("PhS",),
                        committee=("chgnet:0.2.0",), quick=True)
    res = s["result"]
    assert res["members"] == ["chgnet:0.3.0", "chgnet:0.2.0"]
    for L in ("PhS",):  # committee statistics are those of the two members' numbers
        v = [res["binding_eV"][m][L] for m in res["members"]]
        assert res["binding"][L]["mean"] == pytest.approx(sum(v) / 2, abs=1e-9)
        assert res["binding"][L]["spread"] == pytest.approx(abs(v[0] - v[1]) / 2, abs=1e-9)
    assert any("paper: PhP > BzO > PhS" in c for c in s["checks"])
    assert json.loads((tmp_path / "seed000-figS6" / "summary.json").read_text())["rows"] == s["rows"]
    assert (tmp_path / "seed000-figS6" / "binding.png").exists()


@pytest.mark.slow
def test_fig6_tiny_committee(tmp_path):
    from qdlab.campaign.reproduce_binding import reproduce_fig6
    from qdlab.workflows.committee import CommitteePhonons

    s = reproduce_fig6(tmp_path, sizes=(1,), systems=["bare", "BzO/MA"], committee=("chgnet:0.2.0",), quick=True)
    cp = CommitteePhonons.load(tmp_path / "seed000-fig6" / "1x1x1" / "committee.json")
    assert cp.members == ("chgnet:0.3.0", "chgnet:0.2.0") and cp.systems == ("bare", "BzO/MA")
    sh = cp.shifts["BzO/MA"]["M1"]
    d = [cp.member_peaks["BzO/MA"][m]["M1"] - cp.member_peaks["bare"][m]["M1"] for m in cp.members]
    assert sh.difference.values == pytest.approx(tuple(d), abs=1e-9)
    assert [r[1] for r in s["rows"]] == ["bare", "BzO/MA"] and any("largest M1 blueshift" in c for c in s["checks"])
