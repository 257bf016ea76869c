"""Plan, run and inspect campaigns: tasks on a Dask cluster, results in the store, resumable.

:func:`plan_campaign` expands the spec (recipes checked and counted without building them), checks
the store and estimates the cost. :func:`run_campaign` submits every task that has no finished row
yet — parents before children, a large phonon step split into displacement chunks that run on
any worker — and waits; every task records its own row as it ends, so killing the client loses
only the tasks in flight and a rerun does exactly the missing ones. A failed task is recorded with
its error and its children are recorded as failed because of it; nothing aborts the rest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qdlab.campaign.cost import TaskCost, estimate
from qdlab.campaign.spec import CampaignSpec, Task, expand
from qdlab.campaign.tasks import phonon_chunk, record, row_summary, run_task
from qdlab.errors import QdlabError
from qdlab.store.results import DONE, FAILED, ResultStore, is_url, redact
from qdlab.workflows.hessian import chunk_ranges

#: a phonon step is split when it has at least this many displacements (and chunk is not 0)
SPLIT_MIN_DISPLACEMENTS = 300


def n_chunks(task: Task, n_workers: int) -> int:
    """Displacement chunks of a phonon task: ``chunk`` displacements each if set (0: one task),
    automatic: two per worker for jobs of ≥ 300 displacements, at most 2,000 displacements each."""
    if task.workflow != "phonons" or task.settings.get("method", "fd") != "fd":
        return 1
    n_jobs = 6 * task.n_atoms
    chunk = task.settings.get("chunk")
    if chunk == 0:
        return 1
    if chunk:
        return max(1, math.ceil(n_jobs / chunk))
    if n_jobs < SPLIT_MIN_DISPLACEMENTS or n_workers < 2:
        return 1
    return max(2 * n_workers, math.ceil(n_jobs / 2000))


@dataclass
class Plan:
    """Tasks of a campaign with their stored status and estimated cost (seconds, one core)."""

    spec: CampaignSpec
    tasks: list[Task]
    costs: dict[str, TaskCost]
    status: dict[str, str]
    store_error: str | None = None

    @property
    def pending(self) -> list[Task]:
        return [t for t in self.tasks if self.status.get(t.key) != DONE]

    def seconds(self, pending_only: bool = True) -> float:
        ts = self.pending if pending_only else self.tasks
        return float(sum(self.costs[t.key].seconds for t in ts))

    def rows(self) -> list[dict]:
        """One table row per task."""
        out = []
        for t in self.tasks:
            c = self.costs[t.key]
            out.append({"key": t.key[:12], "step": t.step, **t.labels, "n_atoms": t.n_atoms,
                        "n_atoms_exact": t.n_atoms_exact, "force_calls": c.force_calls, "s_per_call": c.seconds_per_call, "seconds": c.seconds,
                        "status": self.status.get(t.key, "pending")})
        return out

    def to_dict(self, workers: int) -> dict:
        return {"campaign": self.spec.name, "store": redact(self.spec.store), "n_tasks": len(self.tasks),
                "n_done": sum(self.status.get(t.key) == DONE for t in self.tasks),
                "n_failed": sum(self.status.get(t.key) == FAILED for t in self.tasks),
                "n_pending": len(self.pending), "force_calls": sum(c.force_calls for c in self.costs.values()),
                "core_seconds_pending": self.seconds(), "core_seconds_total": self.seconds(False),
                "wall_seconds_estimate": self.seconds() / max(workers, 1), "workers": workers,
                "store_error": self.store_error, "tasks": self.rows()}


def open_store(spec: CampaignSpec) -> ResultStore:
    """The spec's results store, checked reachable (one-line :class:`QdlabError` otherwise)."""
    store = ResultStore(spec.store, spec.files)
    store.check()
    return store


def _sqlite_missing(store: str) -> bool:
    """A store given as an SQLite file path that does not exist yet (planning must not create it)."""
    return not is_url(store) and not Path(store).exists()


