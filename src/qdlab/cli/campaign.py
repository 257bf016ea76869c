"""``qdlab campaign plan|run|status|job-script``, ``qdlab report``, ``qdlab export vasp|cp2k``,
``qdlab import`` and ``qdlab reproduce``: campaigns at scale, reports and the HPC round trip.

Register in :mod:`qdlab.cli.main` with::

    from qdlab.cli import campaign as campaign_cli
    app.add_typer(campaign_cli.campaign_app, name="campaign")
    app.add_typer(campaign_cli.export_app, name="export")
    app.command("report")(campaign_cli.report_cmd)
    app.command("import")(campaign_cli.import_cmd)
    app.command("reproduce")(campaign_cli.reproduce_cmd)
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from qdlab.cli.common import JSON_OPT, console, emit_json, guarded

campaign_app = typer.Typer(help="Grids of recipes × workflows × engines on a Dask cluster, results in a store.",
                           no_args_is_help=True)
export_app = typer.Typer(help="Ready-to-run DFT input folders (VASP, CP2K) with a SLURM script.",
                         no_args_is_help=True)

SPEC_ARG = typer.Argument(..., help="Campaign spec (.toml, .yaml or .json).")
STORE_OPT = typer.Option(None, "--store", help="Results store instead of the spec's: a .db file or postgresql:// URL.")
WORKERS_OPT = typer.Option(None, "--workers", "-w", help="Local cluster: worker processes (1 thread each).")
SCHED_OPT = typer.Option(None, "--scheduler", help="Address of a running Dask scheduler (tcp://host:8786).")
CLUSTER_OPT = typer.Option(None, "--cluster", help="local | slurm | pbs (dask-jobqueue, settings from the spec).")


def _load(spec: Path, store: str | None):
    from qdlab.campaign import load_spec

    return load_spec(spec, {"store": store} if store else None)


def _fmt_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@campaign_app.command("plan")
@guarded
def plan_cmd(spec: Path = SPEC_ARG, store: str = STORE_OPT, workers: int = WORKERS_OPT,
             measure: bool = typer.Option(False, "--measure", help="Time one force call per model here "
                                                                   "instead of the calibrated cost model."),
             as_json: bool = JSON_OPT) -> None:
    """Show the task list and a cost estimate (force calls × seconds per call) without running."""
    from qdlab.campaign import plan_campaign

    s = _load(spec, store)
    plan = plan_campaign(s, measure=measure, log=None if as_json else console.print)
    n_workers = workers or s.execution.workers
    d = plan.to_dict(n_workers)
    if as_json:
        emit_json(d)
        return
    t = Table(title=f"campaign {s.name}: {d['n_tasks']} tasks ({d['n_done']} done, {d['n_failed']} failed, "
                    f"{d['n_pending']} to run)")
    for col in ("step", "composition", "size", "passivation", "engine", "atoms", "force calls", "s/call", "est.", "status"):
        t.add_column(col, justify="right" if col in ("atoms", "force calls", "s/call", "est.") else "left")
    for r in d["tasks"]:
        atoms = str(r["n_atoms"]) if r.get("n_atoms_exact", True) else f"≈{r['n_atoms']}"  # ≈: estimated, not built
        t.add_row(r["step"], r["composition"], r["size"], r["passivation"], r["engine"], atoms,
                  str(r["force_calls"]), f"{r['s_per_call']:.3g}", _fmt_s(r["seconds"]), r["status"])
    console.print(t)
    console.print(f"estimate: {d['force_calls']:,} force calls, {_fmt_s(d['core_seconds_pending'])} of core time "
                  f"to run ≈ {_fmt_s(d['wall_seconds_estimate'])} on {n_workers} worker(s)"
                  + (f"; store: {d['store_error']}" if d["store_error"] else ""))


@campaign_app.command("run")
@guarded
def run_cmd(spec: Path = SPEC_ARG, store: str = STORE_OPT, workers: int = WORKERS_OPT,
            scheduler: str = SCHED_OPT, cluster: str = CLUSTER_OPT, as_json: bool = JSON_OPT) -> None:
    """Run every unfinished task (a rerun resumes: finished tasks are skipped, failed ones retried)."""
    from qdlab.campaign import run_campaign
    from qdlab.errors import QdlabError

    if cluster is not None and cluster not in ("local", "slurm", "pbs"):
        raise QdlabError(f"--cluster must be local, slurm or pbs, not {cluster!r}")
    from qdlab.campaign.run import validate_campaign

    from qdlab.store.locks import output_lock
    from qdlab.store.results import ResultStore

    s = _load(spec, store)
    with output_lock(ResultStore(s.store, s.files).files, what="results store"):
        pass  # refuse a store another live `campaign run` is writing before validating or drawing progress
    tasks = validate_campaign(s, scheduler=scheduler)  # refuse before the progress bar appears
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, disable=as_json) as bar:
        task = bar.add_task(f"campaign {s.name}", total=None, failed=0)
        failed = [0]

        def progress(done: int, total: int, summary: dict | None) -> None:
            if summary is not None and summary.get("status") == "failed":
                failed[0] += 1
            bar.update(task, completed=done, total=total, failed=failed[0])

        res = run_campaign(s, workers=workers, scheduler=scheduler, cluster=cluster, progress=progress, prepared=tasks,
                           log=None if as_json else (lambda m: console.print(m, highlight=False, markup=False)))
    if as_json:
        emit_json(res.to_dict())
        if res.n_failed:
            raise typer.Exit(code=1)
        return
    console.print(f"campaign {res.campaign}: {res.n_done} done, {res.n_failed} failed, {res.n_skipped} already "
                  f"finished of {res.n_tasks} tasks in {_fmt_s(res.seconds)} → {res.store}")
    if res.failures:
        t = Table(title="failed tasks")
        for col in ("step", "composition", "size", "passivation", "error"):
            t.add_column(col)
        for f in res.failures:
            t.add_row(f["step"], str(f["composition"]), str(f["size"]), str(f["passivation"]), str(f["error"]))
        console.print(t)
    if res.n_failed:  # a script must see that not every task finished
        raise typer.Exit(code=1)


@campaign_app.command("status")
@guarded
def status_cmd(spec: Path = SPEC_ARG, store: str = STORE_OPT, as_json: bool = JSON_OPT) -> None:
    """Each task's stored status: done, failed (with the error) or pending."""
    from qdlab.campaign import campaign_status

    s = _load(spec, store)
    rows = campaign_status(s)
    if as_json:
        emit_json(rows)
        return
    t = Table(title=f"campaign {s.name}")
    for col in ("step", "composition", "size", "passivation", "engine", "status", "seconds", "error"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["step"], r["composition"], r["size"], r["passivation"], r["engine"], r["status"],
                  f"{r['seconds']:.1f}" if r["seconds"] is not None else "", r["error"] or "")
    console.print(t)
    counts = {k: sum(r["status"] == k for r in rows) for k in ("done", "failed", "pending")}
    console.print(", ".join(f"{v} {k}" for k, v in counts.items()))


