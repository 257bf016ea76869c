"""SIGKILL at random moments, then the same command again (issue 13): every output format that the
MD tests (tests/workflows/test_md_integrity.py) do not cover — the phonons folder (NPZ, CSV, JSON),
the gap trace (CSV + JSON-lines checkpoint) and the campaign store (SQLite + files folder). Each
command is first run uninterrupted (the reference, which also times it), then killed (the whole
process group, SIGKILL) at seeded random moments across that time, checking after every kill that
no file present is torn and no checkpoint record is duplicated or wrong, then run to the end: the
result must equal the reference."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from campaign.helpers import classical_phonon_spec

SEEDS = (0, 1, 2, 3, 4)


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return os.environ | {"OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
                         "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def qdlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "qdlab", *args]


def run_timed(cmd: list[str], cwd: Path) -> float:
    """Run ``cmd`` to completion (must succeed); its wall time in seconds."""
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return time.monotonic() - t0


def kill_after(cmd: list[str], cwd: Path, delay_s: float) -> int | None:
    """Start ``cmd`` in its own session and SIGKILL the whole group after ``delay_s``; returns the
    exit code if it finished first, None if it was killed."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        return proc.wait(timeout=delay_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def moments(total_s: float, seeds=SEEDS) -> list[float]:
    """One kill moment per seed, uniform over 15–95 % of an uninterrupted run's wall time."""
    return [float(np.random.default_rng(s).uniform(0.15, 0.95)) * total_s for s in seeds]


def leftovers(folder: Path) -> list[str]:
    """Temporary files of interrupted atomic writes still lying in ``folder``."""
    return sorted(p.name for p in folder.rglob(".*") if p.is_file())


# -- phonons folder: NPZ + CSV + JSON ------------------------------------------------------------
def _check_phonon_folder(out: Path, n_modes: int) -> None:
    """Every output present is complete: NPZ loads with all modes, CSVs parse, JSON parses."""
    from qdlab.workflows.phonons import PhononResult

    if (out / "phonons.npz").exists():
        assert PhononResult.load(out / "phonons.npz").n_modes == n_modes
    for name in ("dos.csv", "pdos.csv", "frequencies.csv", "peaks.csv"):
        if (out / name).exists():
            rows = (out / name).read_text().splitlines()
            assert len(rows) > 1 and all(len(r.split(",")) == len(rows[0].split(",")) for r in rows), name
    for name in ("summary.json", "peaks.json"):
        if (out / name).exists():
            json.loads((out / name).read_text())


@pytest.mark.slow  # 7 CLI runs of ≈ 5 s each on the shared cores: ≈ 45 s here
def test_phonons_outputs_survive_sigkill_and_resume(tmp_path):
    from ase.io import write

    from qdlab.build import PerovskiteRecipe, build
    from qdlab.workflows.phonons import PhononResult

    write(tmp_path / "nc.extxyz", build(PerovskiteRecipe(composition="CsPbI3", size="2", neutrality="surface-charge")))
    cmd = lambda out: qdlab("phonons", "nc.extxyz", "-e", "classical", "--no-relax", "-o", out, "--json")  # noqa: E731
    total = run_timed(cmd("ref"), tmp_path)
    ref = PhononResult.load(tmp_path / "ref" / "phonons.npz")
    out = tmp_path / "out"
    for t in moments(total):
        kill_after(cmd("out"), tmp_path, t)
        _check_phonon_folder(out, ref.n_modes)
    run_timed(cmd("out"), tmp_path)
    _check_phonon_folder(out, ref.n_modes)
    got = PhononResult.load(out / "phonons.npz")
    np.testing.assert_allclose(got.force_constants_eV_A2, ref.force_constants_eV_A2, atol=1e-10)
    np.testing.assert_allclose(got.frequencies_cm1, ref.frequencies_cm1, atol=1e-8)
    for name in ("dos.csv", "pdos.csv", "frequencies.csv"):
        a = np.loadtxt(out / name, delimiter=",", skiprows=1)
        b = np.loadtxt(tmp_path / "ref" / name, delimiter=",", skiprows=1)
        np.testing.assert_allclose(a, b, atol=1e-8, err_msg=name)
    assert not leftovers(out), leftovers(out)


# -- gap trace: CSV + JSON-lines checkpoint -----------------------------------------------------
def _trajectory(path: Path, n_frames: int = 48) -> None:
    from ase.io import write

    from qdlab.build import PerovskiteRecipe, build

    a0 = build(PerovskiteRecipe(composition="CsPbBr3", size="2"))
    rng = np.random.default_rng(7)
    frames = []
    for k in range(n_frames):
        a = a0.copy()
        a.positions += rng.normal(0, 0.05, a.positions.shape)
        a.info["time_fs"] = 10.0 * k
        frames.append(a)
    write(path, frames, format="extxyz")


