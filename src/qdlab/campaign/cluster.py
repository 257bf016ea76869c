"""Dask clusters for campaigns: embedded local cluster, an existing scheduler, or SLURM/PBS jobs.

- local (default): ``workers`` processes with one thread each; ``OMP_NUM_THREADS=1`` and a passive
  OpenMP wait policy in every worker (two busy-waiting processes on two cores were measured 30×
  slower), no dashboard.
- ``scheduler``: connect to a running ``dask scheduler`` (its workers must see the same files
  folder and store).
- ``cluster = "slurm" | "pbs"``: dask-jobqueue starts batch jobs that each run ``processes``
  workers (default: one per core) with the queue, account, cores, memory, walltime and GPUs of
  the spec; :func:`job_script` shows the script without submitting anything.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from typing import Any

from qdlab.campaign.spec import Execution
from qdlab.errors import QdlabError
from qdlab.workflows.pool import sigint_blocked_children

#: environment of every worker process. Dask's default also sets MALLOC_TRIM_THRESHOLD_=65536, which
#: disables glibc's dynamic mmap threshold: every large tensor is then mmapped and unmapped again,
#: measured 1.7–2.3× slower CHGNet force calls in a worker. It is left out on purpose.
#: MALLOC_ARENA_MAX=1: tasks run in a pool thread; with its own glibc arena the memory a model
#: call faulted in elsewhere (engine warm-up, an earlier task) is not reused — measured 9.4 s for
#: the first 701-atom CHGNet call of a task thread after a warm-up, 1.6–2.0 s with one arena.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "MKL_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg", "MALLOC_ARENA_MAX": "1"}


#: Dask settings of campaign workers: the statistical profiler samples the running task's stack
#: every 10 ms under the GIL, which slows Python-heavy engines (CHGNet graph building) measurably
WORKER_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.admin.system-monitor.interval": "2s",
                 "distributed.admin.tick.interval": "200ms"}


#: the scheduler's HTTP routes (health, metrics) still listen without a dashboard, by default on
#: 8787: a second campaign on the machine then printed "Port 8787 is already in use" on stderr.
#: A free port is taken instead (no warning), the dashboard stays off.
NO_DASHBOARD = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}


def _jobqueue_kwargs(exe: Execution) -> dict[str, Any]:
    processes = exe.processes or exe.cores
    environ = json.dumps(WORKER_ENV).replace('"', '\\"')
    prologue = ([f"export {k}={v}" for k, v in WORKER_ENV.items()]
                + [f'export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON="{environ}"']
                + [f"export DASK_{k.upper().replace('.', '__').replace('-', '_')}={v}" for k, v in WORKER_CONFIG.items()]
                + list(exe.prologue))
    extra = list(exe.job_extra)
    if exe.gpus:
        extra.append(f"--gres=gpu:{exe.gpus}" if exe.cluster == "slurm" else f"-l ngpus={exe.gpus}")
    kw: dict[str, Any] = {"cores": exe.cores, "processes": processes, "memory": exe.memory,
                          "walltime": exe.walltime, "queue": exe.queue, "account": exe.account,
                          "job_script_prologue": prologue, "job_extra_directives": extra,
                          "worker_extra_args": ["--nthreads", "1"] if processes == exe.cores else [],
                          "name": "qdlab-worker"}
    if exe.python:
        kw["python"] = exe.python
    if exe.interface:
        kw["interface"] = exe.interface
    return kw


def _job_class(exe: Execution):
    if exe.cluster not in ("slurm", "pbs"):
        raise QdlabError(f"job scripts exist for slurm and pbs clusters, not {exe.cluster!r}")
    from qdlab.interrupts import kept_sigint

    # importing dask_jobqueue (its runner module) replaces the SIGINT handler with `sys.exit()`, so a
    # Ctrl-C would end the command silently with exit code 0
    with kept_sigint():
        if exe.cluster == "slurm":
            from dask_jobqueue.slurm import SLURMCluster as C, SLURMJob as J
        else:
            from dask_jobqueue.pbs import PBSCluster as C, PBSJob as J
    return C, J


def job_script(exe: Execution, scheduler: str = "tcp://SCHEDULER:8786") -> str:
    """The batch script dask-jobqueue would submit for one job of ``exe`` (nothing is submitted)."""
    _, job_cls = _job_class(exe)
    job = job_cls(scheduler=scheduler, **_jobqueue_kwargs(exe))
    return job.job_script()


def open_client(exe: Execution, *, workers: int | None = None, scheduler: str | None = None,
                cluster: str | None = None):
    """(Dask client, cluster or None) for the execution settings; the arguments override the spec.

    Raises :class:`QdlabError` with one line when the scheduler cannot be reached.
    """
    import dask
    from distributed import Client, LocalCluster

    exe = exe.model_copy(update={k: v for k, v in {"workers": workers, "scheduler": scheduler,
                                                    "cluster": cluster}.items() if v is not None})
    if exe.scheduler:
        try:
            return Client(exe.scheduler, timeout="10s"), None
        except (OSError, TimeoutError) as exc:
            raise QdlabError(f"Dask scheduler {exe.scheduler} is not reachable: {' '.join(str(exc).split())}") from None
    if exe.cluster in ("slurm", "pbs"):
        cluster_cls, _ = _job_class(exe)
        cl = cluster_cls(**_jobqueue_kwargs(exe))
        cl.scale(jobs=exe.jobs)
        return Client(cl), cl
    cl = client = None
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": dict(WORKER_ENV), **WORKER_CONFIG,
                              "distributed.scheduler.allowed-failures": 1}):
            for k, v in WORKER_ENV.items():
                os.environ.setdefault(k, v)
            # the cluster's event-loop thread is created with SIGINT blocked and spawns every worker,
            # so workers never see a Ctrl-C (the client handles it: close_client); the main thread
            # unblocks at once and stays interruptible while the workers start
            with sigint_blocked_children():
                cl = LocalCluster(n_workers=0, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR, memory_limit=0, env=dict(WORKER_ENV),
                                  scheduler_kwargs=NO_DASHBOARD)
            client = Client(cl)
            cl.scale(exe.workers)
            client.wait_for_workers(exe.workers)
    except KeyboardInterrupt:  # Ctrl-C while the cluster started
        if cl is not None:
            close_client(client, cl, interrupted=True)
        raise
    return client, cl


def _silence_dask() -> None:
    """No more log lines from Dask, Tornado or asyncio (workers about to be killed complain)."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("distributed", "tornado", "asyncio")]
    for name in ["distributed", "tornado", "asyncio", *names]:
        logging.getLogger(name).setLevel(logging.CRITICAL + 10)


