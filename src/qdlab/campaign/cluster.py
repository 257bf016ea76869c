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
from typing import Any

from qdlab.campaign.spec import Execution
from qdlab.errors import QdlabError

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
    if exe.cluster == "slurm":
        from dask_jobqueue.slurm import SLURMCluster, SLURMJob

        return SLURMCluster, SLURMJob
    if exe.cluster == "pbs":
        from dask_jobqueue.pbs import PBSCluster, PBSJob

        return PBSCluster, PBSJob
    raise QdlabError(f"job scripts exist for slurm and pbs clusters, not {exe.cluster!r}")


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
    with dask.config.set({"distributed.nanny.pre-spawn-environ": dict(WORKER_ENV),
                          **WORKER_CONFIG,
                          "distributed.scheduler.allowed-failures": 1}):
        for k, v in WORKER_ENV.items():
            os.environ.setdefault(k, v)
        cl = LocalCluster(n_workers=exe.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=logging.ERROR, memory_limit=0, env=dict(WORKER_ENV))
        return Client(cl), cl


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
