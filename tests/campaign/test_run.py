"""Running campaigns on a local Dask cluster: kill and resume, failures, PostgreSQL, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from campaign.helpers import KILL_SPEC, classical_phonon_spec, postgres_url, reset_postgres, write_spec
from qdlab.campaign import load_spec, run_campaign
from qdlab.cli import campaign as cc
from qdlab.store.results import DONE, FAILED, ResultStore

runner = CliRunner()


def _count_rows(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("select count(*) from systems").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """Run the 8-model campaign in a real subprocess, SIGKILL it after ≥ 2 finished rows, rerun."""
    folder = tmp_path_factory.mktemp("kill")
    spec = write_spec(folder, KILL_SPEC, store="eight.db")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from qdlab.cli.campaign import campaign_app; campaign_app()",
                             "run", str(spec)], cwd=folder, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = folder / "eight.db"
    t0 = time.time()
    n_at_kill = 0
    while time.time() - t0 < 150:
        time.sleep(0.1)
        n_at_kill = _count_rows(db) if db.exists() else 0
        if n_at_kill >= 2 or proc.poll() is not None:
            break
    os.kill(proc.pid, signal.SIGKILL)  # the client only, as a crash or ctrl-\ would
    proc.wait(timeout=30)
    time.sleep(1.0)
    try:  # nothing of the killed run may survive to write later
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    n_after_kill = _count_rows(db)
    res = run_campaign(load_spec(spec))
    return {"folder": folder, "spec": spec, "db": db, "n_at_kill": n_at_kill, "n_after_kill": n_after_kill,
            "result": res, "stderr": proc.stderr.read().decode()[-2000:]}


def test_kill_and_resume_completes_only_missing_tasks(killed_and_resumed):
    k = killed_and_resumed
    assert 2 <= k["n_after_kill"] < 8, k  # killed mid-run
    res = k["result"]
    assert res.n_failed == 0, res.failures
    assert res.n_skipped == k["n_after_kill"] and res.n_done == 8 - k["n_after_kill"]
    rs = ResultStore(k["db"])
    rows = rs.rows()
    assert len(rows) == 8 and len({r.key for r in rows}) == 8 and all(r.status == DONE for r in rows)
    assert rs.count() == 8
    # provenance and large arrays as files referenced from the row
    r = rows[0]
    prov = r.data["provenance"]
    assert prov["versions"]["qdlab"] and prov["versions"]["ase"] and prov["engine_model_hash"] != "n/a"
    assert prov["seed"] == r.kvp["seed"] and r.data["settings"]["delta"] == 0.01
    with np.load(rs.path(r.files["phonons"])) as z:
        assert z["frequencies_cm1"].shape == (r.results["n_modes"],)
    # a third run does nothing
    again = run_campaign(load_spec(k["spec"]))
    assert again.n_skipped == 8 and again.n_done == 0 and ResultStore(k["db"]).count() == 8


def test_postgres_gives_identical_results(killed_and_resumed):
    url = postgres_url()
    reset_postgres(url)
    k = killed_and_resumed
    res = run_campaign(load_spec(k["spec"], {"store": url, "files": str(k["folder"] / "pg_files")}))
    assert res.n_done == 8 and res.n_failed == 0
    pg = {r.key: r for r in ResultStore(url, k["folder"] / "pg_files").rows()}
    sq = {r.key: r for r in ResultStore(k["db"]).rows()}
    assert set(pg) == set(sq) and len(pg) == 8
    for key, r in sq.items():
        for name in ("n_modes", "n_imaginary", "lowest_cm1", "highest_cm1", "M1_cm1"):
            assert pg[key].results.get(name) == r.results.get(name), name
    again = run_campaign(load_spec(k["spec"], {"store": url, "files": str(k["folder"] / "pg_files")}))
    assert again.n_skipped == 8 and ResultStore(url).count() == 8


def _writer(url: str, files: str, keys: list[int], tag: str) -> None:
    from ase import Atoms

    rs = ResultStore(url, files)
    for k in keys:
        n = 1 + k % 4
        rs.put(f"key{k:04d}", Atoms(numbers=[1 + k % 3] * n, positions=[[0, 0, 1.5 * i] for i in range(n)]),
               {"writer": tag, "campaign": "race", "index": k}, {"results": {"k": k}})


def _race(url: str, files: str) -> ResultStore:
    rs = ResultStore(url, files)
    rs.check()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, files, list(range(0, 40)), "a")),
             ctx.Process(target=_writer, args=(url, files, list(range(20, 60)), "b"))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    return rs


def _check_race(rs: ResultStore) -> None:
    rows = rs.rows(campaign="race", with_atoms=True)
    keys = [r.key for r in rows]
    assert len(keys) == 60 and len(set(keys)) == 60  # nothing lost, no duplicates
    assert sorted(r.kvp["index"] for r in rows) == list(range(60))
    for r in rows:  # every row kept its own atoms and data
        k = r.kvp["index"]
        assert r.key == f"key{k:04d}" and r.data["results"]["k"] == k
        assert list(r.atoms.numbers) == [1 + k % 3] * (1 + k % 4)


def test_two_writers_sqlite_lose_nothing(tmp_path):
    _check_race(_race(str(tmp_path / "race.db"), str(tmp_path / "files")))


def test_two_writers_postgres_lose_nothing(tmp_path):
    url = postgres_url()
    reset_postgres(url)
    _check_race(_race(url, str(tmp_path / "files")))


def test_failures_are_recorded_and_do_not_abort(tmp_path):
    """CsPbBr3 has no classical parameters: its tasks fail (children too), CsPbI3's finish; a rerun
    retries only the failed ones; status and report show the errors."""
    spec = write_spec(tmp_path, """