@campaign_app.command("job-script")
@guarded
def job_script_cmd(spec: Path = SPEC_ARG, cluster: str = typer.Option(None, "--cluster", help="slurm | pbs")) -> None:
    """Print the batch script dask-jobqueue submits for one job (nothing is submitted)."""
    from qdlab.campaign.cluster import job_script

    s = _load(spec, None)
    exe = s.execution.model_copy(update={"cluster": cluster} if cluster else {})
    print(job_script(exe))


@guarded
def report_cmd(store: str = typer.Argument(..., help="Results store: a .db file or postgresql:// URL."),
               output: Path = typer.Option(Path("report.html"), "--output", "-o", help="HTML file to write."),
               campaign: str = typer.Option(None, "--campaign", help="Only rows of this campaign."),
               files: Path = typer.Option(None, "--files", help="Files folder of the store (default beside it)."),
               title: str = typer.Option(None, "--title"), as_json: bool = JSON_OPT) -> None:
    """Write a self-contained HTML report (tables + embedded plots) of a results store."""
    from qdlab.report.html import write_report
    from qdlab.store.results import ResultStore

    from qdlab.errors import QdlabError
    from qdlab.store.results import is_url

    if not is_url(store) and not Path(store).is_file():
        raise QdlabError(f"results store {store} does not exist; give the .db file a campaign wrote")
    rs = ResultStore(store, files)
    rs.check()
    info = write_report(rs, output, campaign=campaign, title=title)
    if as_json:
        emit_json(info)
    else:
        console.print(f"wrote {output}: {info['n_rows']} rows, {info['n_figures']} figures")


