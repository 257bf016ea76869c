"""MD output integrity (issue 13): real SIGKILL at random moments, five times per format, then the
same command again → the uninterrupted trajectory frame for frame; torn/extra frames dropped;
damaged checkpoints refused in one line; a second writer refused by the lock.

Classical LJ+Coulomb on an unrelaxed 2×2×2 CsPbI3 cluster (63 atoms, ≈1,000 steps/s)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase.io import read, write
from typer.testing import CliRunner

from qdlab.build import PerovskiteRecipe, build
from qdlab.cli.main import app
from qdlab.engines import get_calculator
from qdlab.errors import QdlabError
from qdlab.store.locks import LockError, lock_path, output_lock
from qdlab.workflows.md import run_md

runner = CliRunner()
KW = dict(ensemble="langevin", temperature_K=300, timestep_fs=2, steps=600, interval=10, seed=7)
ARGS = ["-e", "classical", "--steps", "600", "--interval", "10", "--timestep", "2", "--seed", "7", "--json"]


@pytest.fixture(scope="module")
def cluster():
    return build(PerovskiteRecipe(composition="CsPbI3", size="2", neutrality="surface-charge"))


@pytest.fixture(scope="module")
def calc():
    return get_calculator("classical")


def _env():
    src = str(Path(__file__).resolve().parents[2] / "src")
    return os.environ | {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
                         "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _n_frames(ckpt: Path) -> int:
    try:
        with np.load(ckpt) as z:
            return int(z["n_frames"])
    except Exception:  # noqa: BLE001 - absent or being replaced right now
        return 0


def _same(a, b):
    assert len(a) == len(b)
    assert [f.info["step"] for f in a] == [f.info["step"] for f in b]
    # extxyz stores 8 decimals; the continued run draws the same random numbers as the clean one
    assert max(np.abs(x.positions - y.positions).max() for x, y in zip(a, b)) < 1e-6
    assert max(np.abs(x.get_momenta() - y.get_momenta()).max() for x, y in zip(a, b)) < 1e-6


@pytest.mark.slow  # ≈45 s each on the shared 2 cores: seven process starts per format
@pytest.mark.parametrize("suffix", [".traj", ".extxyz"])
def test_five_random_sigkills_resume_to_the_uninterrupted_run(cluster, calc, tmp_path, suffix):
    ref = run_md(cluster, calc, trajectory=tmp_path / f"ref{suffix}", **KW)
    write(tmp_path / "in.extxyz", cluster)
    out = tmp_path / f"k{suffix}"
    ckpt = out.with_name(out.name + ".ckpt.npz")
    cmd = [sys.executable, "-m", "qdlab", "md", str(tmp_path / "in.extxyz"), *ARGS, "-o", str(out)]
    rnd = random.Random(13)
    kills = 0
    while kills < 5:
        before = _n_frames(ckpt)
        target = before + rnd.randint(1, 8)
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.time()
        while _n_frames(ckpt) < target and proc.poll() is None and time.time() - t0 < 60:
            time.sleep(0.002)
        time.sleep(rnd.uniform(0, 0.02))  # a random moment: mid-step, mid-frame or mid-checkpoint
        if proc.poll() is not None:
            pytest.fail(f"the run finished before kill {kills + 1}: {proc.stderr.read().decode()[-300:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert _n_frames(ckpt) < ref.n_frames
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["restarted_from_step"] > 0
    _same(read(out, ":"), read(tmp_path / f"ref{suffix}", ":"))
    assert not lock_path(out).exists()


@pytest.mark.parametrize("suffix", [".traj", ".extxyz"])
def test_torn_and_extra_frames_are_dropped_not_duplicated(cluster, calc, tmp_path, suffix):
    kw = KW | {"steps": 200, "interval": 20}
    ref = run_md(cluster, calc, trajectory=tmp_path / f"ref{suffix}", **kw)
    out = tmp_path / f"r{suffix}"

    class Stop(Exception):
        pass

    def stop(step, total, info):
        if step == 100:
            raise Stop

    with pytest.raises(Stop):
        run_md(cluster, calc, trajectory=out, progress=stop, **kw)
    # a frame written after the last checkpoint (killed between the two writes) and torn bytes
    extra = read(out, -1)
    extra.info["step"] = 120
    write(out, extra, append=True, format="traj" if suffix == ".traj" else "extxyz")
    with open(out, "ab") as fh:
        fh.write(b"\x00\x01garbage" if suffix == ".traj" else b"63\nProperties=species:S:1:pos:R:3\nPb 0.0")
    res = run_md(cluster, calc, trajectory=out, **kw)
    assert res.restarted_from_step == 100
    _same(read(out, ":"), read(tmp_path / f"ref{suffix}", ":"))
    assert res.n_frames == ref.n_frames == 11


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage"])
def test_damaged_checkpoint_is_one_line(cluster, calc, tmp_path, damage):
    out = tmp_path / "d.extxyz"
    run_md(cluster, calc, trajectory=out, **(KW | {"steps": 40, "interval": 20}))
    ckpt = out.with_name(out.name + ".ckpt.npz")
    data = ckpt.read_bytes()
    ckpt.write_bytes({"truncate": data[: len(data) // 2], "empty": b"", "garbage": os.urandom(300),
                      "flip": data[:200] + bytes(40) + data[240:]}[damage])
    write(tmp_path / "in.extxyz", cluster)
    res = runner.invoke(app, ["md", str(tmp_path / "in.extxyz"), *ARGS[:-1], "--steps", "60", "--interval", "20", "-o", str(out)])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: checkpoint") and "damaged" in lines[0], res.stderr
    with pytest.raises(QdlabError, match="damaged"):
        run_md(cluster, calc, trajectory=out, **(KW | {"steps": 60, "interval": 20}))
    # --overwrite starts afresh
    assert run_md(cluster, calc, trajectory=out, restart=False, **(KW | {"steps": 40, "interval": 20})).n_frames == 3


_WAITER = """import pathlib, sys, time
from qdlab.cli.main import app
ready, lock = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ready.write_text("imported")
t0 = time.time()
while not lock.exists() and time.time() - t0 < 120:
    time.sleep(0.002)