def test_gap_checkpoint_survives_sigkill_and_resumes(tmp_path):
    from qdlab.workflows.gap import GapCheckpoint, GapSettings, plan_frames

    _trajectory(tmp_path / "md.extxyz")
    cmd = lambda out: qdlab("electronic", "gap", "md.extxyz", "--no-soc", "--json", "-o", out)  # noqa: E731
    total = run_timed(cmd("ref.csv"), tmp_path)
    ref = np.loadtxt(tmp_path / "ref.csv", delimiter=",", skiprows=1)
    plan = plan_frames(tmp_path / "md.extxyz", GapSettings(soc=False))
    ckpt = tmp_path / "gap.csv.ckpt.jsonl"
    for t in moments(total, seeds=(0, 1, 2)):
        kill_after(cmd("gap.csv"), tmp_path, t)
        if ckpt.exists():  # every record on disk is readable, once, and equals the reference frame
            lines = ckpt.read_text().splitlines()[1:]
            idx = [json.loads(line)["index"] for line in lines if line.endswith("}")]
            assert len(idx) == len(set(idx)), "a frame recorded twice"
            for k, rec in GapCheckpoint(ckpt, plan.key).load().items():
                assert rec["gap_eV"] == pytest.approx(ref[k, 1], abs=1e-9)  # the CSV keeps 9 decimals
    run_timed(cmd("gap.csv"), tmp_path)
    got = np.loadtxt(tmp_path / "gap.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(got, ref, atol=1e-12)
    assert not ckpt.exists() and not leftovers(tmp_path)


def test_gap_resume_after_a_torn_last_record_loses_nothing(tmp_path):
    """A kill in the middle of a record's write leaves a line without its newline: the resumed run
    must not glue its first record onto that fragment (both would be unreadable afterwards)."""
    from qdlab.workflows.gap import GapCheckpoint, GapSettings, gap_trajectory, plan_frames

    _trajectory(tmp_path / "md.extxyz", 12)
    s = GapSettings(soc=False, chunk=2)
    ckpt = tmp_path / "g.ckpt.jsonl"
    ref = gap_trajectory(tmp_path / "md.extxyz", s, checkpoint=ckpt)
    text = ckpt.read_text()
    lines = text.splitlines(keepends=True)
    ckpt.write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2])  # 4 records + half of the 5th
    again = gap_trajectory(tmp_path / "md.extxyz", s, checkpoint=ckpt)
    np.testing.assert_array_equal(again.gap_eV, ref.gap_eV)
    on_disk = GapCheckpoint(ckpt, plan_frames(tmp_path / "md.extxyz", s).key).load()
    assert sorted(on_disk) == list(range(12))  # the resumed records are all readable


# -- campaign store: SQLite rows + files --------------------------------------------------------
STORE_SPEC = classical_phonon_spec("killstore", range(4), peaks=True)


@pytest.mark.slow  # 3 killed + 1 full campaign run (Dask cluster each) + the reference: 34–104 s here
def test_campaign_store_survives_sigkill_at_random_moments(tmp_path):
    from qdlab.campaign import load_spec
    from qdlab.campaign.spec import expand
    from qdlab.campaign.tasks import run_task
    from qdlab.store.results import DONE, ResultStore

    spec = tmp_path / "spec.toml"
    spec.write_text(STORE_SPEC.format(store=tmp_path / "s.db"))
    tasks = expand(load_spec(spec))
    ref_store, ref_files = str(tmp_path / "ref.db"), str(tmp_path / "ref_files")
    by_key = {}
    for t in tasks:  # reference: every task uninterrupted, in this process, parents first
        by_key[t.key] = run_task(t.to_dict(), by_key.get(t.parent), ref_store, ref_files)
    cmd = qdlab("campaign", "run", str(spec), "--json")
    total = 20.0  # an uninterrupted run measured 12–35 s here (quiet / load 8), cluster start included
    for t in moments(total, seeds=(0, 1, 2)):
        kill_after(cmd, tmp_path, t)
        rows = ResultStore(tmp_path / "s.db", tmp_path / "s_files").rows() if (tmp_path / "s.db").exists() else []
        keys = [r.key for r in rows if r.status == DONE]
        assert len(keys) == len(set(keys)), "a task stored twice"
    run_timed(cmd, tmp_path)
    got = {r.key: r for r in ResultStore(tmp_path / "s.db", tmp_path / "s_files").rows()}
    ref = {r.key: r for r in ResultStore(ref_store, ref_files).rows()}
    assert set(got) == set(ref) == {t.key for t in tasks}
    assert len(ResultStore(tmp_path / "s.db").rows()) == len(tasks)  # no duplicate row
    for key, r in ref.items():
        assert got[key].status == DONE
        for name, v in r.results.items():
            if isinstance(v, float) and "seconds" not in name:
                assert got[key].results[name] == pytest.approx(v, abs=1e-6), name