def plan_campaign(spec: CampaignSpec, *, measure: bool = False, require_store: bool = False,
                  log: Callable[[str], None] | None = None) -> Plan:
    """Expand and cost a campaign; the store's status of each task if the store is reachable.

    Models are not built to plan them (:func:`qdlab.campaign.cost.count_recipe`): atom counts are
    predicted (bare models, PbS) or, for large ligand shells, estimated (``n_atoms_exact`` False)."""
    tasks = expand(spec, build=False)
    costs = estimate(tasks, measure=measure, log=log)
    status: dict[str, str] = {}
    err = None
    if not require_store and _sqlite_missing(spec.store):
        return Plan(spec, tasks, costs, status, err)  # nothing run yet: every task pending, no file made
    try:
        store = open_store(spec)
        status = store.status([t.key for t in tasks])
    except QdlabError as exc:
        if require_store:
            raise
        err = str(exc)
    return Plan(spec, tasks, costs, status, err)


@dataclass
class CampaignResult:
    """Outcome of :func:`run_campaign`: counts of tasks, failures with their errors, wall seconds."""

    campaign: str
    store: str
    n_tasks: int
    n_skipped: int
    n_done: int
    n_failed: int
    failures: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


Progress = Callable[[int, int, dict | None], None]


def validate_campaign(spec: CampaignSpec, *, scheduler: str | None = None) -> list[Task]:
    """Every check that must pass before work starts: the spec expands (recipes build, engines
    exist), the store is reachable (and created), the scheduler answers. Returns the tasks."""
    from qdlab.campaign.cluster import check_scheduler

    tasks = expand(spec)
    open_store(spec)
    sched = scheduler or spec.execution.scheduler
    if sched:
        check_scheduler(sched)
    return tasks


def _submit(client, spec: CampaignSpec, todo: list[Task], resumed: dict[str, dict], files: str,
            n_workers: int) -> tuple[list, dict[str, Task]]:
    """Submit every task (a large phonon step as displacement chunks + the step that assembles
    them), each taking its parent's future or stored summary. Returns (all futures, task by key)."""
    futures: dict[str, object] = {}
    owner: dict[str, Task] = {}
    units: list = []
    for t in todo:
        td = t.to_dict()
        parent = futures.get(t.parent) if t.parent else None
        if t.parent and parent is None:
            parent = resumed.get(t.parent)
        k = n_chunks(t, n_workers)
        chunks = None
        if k > 1:
            chunks = [client.submit(phonon_chunk, td, parent, files, j0, j1, pure=False,
                                    key=f"chunk-{t.step}-{t.key[:16]}-{j0}")
                      for j0, j1 in chunk_ranges(6 * t.n_atoms, k)]
            units += chunks
        fut = client.submit(run_task, td, parent, spec.store, files, chunks, pure=False, key=f"{t.step}-{t.key}")
        futures[t.key] = fut
        owner[fut.key] = t
        units.append(fut)
    return units, owner


def _task_summary(fut, t: Task, store: ResultStore) -> dict:
    """A finished task's summary; a worker that died before recording is recorded as failed here."""
    if fut.status != "error":
        return fut.result()
    err = fut.exception()
    summary = {"key": t.key, "step": t.step, "status": FAILED,
               "error": f"{type(err).__name__}: {' '.join(str(err).split())}"}
    try:
        record(store, t.to_dict(), FAILED, None, {}, {}, summary["error"], 0.0)
    except Exception:
        pass
    return summary


def _collect(units: list, owner: dict[str, Task], store: ResultStore, result: CampaignResult,
             progress: Progress | None, log: Callable[[str], None] | None) -> None:
    """Count finished tasks and failures as their futures complete (chunks count as progress only)."""
    from distributed import as_completed

    total = len(units)
    if progress:
        progress(0, total, None)
    for n, fut in enumerate(as_completed(units), 1):
        summary = None
        t = owner.get(fut.key)
        if t is not None:
            summary = _task_summary(fut, t, store)
            if summary["status"] == DONE:
                result.n_done += 1
            else:
                result.n_failed += 1
                result.failures.append({"step": t.step, **t.labels, "key": t.key, "error": summary.get("error")})
                if log:
                    log(f"failed: {t.step} {t.labels.get('composition')} {t.labels.get('size')} "
                        f"{t.labels.get('passivation')}: {summary.get('error')}")
        if progress:
            progress(n, total, summary)