sys.argv = ["qdlab", *sys.argv[3:]]
app()
"""


def test_second_writer_refused_and_result_equals_single_run(cluster, calc, tmp_path):
    """The second `qdlab md` is started (imports done) before the first and fires the moment the first
    holds the lock, so it always meets a live writer however loaded the machine is."""
    run_md(cluster, calc, trajectory=tmp_path / "ref.extxyz", **KW)
    write(tmp_path / "in.extxyz", cluster)
    out = tmp_path / "conc.extxyz"
    args = ["md", str(tmp_path / "in.extxyz"), *ARGS, "-o", str(out)]
    ready = tmp_path / "second.ready"
    second = subprocess.Popen([sys.executable, "-c", _WAITER, str(ready), str(lock_path(out)), *args], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not ready.exists() and time.time() - t0 < 120:
        time.sleep(0.01)
    first = subprocess.Popen([sys.executable, "-m", "qdlab", *args], env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    _, second_err = second.communicate(timeout=180)
    assert first.wait(180) == 0, first.stderr.read()
    assert second.returncode == 2, second_err
    lines = second_err.strip().splitlines()
    assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and "being written" in lines[0], second_err
    _same(read(out, ":"), read(tmp_path / "ref.extxyz", ":"))


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    target = tmp_path / "x.extxyz"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path(target).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "command": "qdlab md",
                                             "started": time.time()}))
    with output_lock(target):
        assert json.loads(lock_path(target).read_text())["pid"] == os.getpid()
        with pytest.raises(LockError, match=f"pid {os.getpid()}"):
            # a second holder in this very process is refused as well (own open file description)
            with output_lock(target):
                pass
    assert not lock_path(target).exists()


def test_atomic_files_follow_the_umask(tmp_path):
    from qdlab.store.files import write_text

    old = os.umask(0o022)
    try:
        mode = write_text(tmp_path / "a.csv", "x\n").stat().st_mode & 0o777
        os.umask(0o002)
        mode2 = write_text(tmp_path / "b.csv", "x\n").stat().st_mode & 0o777
    finally:
        os.umask(old)
    assert mode == 0o644 and mode2 == 0o664


@pytest.mark.parametrize("fail", ["frame", "checkpoint"])
def test_full_disk_then_rerun_never_duplicates_a_frame(cluster, calc, tmp_path, monkeypatch, fail):
    """ENOSPC in the middle of a frame write, or in the checkpoint write after a complete frame."""
    import errno

    import qdlab.workflows.md as md

    kw = KW | {"steps": 120, "interval": 20}
    ref = run_md(cluster, calc, trajectory=tmp_path / "ref.extxyz", **kw)
    out = tmp_path / "full.extxyz"
    real_append, real_save = md.append_frame, md._save_ckpt
    calls = {"n": 0}

    def append(path, frame):
        calls["n"] += 1
        if fail == "frame" and calls["n"] == 4:
            with open(path, "a") as fh:
                fh.write(f"{len(frame)}\nProperties=species:S:1:pos:R:3 step=60\nCs 1.0")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_append(path, frame)

    def save(path, state):
        if fail == "checkpoint" and calls["n"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_save(path, state)

    res = _fail_then_rerun(monkeypatch, (cluster, calc, out, kw), append, save, OSError)
    assert res.restarted_from_step == 40
    _same(read(out, ":"), read(tmp_path / "ref.extxyz", ":"))
    assert [f.info["step"] for f in read(out, ":")] == list(range(0, 121, 20)) and ref.n_frames == 7


@pytest.mark.parametrize("suffix", [".traj", ".extxyz"])
@pytest.mark.parametrize("when", ["before frame 0", "after frame 0, before its checkpoint", "after frame 0"])
def test_a_run_killed_around_its_first_frame_resumes(cluster, calc, tmp_path, monkeypatch, suffix, when):
    """The first frame's window: killed before it, between it and its checkpoint, or right after both.
    Before the fix the middle case left a trajectory without a checkpoint, which the rerun refused
    ("exists without a checkpoint"), and the last one wrote frame 0 twice on resume."""
    import qdlab.workflows.md as md

    kw = KW | {"steps": 60, "interval": 20}
    ref = run_md(cluster, calc, trajectory=tmp_path / f"ref{suffix}", **kw)
    out = tmp_path / f"k{suffix}"

    class Kill(Exception):
        pass

    real_append, real_save = md.append_frame, md._save_ckpt
    calls = {"save": 0}

    def append(path, frame):
        if when == "before frame 0":
            raise Kill
        real_append(path, frame)
        if when.startswith("after frame 0, before"):
            raise Kill

    def save(path, state):
        real_save(path, state)
        calls["save"] += 1
        if when == "after frame 0" and int(state["n_frames"]) == 1:
            raise Kill

    res = _fail_then_rerun(monkeypatch, (cluster, calc, out, kw), append, save, Kill)
    _same(read(out, ":"), read(tmp_path / f"ref{suffix}", ":"))
    assert res.n_frames == ref.n_frames == 4
    assert np.array_equal(res.frames["step"], ref.frames["step"])


def _fail_then_rerun(monkeypatch, job, append, save, exc):
    """Run MD with the frame and checkpoint writers replaced (they raise ``exc`` at some moment), then
    rerun with the real ones; returns the rerun's result."""
    import qdlab.workflows.md as md

    cluster, calc, out, kw = job
    real = md.append_frame, md._save_ckpt
    monkeypatch.setattr(md, "append_frame", append)
    monkeypatch.setattr(md, "_save_ckpt", save)
    with pytest.raises(exc):
        run_md(cluster, calc, trajectory=out, **kw)
    monkeypatch.setattr(md, "append_frame", real[0])
    monkeypatch.setattr(md, "_save_ckpt", real[1])
    return run_md(cluster, calc, trajectory=out, **kw)
