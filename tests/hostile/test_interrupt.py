"""Ctrl-C with worker processes (issue 13): `qdlab campaign run` on a local Dask cluster of 2 workers
and `qdlab phonons --workers 2` are started as real CLI processes in their own session, and SIGINT is
sent to the whole process group once work is running — exactly what a terminal's Ctrl-C does (the
workers receive it too). Asserted: exit code 130, exactly one line on stderr (no Dask or
multiprocessing traceback), every worker process stopped when that line appears and nothing of the
session left after exit, and a rerun of the same command finishes to the result of an uninterrupted
run computed independently in this process.

Bounds (measured on the shared 2-core machine at load average ≈ 8): the line appears 0.08–0.10 s
after SIGINT (workers already killed), the process exits 0.4–0.9 s after SIGINT. Of that, ≈ 0.25–0.5 s
is the interpreter tearing down its imported modules (measured alone: `import distributed` then exit);
before this change: 3.4 s (phonons) and 4.2–4.6 s with 70 stderr lines (campaign). The test asserts
the line within 1.0 s and the exit within 1.5 s (the margin is that teardown under load, stated here).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest
from campaign.helpers import classical_phonon_spec

LINE_BOUND_S = 1.0
EXIT_BOUND_S = 1.5

SPEC = classical_phonon_spec("ctrlc", range(4))


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _qdlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "qdlab", *args]


def _workers(pid: int) -> list[psutil.Process]:
    """Spawned worker processes (Dask workers or pool processes) below ``pid``."""
    out = []
    for c in psutil.Process(pid).children(recursive=True):
        try:
            if "spawn_main" in " ".join(c.cmdline()):
                out.append(c)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return out


def _running(procs: list[psutil.Process]) -> list[int]:
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p.pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def ctrl_c(cmd: list[str], cwd: Path, ready: Callable[[], bool], n_workers: int = 2, timeout_s: float = 300) -> dict:
    """Start ``cmd`` in a new session, wait until ``ready()`` and ``n_workers`` workers run, send
    SIGINT to the process group and time what follows."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"finished before the interrupt: {proc.stderr.read()[-2000:]}"
            workers = _workers(proc.pid)
            if len(workers) >= n_workers and ready():
                break
            time.sleep(0.05)
        else:
            pytest.fail("work did not start in time")
        lines: list[tuple[float, str, list[int]]] = []

        def read() -> None:
            for line in proc.stderr:
                lines.append((time.monotonic() - t_sig, line.rstrip("\n"), _running(workers)))

        t_sig = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground group
        reader = threading.Thread(target=read)
        reader.start()
        rc = proc.wait(timeout=60)
        t_exit = time.monotonic() - t_sig
        reader.join(10)
        gone = _wait_group_empty(proc.pid)
        return {"rc": rc, "t_exit": t_exit, "lines": lines, "workers": [w.pid for w in workers], "group_left": gone}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_group_empty(pgid: int, timeout_s: float = 5.0) -> list[int]:
    """Processes still in the process group ``pgid`` after ``timeout_s`` (zombies excluded)."""
    deadline = time.monotonic() + timeout_s
    left: list[int] = []
    while time.monotonic() < deadline:
        left = []
        for p in psutil.process_iter(["pid", "status"]):
            try:
                if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                    left.append(p.pid)
            except (ProcessLookupError, psutil.NoSuchProcess):
                continue
        if not left:
            break
        time.sleep(0.1)
    return left


def _check_interrupt(r: dict) -> None:
    assert r["rc"] == 130, r
    assert len(r["lines"]) == 1, "\n".join(line for _, line, _ in r["lines"])
    t_line, line, alive_at_line = r["lines"][0]
    assert line.startswith("error: interrupted") and "rerun" in line, line
    assert t_line < LINE_BOUND_S, f"error line {t_line:.2f} s after SIGINT"
    assert not alive_at_line, f"workers {alive_at_line} still running when the line was printed"
    assert r["t_exit"] < EXIT_BOUND_S, f"exit {r['t_exit']:.2f} s after SIGINT"
    assert not r["group_left"], f"processes left: {r['group_left']}"