def run_campaign(spec: CampaignSpec, *, workers: int | None = None, scheduler: str | None = None,
                 cluster: str | None = None, progress: Progress | None = None,
                 log: Callable[[str], None] | None = None, prepared: list[Task] | None = None) -> CampaignResult:
    """Run every unfinished task of ``spec`` on a Dask cluster (see :mod:`qdlab.campaign.cluster`).

    Refuses bad specs, an unreachable store or scheduler before any work starts (``prepared``: the
    tasks :func:`validate_campaign` returned, to skip validating twice), and a store another live
    ``campaign run`` is writing (:func:`qdlab.store.locks.output_lock` on the store's files folder).
    ``progress(done_units, total_units, summary_or_None)`` is called as tasks and chunks finish.
    """
    from qdlab.store.locks import output_lock

    with output_lock(ResultStore(spec.store, spec.files).files, what="results store"):
        return _run_campaign(spec, workers=workers, scheduler=scheduler, cluster=cluster, progress=progress,
                             log=log, prepared=prepared)


def _run_campaign(spec: CampaignSpec, *, workers: int | None, scheduler: str | None, cluster: str | None,
                  progress: Progress | None, log: Callable[[str], None] | None,
                  prepared: list[Task] | None) -> CampaignResult:
    from qdlab.campaign.cluster import close_client, open_client

    t0 = time.perf_counter()
    tasks = prepared if prepared is not None else validate_campaign(spec, scheduler=scheduler)
    store = ResultStore(spec.store, spec.files)
    status = store.status([t.key for t in tasks])
    todo = [t for t in tasks if status.get(t.key) != DONE]
    result = CampaignResult(spec.name, redact(spec.store), len(tasks), len(tasks) - len(todo), 0, 0)
    if not todo:
        if progress:
            progress(0, 0, None)
        result.seconds = time.perf_counter() - t0
        return result
    todo_keys = {t.key for t in todo}
    parents_done = {t.parent for t in todo if t.parent and t.parent not in todo_keys}
    resumed = {k: row_summary(store.get(k, with_atoms=False)) for k in parents_done}
    client, cl = open_client(spec.execution, workers=workers, scheduler=scheduler, cluster=cluster)
    interrupted = False
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})) or (workers or spec.execution.workers))
        result.workers = n_workers
        if log:
            log(f"campaign {spec.name}: {len(todo)} of {len(tasks)} tasks to run on {n_workers} worker(s); "
                f"store {redact(spec.store)}")
        units, owner = _submit(client, spec, todo, resumed, str(store.files), n_workers)
        _collect(units, owner, store, result, progress, log)
    except KeyboardInterrupt:  # Ctrl-C: workers killed at once, no Dask tracebacks (rows stay as recorded)
        interrupted = True
        raise
    finally:
        close_client(client, cl, interrupted=interrupted)
    result.seconds = time.perf_counter() - t0
    return result


def campaign_status(spec: CampaignSpec) -> list[dict]:
    """Each task of ``spec`` with its stored status (done / failed with the error / pending)."""
    tasks = expand(spec, build=False)
    store = open_store(spec)
    keys = {t.key for t in tasks}
    rows = {}
    for r in store.rows():
        if r.key in keys and (r.key not in rows or r.status == DONE):
            rows[r.key] = r
    out = []
    for t in tasks:
        r = rows.get(t.key)
        out.append({"key": t.key[:12], "step": t.step, **t.labels, "n_atoms": t.n_atoms,
                    "status": r.status if r else "pending", "seconds": r.kvp.get("seconds") if r else None,
                    "error": r.data.get("error") if r else None})
    return out
