"""Workers of a killed run end with it, also when the run is killed while they are still starting
(before their parent-death signal is armed)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil


def test_worker_starting_when_the_parent_is_killed_exits():
    code = """
import time
from qdlab.workflows.pool import worker_pool
with worker_pool(2) as pool:
    futs = [pool.submit(time.sleep, 60) for _ in range(2)]
    print("submitted", flush=True)
    time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "submitted"
        workers = [c for c in psutil.Process(proc.pid).children(recursive=True)
                   if "spawn_main" in " ".join(c.cmdline())]
        assert workers, "the pool started no worker"
        proc.send_signal(signal.SIGKILL)  # at once: the spawned workers are still importing
        proc.wait(10)
        t0 = time.time()
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, [p.pid for p in alive]
        assert time.time() - t0 < 30
    finally:
        if proc.poll() is None:
            proc.kill()