def close_client(client, cl, *, interrupted: bool = False, timeout_s: float = 2.0) -> None:
    """Close the client and the cluster it started (``cl``; None for an existing scheduler).

    ``interrupted`` (Ctrl-C): Dask's loggers are silenced, the nannies of a local cluster told not
    to restart their workers and the worker processes killed at once (the tasks in flight are
    redone by the next run: every unit is checkpointed atomically), then everything is closed with a
    short timeout — measured ≈ 0.03 s instead of 4–5 s of graceful shutdown with tracebacks.
    """
    if interrupted:
        _silence_dask()
        nannies = list(getattr(cl, "workers", {}).values()) if cl is not None else []
        for nanny in nannies:
            if hasattr(nanny, "close_gracefully"):
                nanny.close_gracefully(reason="interrupted")
        if cl is not None and hasattr(cl, "workers"):  # a local cluster: its workers are our children
            import multiprocessing as mp

            for proc in mp.active_children():  # SIGKILL only (also workers still starting): Dask's own
                try:                           # watcher threads reap them, the close below joins them
                    os.kill(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
    for obj in (client, cl):
        if obj is None:
            continue
        try:
            if interrupted:
                obj.close(timeout=timeout_s)
            else:
                obj.close()
        except Exception:  # already closing / timed out: nothing is left to save
            if not interrupted:
                raise


def check_scheduler(address: str, timeout_s: float = 5.0) -> None:
    """Raise a one-line :class:`QdlabError` unless a Dask scheduler answers at ``address``."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(address if "://" in address else f"tcp://{address}")
    if not u.hostname or not u.port:
        raise QdlabError(f"Dask scheduler address {address!r} must look like tcp://host:port")
    try:
        with socket.create_connection((u.hostname, u.port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise QdlabError(f"Dask scheduler {address} is not reachable: {exc.strerror or exc}") from None