@pytest.mark.slow  # a Dask cluster started twice and 4 reference tasks: ≈ 50 s here
def test_ctrl_c_campaign_run_stops_at_once_and_resumes(tmp_path):
    from qdlab.campaign import load_spec
    from qdlab.campaign.spec import expand
    from qdlab.campaign.tasks import run_task
    from qdlab.store.results import DONE, ResultStore

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(store=tmp_path / "s.db"))
    files = tmp_path / "s_files"

    def ready() -> bool:  # a Hessian checkpoint is being written by a worker
        return any(p.stat().st_size > 0 for p in files.glob("*/*/hessian.ckpt*"))

    r = ctrl_c(_qdlab("campaign", "run", str(spec), "--json"), tmp_path, ready)
    _check_interrupt(r)
    assert not (tmp_path / "s_files.lock").exists()  # the store lock was released
    again = subprocess.run(_qdlab("campaign", "run", str(spec), "--json"), cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    res = json.loads(again.stdout)
    assert res["n_failed"] == 0 and res["n_done"] + res["n_skipped"] == 4 and res["n_done"] >= 1, res
    # reference: the same tasks run uninterrupted, in this process, into another store
    ref_store, ref_files = str(tmp_path / "ref.db"), str(tmp_path / "ref_files")
    for t in expand(load_spec(spec)):
        run_task(t.to_dict(), None, ref_store, ref_files)
    got = {row.key: row for row in ResultStore(tmp_path / "s.db", files).rows()}
    ref = {row.key: row for row in ResultStore(ref_store, ref_files).rows()}
    assert set(got) == set(ref) and len(got) == 4 and all(row.status == DONE for row in got.values())
    for key, row in ref.items():
        for name in ("n_modes", "n_imaginary", "lowest_cm1", "highest_cm1", "M1_cm1", "M2_cm1", "M3_cm1"):
            assert got[key].results[name] == pytest.approx(row.results[name], abs=1e-6), name
        with np.load(ResultStore(tmp_path / "s.db", files).path(got[key].files["phonons"])) as a, \
                np.load(ResultStore(ref_store, ref_files).path(row.files["phonons"])) as b:
            np.testing.assert_allclose(a["frequencies_cm1"], b["frequencies_cm1"], atol=1e-6)


@pytest.mark.slow  # two spawned pools + a serial reference Hessian of 191 atoms: ≈ 40 s here
def test_ctrl_c_phonons_workers_stops_at_once_and_resumes(tmp_path):
    from ase.io import read, write

    from qdlab.build import PerovskiteRecipe, build
    from qdlab.engines.classical import LJCoulomb
    from qdlab.workflows.phonons import PhononResult, phonons

    atoms = build(PerovskiteRecipe(composition="CsPbI3", size="3", neutrality="surface-charge"))
    write(tmp_path / "nc.extxyz", atoms)
    out = tmp_path / "out"
    cmd = _qdlab("phonons", "nc.extxyz", "-e", "classical", "--no-relax", "--workers", "2", "-o", "out", "--json")

    def ready() -> bool:  # forces are arriving in the checkpoint
        ck = out / "hessian.ckpt"
        return ck.exists() and ck.stat().st_size > 4096

    r = ctrl_c(cmd, tmp_path, ready)
    _check_interrupt(r)
    assert not (out / "phonons.npz").exists() and not (out / "hessian.ckpt.lock").exists()
    again = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    summary = json.loads(again.stdout)
    assert summary["displacements_reused"] > 0, summary  # resumed, not recomputed
    with pytest.warns(UserWarning, match="imaginary"):  # unrelaxed model: as in the CLI run
        ref = phonons(read(tmp_path / "nc.extxyz"), LJCoulomb())  # uninterrupted, serial, in this process
    got = PhononResult.load(out / "phonons.npz")
    np.testing.assert_allclose(got.frequencies_cm1, ref.frequencies_cm1, atol=1e-6)