def _export(code: str, models: list[Path], out: Path, settings: list[str], job_opts: dict, as_json: bool) -> None:
    from qdlab.campaign.checks import check_export
    from qdlab.campaign.hpc import export_models, parse_settings

    overrides = parse_settings(settings)
    check_export(models, overrides, nodes=job_opts["nodes"], ntasks=job_opts["ntasks"], walltime=job_opts["walltime"])
    res = export_models(code, models, out, overrides=overrides, **job_opts)
    if as_json:
        emit_json(res)
        return
    console.print(f"wrote {len(res['folders'])} {code.upper()} input folder(s) under {out} and {res['batch_script']}")
    for note in res["notes"]:
        console.print(f"note: {note}", highlight=False)


_SET_OPT = typer.Option([], "--set", help="Override a DFT setting, e.g. --set encut=500 (VASP INCAR keys "
                                          "lower case; CP2K: cutoff_ry, basis_set, max_scf, charge, steps).")
_MODELS_ARG = typer.Argument(..., help="Structure files (extxyz, ...) or a results store with --from-store.")


def _job_options(partition: str | None, nodes: int, ntasks: int, walltime: str, account: str | None,
                 command: str | None) -> dict:
    return {"partition": partition, "nodes": nodes, "ntasks": ntasks, "walltime": walltime, "account": account,
            "command": command}


@export_app.command("vasp")
@guarded
def export_vasp_cmd(models: list[Path] = _MODELS_ARG, out: Path = typer.Option(Path("vasp_inputs"), "--output", "-o", help="Output folder."),
                    settings: list[str] = _SET_OPT,
                    partition: str = typer.Option(None, "--partition"), nodes: int = typer.Option(1, "--nodes"),
                    ntasks: int = typer.Option(32, "--ntasks"), walltime: str = typer.Option("24:00:00", "--walltime", help="Job wall time, HH:MM:SS."),
                    account: str = typer.Option(None, "--account"),
                    command: str = typer.Option(None, "--command", help="How to launch VASP (default: srun vasp_gam)."),
                    as_json: bool = JSON_OPT) -> None:
    """VASP relaxation inputs (seed 000: PBE, 400 eV, Γ, EDIFF 1e-4, EDIFFG −0.03, IBRION 2)."""
    _export("vasp", models, out, settings, _job_options(partition, nodes, ntasks, walltime, account, command), as_json)


@export_app.command("cp2k")
@guarded
def export_cp2k_cmd(models: list[Path] = _MODELS_ARG, out: Path = typer.Option(Path("cp2k_inputs"), "--output", "-o", help="Output folder."),
                    settings: list[str] = _SET_OPT,
                    partition: str = typer.Option(None, "--partition"), nodes: int = typer.Option(1, "--nodes"),
                    ntasks: int = typer.Option(32, "--ntasks"), walltime: str = typer.Option("24:00:00", "--walltime", help="Job wall time, HH:MM:SS."),
                    account: str = typer.Option(None, "--account"),
                    command: str = typer.Option(None, "--command", help="How to launch CP2K (default: srun cp2k.psmp)."),
                    as_json: bool = JSON_OPT) -> None:
    """CP2K geometry optimisations (PBE, GTH/MOLOPT, non-periodic Martyna–Tuckerman Poisson)."""
    _export("cp2k", models, out, settings, _job_options(partition, nodes, ntasks, walltime, account, command), as_json)


