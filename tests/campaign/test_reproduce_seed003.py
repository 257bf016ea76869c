"""``qdlab reproduce seed003-fine-structure``: refusal before work, options, tiny end-to-end run."""

import json

import pytest
from typer.testing import CliRunner

from qdlab.campaign import reproduce as rp
from qdlab.campaign.seed003_excitons import FineStructureSettings, _build, estimate, plan, settings_for
from qdlab.cli.main import app
from qdlab.errors import QdlabError


def test_units_and_options():
    """Cubes in both phases then the cuboids (Table S1/S2 naming); shapes and --spacing map to settings."""
    s = FineStructureSettings(sizes=[2, 3])
    assert [u[0] for u in plan(s)] == ["2x2x2-cubic", "2x2x2-orthorhombic", "3x3x3-cubic", "3x3x3-orthorhombic",
                                       "2x2x3-orthorhombic"]
    q = settings_for([3], quick=True, shapes=["orthorhombic", "cuboid"], spacing_B=0.9)
    assert q.phases == ["orthorhombic"] and q.cuboids == ["3x3x4"] and q.spacing_B == 0.9 and q.n_states == 2
    with pytest.raises(QdlabError, match="shapes are cubic, orthorhombic, cuboid"):
        settings_for([2], shapes=["bare"])
    with pytest.raises(QdlabError, match="--spacing applies to seed003"):
        rp.reproduce("seed000-fig5", "unused", spacing_B=0.5)
    assert "seed003-fine-structure" in rp._library_targets()


def test_large_cube_refused_in_one_line_before_any_work():
    """Seed's n = 5 cube (Cs208Pb125I450) on 0.5 Bohr with the default 16 GB / 12 h limits: refused,
    the message names the formula, grid points, GB and hours; the n = 2 cube's estimate is reported."""
    big = _build("5x5x5", "cubic")
    assert big.get_chemical_formula() == "Cs208I450Pb125"  # Table S1
    with pytest.raises(QdlabError) as err:
        estimate(big, FineStructureSettings())
    msg = str(err.value)
    assert "\n" not in msg and "does not fit" in msg and "GB" in msg and " h " in msg and "Cs208I450Pb125" in msg
    small = estimate(_build("2x2x2", "cubic"), FineStructureSettings(spacing_B=1.0))
    assert small["grid_points"] > 0 and small["hours"] < 12


def test_block_brings_the_n4_cube_under_24_GB():
    """n = 4 (Cs117Pb64I240, 128³ at 0.5 Bohr), 8 + 8 states: all at once (24 vectors × 22 work copies +
    16 found × 5) = 608 vectors of 67 MB ≈ 40.8 GB; in blocks of 4 (12 × 22 + 80 = 344) ≈ 23.1 GB."""
    cube = _build("4x4x4", "cubic")
    big = FineStructureSettings(sizes=[4], max_memory_GB=24, max_hours=100)
    with pytest.raises(QdlabError, match="does not fit"):
        estimate(cube, big)
    est = estimate(cube, big.model_copy(update={"block": 4}))
    assert est["grid_points"] == 128**3 and est["states_GB"] == pytest.approx(344 * 128**3 * 32 / 1e9)


@pytest.mark.slow
def test_tiny_series_end_to_end_and_resume(tmp_path):
    """n = 2 cubic cube (Cs19Pb8I36) on a 2.5 Bohr grid, 2 states per side: relax → states → BSE → table;
    a rerun reuses every checkpoint and returns the same numbers (≈ 1–2 min on a loaded core)."""
    args = ["reproduce", "seed003-fine-structure", "--sizes", "2", "--quick", "--passivations", "cubic",
            "--spacing", "2.5", "-o", str(tmp_path), "--json"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["engine"] == "classical" and len(out["rows"]) == 1 and out["rows"][0][:3] == ["2x2x2", "cubic", 63]
    assert any("seed: dark, nearly pure triplet" in c for c in out["checks"])
    assert (tmp_path / "seed003-fine-structure.json").exists()
    assert (tmp_path / "excitons" / "2x2x2-cubic.states.npz").exists()
    again = json.loads(CliRunner().invoke(app, args).stdout)
    assert again["data"][0]["energies_eV"] == pytest.approx(out["data"][0]["energies_eV"], abs=1e-12)
