"""Two `qdlab campaign run` on one store at the same time (issue 13): the second is refused with one
line naming the first, and the store afterwards holds exactly the rows of a single run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SPEC = """
name = "conc"
store = "{store}"
[[grid]]
composition = "CsPbI3"
size = "2"
neutrality = "surface-charge"
seed = [0, 1]
[[engines]]
name = "classical"
[[steps]]
workflow = "relax"
fmax = 0.05
[execution]
workers = 1
"""


def _env():
    src = str(Path(__file__).resolve().parents[2] / "src")
    return os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.slow  # two Dask clusters on the shared cores: ≈40 s
def test_second_campaign_run_is_refused_and_store_equals_a_single_run(tmp_path):
    store = tmp_path / "s.db"
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(store=store))
    cmd = [sys.executable, "-m", "qdlab", "campaign", "run", str(spec), "--json"]
    first = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "s_files.lock"
    t0 = time.time()
    while not lock.exists() and first.poll() is None and time.time() - t0 < 120:
        time.sleep(0.05)
    assert lock.exists(), first.stderr.read() if first.poll() is not None else "no lock"
    second = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {first.pid}" in lines[0], second.stderr
    assert json.loads(out)["n_done"] == 2
    status = subprocess.run([sys.executable, "-m", "qdlab", "campaign", "status", str(spec), "--json"], env=_env(),
                            capture_output=True, text=True, check=True)
    rows = json.loads(status.stdout)
    assert [r["status"] for r in rows] == ["done", "done"]
    from ase.db import connect

    with connect(store) as db:
        assert db.count() == 2  # every task ran once: no duplicate rows
    assert not lock.exists()