@guarded
def import_cmd(paths: list[Path] = typer.Argument(..., help="vasprun.xml / OUTCAR files, CP2K run folders or "
                                                          "*-pos-1.xyz files, or folders holding them."),
               output: Path = typer.Option(..., "--output", "-o", help="Dataset: .extxyz or an ASE database (.db)."),
               every: int = typer.Option(1, "--every", help="Keep every n-th frame of each relaxation."),
               append: bool = typer.Option(False, "--append", help="Add to an existing dataset."),
               as_json: bool = JSON_OPT) -> None:
    """Read finished DFT relaxations back as frames with energies and forces (fine-tuning data)."""
    from qdlab.campaign.hpc import import_runs

    res = import_runs(paths, output, every=every, append=append)
    if as_json:
        emit_json(res)
        return
    console.print(f"wrote {res['n_frames']} frames from {len(res['runs'])} run(s) to {output}")
    for r in res["runs"]:
        console.print(f"  {r['source']}: {r['n_frames']} frames, {r['formula']}, E_last {r['energy_last_eV']:.4f} eV",
                      highlight=False)


@guarded
def reproduce_cmd(target: str = typer.Argument(..., help="seed000-fig5 | seed000-fig7 | seed004-rmsf-depth | list"),
                  out: Path = typer.Option(Path("reproduce_out"), "--output", "-o", help="Folder for store and report."),
                  sizes: str = typer.Option(None, "--sizes", help="Cube sizes n, e.g. 1,2 (default: the paper's)."),
                  engine: str = typer.Option("chgnet", "--engine", "-e", help="Engine of every step: chgnet | sevenn | classical | ..."),
                  workers: int = typer.Option(2, "--workers", "-w"),
                  scheduler: str = SCHED_OPT, store: str = STORE_OPT,
                  quick: bool = typer.Option(False, "--quick", help="Short relaxations/MD (tests, laptops)."),
                  passivations: str = typer.Option(None, "--passivations",
                                                   help="Subset of the target's systems, e.g. bare,MA."),
                  spacing: float = typer.Option(None, "--spacing", help="Grid spacing, Bohr (seed003-fine-structure)."),
                  as_json: bool = JSON_OPT) -> None:
    """Run the campaign behind a published figure or table and print our numbers beside the paper's."""
    from qdlab.campaign import reproduce as rp

    if target == "list":
        for name, t in rp.TARGETS.items():
            console.print(f"{name}: {t.description}", highlight=False)
        for name, (desc, _) in rp._library_targets().items():
            console.print(f"{name}: {desc}", highlight=False)
        return
    size_list = [int(x) for x in sizes.split(",")] if sizes else None
    log = None if as_json else (lambda m: console.print(m, highlight=False, markup=False))
    with Progress(TextColumn(f"[bold]{target}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=as_json) as bar:
        task = bar.add_task(target, total=None)
        res = rp.reproduce(target, out, sizes=size_list, engine=engine, workers=workers, scheduler=scheduler,
                           store=store, quick=quick, log=log,
                           passivations=passivations.split(",") if passivations else None, spacing_B=spacing,
                           progress=lambda d, t, s: bar.update(task, completed=d, total=t))
    if as_json:
        emit_json(res)
        return
    t = Table(title=f"{target}: ours vs published ({res['engine']})")
    for col in res["columns"]:
        t.add_column(col)
    for row in res["rows"]:
        t.add_row(*[str(x) for x in row])
    console.print(t)
    for line in res["checks"]:
        console.print(line, highlight=False)
    console.print(f"report: {res['report']}")
