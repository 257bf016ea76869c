"""Nanocrystal states, checkpoints, BSE rescreening and the CLI commands on a tiny grid."""

import json

import pytest
from ase import Atoms
from ase.io import write
from typer.testing import CliRunner

from qdlab.cli.electronic import electronic_app as app
from qdlab.electronic.pseudopotential import engine
from qdlab.electronic.pseudopotential.engine import StatesSettings, memory_estimate, nanocrystal_states
from qdlab.errors import QdlabError

D = 3.15
PBI6 = Atoms("PbI6", positions=[[0, 0, 0], [D, 0, 0], [-D, 0, 0], [0, D, 0], [0, -D, 0], [0, 0, D], [0, 0, -D]])
TINY = StatesSettings(spacing_B=2.0, vacuum_B=1.0, n_below=2, n_above=2, tol_Ha=1e-4, extra=4)

def test_memory_estimate_refuses_in_one_line():
    """SCIENCE.md §9: 104³ points × 1 state × 16 B × 2 = 36 MB per state; refusal names both numbers."""
    assert memory_estimate(104**3, 1)["states_bytes"] / 1e6 == pytest.approx(36.0, rel=0.01)
    with pytest.raises(QdlabError) as err:
        nanocrystal_states(PBI6, StatesSettings(max_memory_GB=1e-4))
    msg = str(err.value)
    assert "\n" not in msg and "GB" in msg and "limit 0.0001 GB" in msg and "memory estimate" in msg


def test_a_gpu_run_is_refused_above_the_gpu_memory(monkeypatch):
    """``--device cuda`` keeps the solver's blocks and the found states on the GPU: an estimate within
    ``max_memory_GB`` but above the GPU's memory is refused in one line naming both (GPU size stubbed, so the
    test runs without one); the CPU paths have no device limit."""
    from qdlab.electronic.pseudopotential.engine import check_memory, device_memory_GB

    assert device_memory_GB("cpu") is None and device_memory_GB("numpy") is None
    est = memory_estimate(80**3, 24, kept=16)["total_bytes"] / 1e9
    assert check_memory(80**3, 24, 1e3, kept=16, device_GB=est * 1.01)["total_bytes"] == pytest.approx(est * 1e9)
    with pytest.raises(QdlabError) as err:
        check_memory(80**3, 24, 1e3, kept=16, device_GB=est * 0.99)
    assert "\n" not in str(err.value) and "GPU's" in str(err.value) and f"{est:.1f} GB" in str(err.value)
    monkeypatch.setattr(engine, "device_memory_GB", lambda device: 1e-6)
    with pytest.raises(QdlabError, match="GPU's"):
        nanocrystal_states(PBI6, TINY.model_copy(update={"device": "cpu"}))


def test_block_bounds_the_solver_memory():
    """160 states of the n = 3 cube at 0.5 Bohr (105³): asked at once, 168 vectors × 22 work copies
    (≈ 137 GB); with ``block`` 24 the solver holds 32 vectors and the found states are kept 5 times:
    (32 × 22 + 160 × 5) × 37.0 MB ≈ 55.7 GB; the block does not change which states are computed (key)."""
    from qdlab.electronic.pseudopotential.engine import solver_vectors, states_key

    n = 105**3
    whole = StatesSettings(n_below=80, n_above=80)
    blocked = whole.model_copy(update={"block": 24})
    assert solver_vectors(whole) == 168 and solver_vectors(blocked) == 32
    big = memory_estimate(n, solver_vectors(whole), kept=160)["total_bytes"]
    small = memory_estimate(n, solver_vectors(blocked), kept=160)["total_bytes"]
    assert small == pytest.approx((32 * 22 + 160 * 5) * n * 32)
    assert small < 0.45 * big
    assert states_key(PBI6, whole) == states_key(PBI6, blocked)


