"""Campaign steps thermal, ir, ir_md, gap, linewidth and binding: each row equals the library function
called directly on the same input (or an analytic identity), and `qdlab campaign plan` accepts them.

Tasks run one after another through :func:`qdlab.campaign.tasks.run_task` (no Dask), on CsPbI3 2×2×2
(classical engine, seed 003 charges); binding on Cs4PbI6 (size 1) with a toy LJ set for the ligand.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.io import read
from ase.units import kB
from typer.testing import CliRunner

from campaign.helpers import write_spec
from qdlab.campaign.spec import build_recipe, expand, spec_from_dict
from qdlab.campaign.tasks import run_task
from qdlab.cli.main import app
from qdlab.engines.classical import SEED003_LJ

GRID = {"composition": "CsPbI3", "size": "2", "neutrality": "surface-charge"}
#: toy LJ parameters (σ Å, ε eV) for acetate on top of seed 003's set (as tests/workflows/test_binding.py)
LJ = {**SEED003_LJ, "C": (1.2, 0.004), "H": (0.6, 0.002), "O": (1.3, 0.006)}


def _run(tmp, steps: list[dict], grid: dict = GRID, engine: dict | None = None) -> dict[str, dict]:
    """Run every task of a one-recipe spec in order; {step name: run_task summary}."""
    spec = spec_from_dict({"name": "steps", "engines": [engine or {"name": "classical"}], "grid": [grid],
                           "steps": steps})
    by_key: dict[str, dict] = {}
    out = {}
    for t in expand(spec):
        d = t.to_dict()
        s = run_task(d, by_key.get(d["parent"]), str(tmp / "r.db"), str(tmp / "files"))
        assert s["status"] == "done", (t.step, s["error"])
        by_key[d["key"]] = out[t.step] = s | {"task": d}
    return out


def _f(tmp, summary: dict, name: str):
    return tmp / "files" / summary["files"][name]


@pytest.fixture(scope="module")
def phonon_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ph")
    return tmp, _run(tmp, [{"workflow": "phonons", "chunk": 0}, {"workflow": "thermal", "tstep_K": 10.0},
                           {"workflow": "ir", "after": "phonons"}])


@pytest.fixture(scope="module")
def md_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("md")
    return tmp, _run(tmp, [{"workflow": "md", "steps": 64, "interval": 2, "ensemble": "nve"},
                           {"workflow": "gap", "n_states": 1}, {"workflow": "linewidth", "resolution_meV": 100.0},
                           {"workflow": "ir_md", "after": "md"}])


def test_thermal_row_equals_library_and_einstein_sum(phonon_run):
    from qdlab.analysis.thermal import thermal_properties
    from qdlab.workflows.phonons import PhononResult

    tmp, runs = phonon_run
    row = runs["thermal"]["results"]
    freqs = PhononResult.load(_f(tmp, runs["phonons"], "phonons")).frequencies_cm1
    tp = thermal_properties(freqs, [10.0, 300.0], cutoff_cm1=1.0)  # directly, on the parent's phonons.npz
    assert row["zpe_eV"] == pytest.approx(tp.zpe_eV, rel=1e-12)
    for i, t in enumerate(("10K", "300K")):
        assert row[f"F_{t}_eV"] == pytest.approx(tp.free_energy_eV[i], rel=1e-12, abs=1e-12)
        assert row[f"S_{t}_eV_K"] == pytest.approx(tp.entropy_eV_K[i], rel=1e-12)
        assert row[f"Cv_{t}_eV_K"] == pytest.approx(tp.heat_capacity_eV_K[i], rel=1e-12)
    # independent formula: C_v = k_B Σ x² eˣ/(eˣ−1)², x = ħω/k_BT, modes above the 1 cm⁻¹ cutoff
    x = freqs[freqs > 1.0] * 1.239841984e-4 / (kB * 300.0)  # cm⁻¹ → eV (hc)
    cv = kB * np.sum(x**2 * np.exp(x) / np.expm1(x) ** 2)
    assert row["Cv_300K_eV_K"] == pytest.approx(cv, rel=1e-6)
    assert row["n_modes"] == int((freqs > 1.0).sum()) and row["n_imaginary"] == int((freqs < -1.0).sum())


def test_harmonic_ir_row_equals_library(phonon_run, tmp_path):
    from qdlab.workflows.ir import HarmonicIRSettings, run_ir_harmonic

    tmp, runs = phonon_run
    ph = runs["phonons"]
    direct = run_ir_harmonic(_f(tmp, ph, "phonons"), tmp_path, HarmonicIRSettings(),
                             structure=_f(tmp, ph, "structure"))
    row = runs["ir"]["results"]
    best = max(direct["peaks"], key=lambda p: p["height"])
    assert row["ir_strongest_cm1"] == pytest.approx(best["position_cm1"], rel=1e-12)
    assert row["n_peaks"] == len(direct["peaks"]) and row["summary"]["n_modes"] == direct["n_modes"]
    assert "ir_nu_as_cm1" not in row  # no carboxylate bands reported for a model without C and O


def test_gap_row_equals_library(md_run):
    from qdlab.workflows.gap import GapSettings, evaluate_chunk, import_gap_trace, plan_frames

    tmp, runs = md_run
    traj = _f(tmp, runs["md"], "trajectory")
    s = GapSettings(n_states=1)
    plan = plan_frames(traj, s)
    recs = [r for c in plan.chunks for r in evaluate_chunk(str(traj), c, s)]  # no checkpoint, no workers
    gaps = np.array([r["gap_eV"] for r in recs])
    row = runs["gap"]["results"]
    assert row["n_frames"] == len(gaps) == 33
    assert row["mean_gap_eV"] == pytest.approx(gaps.mean(), rel=1e-12)
    assert row["std_gap_meV"] == pytest.approx(gaps.std() * 1e3, rel=1e-9)
    np.testing.assert_allclose(import_gap_trace(_f(tmp, runs["gap"], "gap")).gap_eV, gaps, rtol=1e-7)


def test_linewidth_row_equals_library_and_sum_rule(md_run):
    from qdlab.analysis.exciton_phonon import linewidth
    from qdlab.workflows.gap import import_gap_trace

    tmp, runs = md_run
    trace = import_gap_trace(_f(tmp, runs["gap"], "gap"))
    direct = linewidth(trace, 300.0, None, 100.0, 0.0, 2000.0).summary()
    row = runs["linewidth"]["results"]
    for k in ("reorganization_meV", "gamma_dephasing_meV", "t2_star_fs", "huang_rhys_total"):
        assert row[k] == pytest.approx(direct[k], rel=1e-12)
    # classical sum rule: Λ = σ²/(2 k_B T) for the gap fluctuation σ (1 % for the discrete spectrum)
    sigma = np.std(trace.gap_eV)
    assert row["reorganization_meV"] == pytest.approx(sigma**2 / (2 * kB * 300.0) * 1e3, rel=0.01)
    assert json.loads(_f(tmp, runs["linewidth"], "linewidth").read_text())["T_K"] == 300.0


def test_ir_md_row_equals_library(md_run, tmp_path):
    from qdlab.workflows.ir import IRMDSettings, run_ir_md

    tmp, runs = md_run
    direct = run_ir_md(_f(tmp, runs["md"], "trajectory"), tmp_path, IRMDSettings())
    row = runs["ir_md"]["results"]
    best = max(direct["peaks"], key=lambda p: p["height"])
    assert row["ir_strongest_cm1"] == pytest.approx(best["position_cm1"], rel=1e-12)
    assert row["resolution_cm1"] == pytest.approx(direct["resolution_cm1"]) and row["n_frames"] == 33


def test_binding_row_equals_hand_single_points(tmp_path):
    from qdlab.build.ligands import get_ligand, ligand_atoms
    from qdlab.engines.classical import LJCoulomb

    grid = {"composition": "CsPbI3", "size": "1", "seed": 0}
    runs = _run(tmp_path, [{"workflow": "binding", "ligands": ["OAc"], "relax": False}], grid,
                {"name": "classical", "options": {"lj": LJ}})
    b = runs["binding"]
    row = b["results"]
    saved = json.loads(_f(tmp_path, b, "binding").read_text())
    idx = saved["site_index"]["X"]
    host = build_recipe(b["task"]["recipe"])
    calc = LJCoulomb(lj=LJ)  # an independent engine instance

    def e(atoms):
        a = atoms.copy()
        a.calc = calc
        return float(a.get_potential_energy())

    vacancy = host.copy()
    del vacancy[idx]
    cplx = read(tmp_path / "files" / b["files"]["units"] / "complex_OAc.extxyz")
    bind = e(cplx) - e(vacancy) - e(ligand_atoms(get_ligand("OAc")))
    ion = e(host) - e(vacancy) - e(host[[idx]])
    assert row["bind_OAc_eV"] == pytest.approx(bind, abs=1e-6)
    assert row["bind_ion_X_eV"] == pytest.approx(ion, abs=1e-6)
    assert row["exchange_OAc_eV"] == pytest.approx(bind - ion, abs=1e-6)
    assert row["ordering"] == "OAc" and (tmp_path / "files" / b["files"]["binding_png"]).stat().st_size > 0


PLAN_SPEC = """
name = "all-steps"
store = "r.db"
[[grid]]
composition = "CsPbI3"
size = "2"
neutrality = "surface-charge"
[[engines]]
name = "classical"
[[steps]]
workflow = "relax"
steps = 5
[[steps]]
workflow = "binding"
ligands = ["OAc"]
[[steps]]
workflow = "phonons"
after = "relax"
[[steps]]
workflow = "thermal"
[[steps]]
workflow = "ir"
after = "phonons"
[[steps]]
workflow = "md"
after = "relax"
steps = 20
[[steps]]
workflow = "ir_md"
[[steps]]
workflow = "gap"
after = "md"
[[steps]]
workflow = "linewidth"
T_K = 300
[[steps]]
workflow = "excitons"
after = "relax"
eps = 5.0
"""


def test_campaign_plan_accepts_the_steps(tmp_path):
    spec = write_spec(tmp_path, PLAN_SPEC)
    res = CliRunner().invoke(app, ["campaign", "plan", str(spec), "--json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert {t["step"] for t in plan["tasks"]} == {"relax", "binding", "phonons", "thermal", "ir", "md", "ir_md",
                                                   "gap", "linewidth", "excitons"}


@pytest.mark.parametrize("steps, message", [
    ([{"workflow": "relax"}, {"workflow": "thermal"}], "thermal) needs a phonons"),
    ([{"workflow": "md"}, {"workflow": "linewidth"}], "linewidth) needs a gap trace"),
    ([{"workflow": "phonons"}, {"workflow": "thermal", "tmax_K": -5.0}], "temperatures need"),
    ([{"workflow": "binding", "ligands": ["OAc"], "engine": {"name": "chgnet"}}], "engine: Extra inputs"),
])
def test_bad_steps_are_refused(steps, message):
    from qdlab.errors import QdlabError

    with pytest.raises(QdlabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        spec_from_dict({"name": "x", "grid": [GRID], "steps": steps})


def test_excitons_step_row_equals_library(tmp_path):
    """The `excitons` step after the built model gives the row of evaluate_exciton_unit called directly on
    the same structure and settings (coarse 1.5 Bohr grid: a plumbing check, not physics — 3 Bohr with
    0.5 Bohr vacuum never converges, which the old code hid by returning the unconverged pairs); the
    saved result and the states checkpoint are in the task's folder."""
    from qdlab.campaign.tasks import input_structure
    from qdlab.workflows.excitons import ExcitonSettings, ExcitonUnit, evaluate_exciton_unit

    states = {"spacing_B": 1.5, "vacuum_B": 4.0, "n_below": 1, "n_above": 1, "tol_Ha": 1e-3, "extra": 2}
    runs = _run(tmp_path, [{"workflow": "excitons", "states": states}])
    summ = runs["excitons"]
    row = summ["results"]
    atoms = input_structure(summ["task"], None, str(tmp_path / "files"))
    direct = evaluate_exciton_unit(ExcitonUnit("nc", atoms), ExcitonSettings(states=states), tmp_path / "direct")
    for k in ("gap_eV", "optical_gap_eV", "binding_eV", "lowest_s2", "n_electrons", "n_holes"):
        assert row[k] == pytest.approx(direct[k], rel=1e-6, abs=1e-9), k
    saved = json.loads(_f(tmp_path, summ, "excitons").read_text())
    assert saved["gap_eV"] == row["gap_eV"] and (tmp_path / "files" / summ["files"]["states"]).is_file()