name = "mixed"
store = "mixed.db"
[[grid]]
composition = ["CsPbI3", "CsPbBr3"]
size = "2"
neutrality = "surface-charge"
[[engines]]
name = "classical"
[[steps]]
workflow = "relax"
fmax = 0.05
[[steps]]
workflow = "phonons"
[execution]
workers = 1
""")
    app = typer.Typer()
    app.add_typer(cc.campaign_app, name="campaign")
    app.command("report")(cc.report_cmd)
    r = runner.invoke(app, ["campaign", "run", str(spec)])
    assert r.exit_code == 1, r.output  # issue 13: non-zero when any task failed
    rs = ResultStore(tmp_path / "mixed.db")
    rows = {(r.kvp["composition"], r.kvp["step"]): r for r in rs.rows()}
    assert rows[("CsPbI3", "relax")].status == DONE and rows[("CsPbI3", "phonons")].status == DONE
    assert rows[("CsPbBr3", "relax")].status == FAILED
    assert "no parameters for Br" in rows[("CsPbBr3", "relax")].data["error"]
    assert rows[("CsPbBr3", "phonons")].status == FAILED
    assert "parent step relax failed" in rows[("CsPbBr3", "phonons")].data["error"]
    r = runner.invoke(app, ["campaign", "status", str(spec), "--json"])
    assert r.exit_code == 0
    import json

    st = json.loads(r.stdout)
    assert sorted(x["status"] for x in st) == ["done", "done", "failed", "failed"]
    res = run_campaign(load_spec(spec))  # retries the two failed tasks, keeps one row per task
    assert res.n_skipped == 2 and res.n_failed == 2 and rs.count() == 4


def test_existing_scheduler(tmp_path):
    """`--scheduler ADDRESS` runs the tasks on a cluster started elsewhere."""
    from distributed import LocalCluster

    spec = write_spec(tmp_path, classical_phonon_spec("eight", range(2)), store="s.db")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        app = typer.Typer()
        app.add_typer(cc.campaign_app, name="campaign")
        r = runner.invoke(app, ["campaign", "run", str(spec), "--scheduler", cluster.scheduler_address, "--json"])
        assert r.exit_code == 0, r.output
    import json

    d = json.loads(r.stdout)
    assert d["n_done"] == 2 and d["workers"] == 1 and ResultStore(tmp_path / "s.db").count(status=DONE) == 2