def test_cli_errors_are_one_line(tmp_path):
    r = CliRunner().invoke(app, ["states", str(tmp_path / "missing.xyz")])
    assert r.exit_code == 2 and "error:" in r.stderr
    r = CliRunner().invoke(app, ["bands", "cubic", "--method", "pseudopotential", "--ecut", "-1"])
    assert r.exit_code == 2
    write(tmp_path / "pbi6.xyz", PBI6)
    r = CliRunner().invoke(app, ["excitons", str(tmp_path / "pbi6.xyz"), "--coulomb", "ewald",
                                 "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "error:" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    r = CliRunner().invoke(app, ["states", str(tmp_path / "pbi6.xyz"), "--precision", "half"])
    assert r.exit_code == 2 and "--precision must be double or single" in r.stderr
    r = CliRunner().invoke(app, ["states", str(tmp_path / "pbi6.xyz"), "--block", "0", "-o", str(tmp_path / "s.npz")])
    assert r.exit_code == 2 and "--block" in r.stderr and not (tmp_path / "s.npz").exists()


@pytest.mark.slow
def test_states_checkpoint_bse_rescreen_and_cli(tmp_path, monkeypatch):
    """States are computed once, then reused from the npz; BSE reruns with another ε from kernels."""
    from qdlab.workflows.excitons import ExcitonSettings, ExcitonUnit, evaluate_exciton_unit, rescreen

    settings = ExcitonSettings(states=TINY, n_electrons=2, n_holes=2)
    row = evaluate_exciton_unit(ExcitonUnit("pbi6", PBI6), settings, tmp_path)
    assert row["gap_eV"] > 0 and len(row["energies_eV"]) == 4
    assert (tmp_path / "pbi6.states.npz").exists() and (tmp_path / "pbi6.kernel.npz").exists()

    def boom(*a, **k):
        raise AssertionError("states were recomputed")

    monkeypatch.setattr(engine, "grid_hamiltonian", boom)
    again = evaluate_exciton_unit(ExcitonUnit("pbi6", PBI6), settings, tmp_path)
    assert again["energies_eV"] == pytest.approx(row["energies_eV"], abs=1e-12)
    e2 = rescreen(tmp_path, "pbi6", 10.0)
    e1 = rescreen(tmp_path, "pbi6", settings.eps)
    assert e1.energies_eV == pytest.approx(row["energies_eV"], abs=1e-12)
    assert e2.energies_eV[0] > e1.energies_eV[0]  # weaker screening of the attraction → higher energy
    monkeypatch.undo()  # the CLI's settings (tolerance, buffer) differ: its states are its own
    write(tmp_path / "pbi6.xyz", PBI6)
    cli_dir = tmp_path / "cli"
    r = CliRunner().invoke(app, ["excitons", str(tmp_path / "pbi6.xyz"), "--spacing", "2", "--vacuum", "1",
                                 "--electrons", "2", "--holes", "2", "-o", str(cli_dir), "--json", "--basis-series", "2,1"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["energies_eV"] == pytest.approx(rescreen(cli_dir, "pbi6", out["eps"]).energies_eV[:4], abs=1e-12)
    # the basis series: k = 2 is the whole 2 + 2 kernel, so its lowest exciton is the run's; saved beside it
    assert [r["k"] for r in out["basis_series"]] == [1, 2]
    assert out["basis_series"][1]["lowest_eV"] == pytest.approx(out["energies_eV"][0], abs=1e-12)
    assert json.loads((cli_dir / "pbi6.basis_series.json").read_text()) == out["basis_series"]
    assert (cli_dir / "pbi6.excitons.png").exists() and (cli_dir / "pbi6.states.npz").exists()


def test_cli_basis_series_bad_sizes_are_one_line(tmp_path):
    """A malformed ``--basis-series`` ends in one ``error:`` line before any state is computed."""
    write(tmp_path / "pbi6.xyz", PBI6)
    r = CliRunner().invoke(app, ["excitons", str(tmp_path / "pbi6.xyz"), "--basis-series", "8,x", "-o",
                                 str(tmp_path / "out")])
    assert r.exit_code != 0 and "basis-series takes comma-separated" in r.output
    assert not (tmp_path / "out").exists()


def test_cli_bands_cubic_json_and_output(tmp_path):
    """Small cutoff: masses along x, y, z equal by cubic symmetry (1e-6); -o writes the same JSON."""
    out = tmp_path / "bands" / "bands.json"
    r = CliRunner().invoke(app, ["bands", "cubic", "--method", "pseudopotential", "--ecut", "2.5", "--json",
                                 "-o", str(out.parent)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert json.loads(out.read_text()) == res
    mh, me = res["m_h_dirs"], res["m_e_dirs"]
    assert mh["x"] == pytest.approx(mh["y"], rel=1e-6) == pytest.approx(mh["z"], rel=1e-6)
    assert me["x"] == pytest.approx(me["z"], rel=1e-6) and res["gap_eV"] > 0
    r = CliRunner().invoke(app, ["bands", "cubic", "--method", "tight-binding"])
    assert r.exit_code == 2


def test_bse_default_basis_is_all_states_up_to_60_and_refuses_large(tmp_path):
    """ExcitonSettings without sizes uses min(available, 60) electron/hole states (here the 2 + 2 that
    exist); a kernel over the memory limit is refused in one line naming GB, hours and the limit."""
    from qdlab.workflows.excitons import ExcitonSettings, ExcitonUnit, evaluate_exciton_unit

    quick = TINY.model_copy(update={"tol_Ha": 1e-3, "device": "numpy"})
    assert ExcitonSettings().bse_sizes(75, 80) == (60, 60) and ExcitonSettings().bse_sizes(7, 9) == (7, 9)
    row = evaluate_exciton_unit(ExcitonUnit("pbi6", PBI6), ExcitonSettings(states=quick), tmp_path)
    assert (row["n_electrons"], row["n_holes"]) == (2, 2) and len(row["energies_eV"]) == 4
    assert row["kernel_estimate"]["bytes"] > 0
    with pytest.raises(QdlabError) as err:  # the states are reused from the checkpoint; the kernel is refused
        evaluate_exciton_unit(ExcitonUnit("pbi6", PBI6), ExcitonSettings(states=quick, max_memory_GB=1e-6), tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "BSE kernel estimate" in msg and "limit 1e-06 GB" in msg