def test_excitons_cost_follows_the_grid(tmp_path):
    """`campaign plan` prices an excitons task by the states' cost model, not as a 1 s analysis: the
    estimate scales as (1/spacing)³ (same box) and equals states_seconds on the modelled box."""
    from qdlab.campaign.cost import VOLUME_PER_ATOM_A3, exciton_seconds
    from qdlab.electronic.pseudopotential.engine import StatesSettings, states_seconds

    coarse, fine = exciton_seconds({"states": {"spacing_B": 1.0}}, 63), exciton_seconds({}, 63)
    assert fine / coarse == pytest.approx(8.0, rel=0.02)
    side = (63 * VOLUME_PER_ATOM_A3) ** (1 / 3) / 0.529177210903 + 16.0
    assert fine == pytest.approx(states_seconds(int((side / 0.5) ** 3), StatesSettings()), rel=1e-6)
    spec = write_spec(tmp_path, 'name = "x"\nstore = "x.db"\n[[grid]]\ncomposition = "CsPbI3"\nsize = "2"\n'
                                'neutrality = "surface-charge"\n[[engines]]\nname = "classical"\n'
                                '[[steps]]\nworkflow = "excitons"\n')
    res = CliRunner().invoke(app, ["campaign", "plan", str(spec), "--json"])
    assert res.exit_code == 0, res.output
    task = json.loads(res.stdout)["tasks"][0]
    assert task["step"] == "excitons" and task["seconds"] == pytest.approx(exciton_seconds({}, task["n_atoms"]), rel=1e-9)
