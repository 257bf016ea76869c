"""``qdlab dataset collect|split|info``, ``qdlab label``, ``qdlab finetune``, ``qdlab parity`` and
``qdlab learn``: training data, reference labels, fine-tuned potentials, concurrent learning."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from qdlab.cli.common import JSON_OPT, console, emit_json, guarded
from qdlab.cli.engines import CKPT_OPT, D3_OPT, DEVICE_OPT, MODEL_OPT, THREADS_OPT, engine_spec
from qdlab.errors import QdlabError

dataset_app = typer.Typer(help="Training data sets: collect frames, split, inspect (ASE database or extxyz).",
                          no_args_is_help=True)

FRACTIONS_OPT = typer.Option("0.68,0.12,0.20", "--fractions", help="train,val,test fractions (seed 000: 68/12/20).")
SEED_OPT = typer.Option(0, "--seed", help="Seed of the random split.")


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise QdlabError(f"--fractions takes three numbers like 0.68,0.12,0.20, not {text!r}") from None
    if len(values) != 3:
        raise QdlabError(f"--fractions takes three numbers like 0.68,0.12,0.20, not {text!r}")
    return values  # type: ignore[return-value]


def _bar(label: str, as_json: bool) -> Progress:
    return Progress(TextColumn(label), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, disable=as_json)


def _summary_table(summary, title: str) -> Table:
    t = Table(title=title, show_header=False)
    t.add_row("frames", f"{summary.n_frames} ({summary.n_labelled} labelled, {summary.n_failed} failed)")
    t.add_row("splits", ", ".join(f"{k} {v}" for k, v in sorted(summary.splits.items())))
    t.add_row("engines", ", ".join(f"{k} {v}" for k, v in summary.engines.items()))
    t.add_row("sources", ", ".join(f"{k} {v}" for k, v in list(summary.sources.items())[:6]))
    t.add_row("formulas", ", ".join(f"{k} {v}" for k, v in list(summary.formulas.items())[:6]))
    if summary.energy_per_atom_range_eV:
        lo, hi = summary.energy_per_atom_range_eV
        t.add_row("energy", f"{lo:.4f} … {hi:.4f} eV/atom; max |F| {summary.max_force_eV_A:.3f} eV/Å")
    if summary.dropped_duplicates:
        t.add_row("duplicates dropped", str(summary.dropped_duplicates))
    return t


@dataset_app.command("collect")
@guarded
def collect_cmd(sources: list[Path] = typer.Argument(..., help="Trajectories, rattled structures, MD snapshots, datasets."),
                out: Path = typer.Option(..., "-o", "--output", help="Dataset: .db (ASE SQLite), a database URL, or .extxyz."),
                every: int = typer.Option(1, "--every", help="Keep every n-th frame of each source."),
                engine: str = typer.Option(None, "--labelled-by", help="Engine that computed the labels found in the sources (provenance)."),
                drop_labels: bool = typer.Option(False, "--drop-labels", help="Forget energies/forces found in the sources."),
                dedup_tol: float = typer.Option(1e-4, "--dedup-tol",
                                                help="Duplicates: every coordinate within this, Å (< 0: keep all)."),
                split: bool = typer.Option(True, "--split/--no-split", help="Assign train/val/test to new frames."),
                fractions: str = FRACTIONS_OPT, seed: int = SEED_OPT,
                append: bool = typer.Option(False, "--append", help="Add to an existing dataset."),
                overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset."),
                as_json: bool = JSON_OPT) -> None:
    """Collect frames into a dataset: deduplicated, split, with provenance per frame."""
    from qdlab.store.checks import check_output, check_sources
    from qdlab.store.db import collect

    check_output(out, append=append, overwrite=overwrite)
    check_sources([str(p) for p in sources])
    backup = out.with_name(f".{out.name}.replaced")
    if overwrite and out.exists() and "://" not in str(out):
        out.replace(backup)  # restored if the collection fails: --overwrite never loses the old data set
    try:
        summary = collect([str(p) for p in sources], str(out), every=every, keep_labels=not drop_labels,
                          engine=engine, dedup_tol_A=None if dedup_tol < 0 else dedup_tol, split=split,
                          fractions=_fractions(fractions), seed=seed, append=append)
    except BaseException:
        if backup.exists():
            backup.replace(out)
        raise
    backup.unlink(missing_ok=True)
    if as_json:
        emit_json(summary.to_dict())
    else:
        console.print(_summary_table(summary, f"dataset {out}"))


@dataset_app.command("split")
@guarded
def split_cmd(data: Path = typer.Argument(..., help="Dataset to split."),
              out: Path = typer.Option(None, "-o", "--output", help="Write here (default: rewrite DATA)."),
              fractions: str = FRACTIONS_OPT, seed: int = SEED_OPT, as_json: bool = JSON_OPT) -> None:
    """(Re)assign a random train/val/test split to every frame of a dataset."""
    from qdlab.store.db import assign_split, read_frames, summarize, write_frames

    frames = read_frames(str(data))
    if not frames:
        raise QdlabError(f"{data} holds no frames")
    assign_split(frames, _fractions(fractions), seed)
    target = str(out or data)
    if "://" in target:
        raise QdlabError("split into a database URL: give -o FILE (.db or .extxyz)")
    write_frames(target, frames)
    summary = summarize(frames, target)
    if as_json:
        emit_json(summary.to_dict())
    else:
        console.print(_summary_table(summary, f"dataset {target}"))


@dataset_app.command("info")
@guarded
def info_cmd(data: Path = typer.Argument(..., help="Dataset."), as_json: bool = JSON_OPT) -> None:
    """Counts per split, engine, source and composition; label ranges."""
    from qdlab.store.checks import check_sources
    from qdlab.store.db import read_frames, summarize

    check_sources([str(data)])
    summary = summarize(read_frames(str(data)), str(data))
    if as_json:
        emit_json(summary.to_dict())
    else:
        console.print(_summary_table(summary, f"dataset {data}"))


@guarded
def label_cmd(data: Path = typer.Argument(..., help="Frames to label (dataset or any trajectory)."),
              out: Path = typer.Option(..., "-o", "--output", help="Labelled dataset (.db keeps labels exactly, or .extxyz)."),
              engine: str = typer.Option(..., "--engine", "-e", help="Reference engine: cp2k | xtb | classical | chgnet | ..."),
              model: str = MODEL_OPT, checkpoint: str = CKPT_OPT, device: str = DEVICE_OPT, threads: int = THREADS_OPT,
              d3: bool = D3_OPT,
              retry_failed: bool = typer.Option(False, "--retry-failed", help="Compute frames that failed before again."),
              overwrite: bool = typer.Option(False, "--overwrite", help="Start afresh instead of resuming."),
              as_json: bool = JSON_OPT) -> None:
    """Label frames with a reference engine; rerun the same command to resume after an interruption."""
    from qdlab.cli.inputs import load_engine
    from qdlab.store.checks import check_sources
    from qdlab.store.db import read_frames
    from qdlab.workflows.label import label

    check_sources([str(data)])  # missing, empty, binary or frameless: one line before any progress
    frames = read_frames(str(data))
    calc = load_engine(frames[0], engine_spec(engine, model, checkpoint, device, threads, d3))
    settings = {"engine": engine, "model": model, "checkpoint": checkpoint, "d3": d3}
    with _bar("labelling", as_json) as bar:
        task = bar.add_task("label", total=len(frames))
        res = label(frames, calc, str(out), engine=engine, settings=settings, restart=not overwrite,
                    retry_failed=retry_failed, progress=lambda d, t: bar.update(task, completed=d, total=t))
    if as_json:
        emit_json(res.to_dict())
    else:
        console.print(f"{out}: {res.n_labelled} labelled, {res.n_failed} failed, {res.n_computed} computed now "
                      f"({res.n_resumed} found done), {res.seconds_per_frame:.2f} s/frame")
        for i, err in list(res.failed.items())[:10]:
            console.print(f"  failed frame {i}: {err}", highlight=False)
    if res.n_failed:
        raise typer.Exit(code=1)


@guarded
def finetune_cmd(data: Path = typer.Argument(..., help="Labelled dataset (frames without a split get one)."),
                 out: Path = typer.Option(Path("finetune_out"), "-o", "--output", help="Output folder."),
                 arch: str = typer.Option("chgnet", "--engine", "-e", help="chgnet | sevenn"),
                 base: str = typer.Option(None, "--base", help="Pretrained model (0.3.0, 7net-0) or a checkpoint file."),
                 epochs: int = typer.Option(50, "--epochs"),
                 batch_size: int = typer.Option(8, "--batch-size"),
                 lr: float = typer.Option(1e-4, "--lr", help="Initial AdamW learning rate."),
                 lr_final: float = typer.Option(1e-6, "--lr-final", help="Learning rate at the end of the cosine decay."),
                 energy_weight: float = typer.Option(1.0, "--energy-weight", help="Weight of MSE(E per atom)."),
                 force_weight: float = typer.Option(10.0, "--force-weight", help="Weight of MSE(F)."),
                 weight_decay: float = typer.Option(0.01, "--weight-decay", help="AdamW weight decay."),
                 seed: int = typer.Option(0, "--seed", help="Training seed (weights updates, data order)."),
                 split_seed: int = typer.Option(0, "--split-seed", help="Seed of the 68/12/20 split of unsplit frames."),
                 refit: bool = typer.Option(True, "--refit/--no-refit", help="Refit per-element reference energies first."),
                 max_minutes: float = typer.Option(None, "--max-minutes", help="Stop after this wall time (rerun to continue)."),
                 device: str = DEVICE_OPT, threads: int = THREADS_OPT,
                 overwrite: bool = typer.Option(False, "--overwrite", help="Start afresh instead of resuming."),
                 as_json: bool = JSON_OPT) -> None:
    """Fine-tune CHGNet or SevenNet (seed 000 protocol); the best model is OUT/best.pth[.tar]."""
    from qdlab.engines.mlip import set_threads
    from qdlab.store.db import frames_by_split, read_frames
    from qdlab.workflows.finetune import FinetuneSettings, finetune

    set_threads(threads)
    frames = read_frames(str(data), labelled=True)
    if not frames:
        raise QdlabError(f"{data} holds no labelled frames (label them first: qdlab label)")
    parts = frames_by_split(frames, seed=split_seed)
    settings = FinetuneSettings(model=arch, base=base, epochs=epochs, batch_size=batch_size, learning_rate=lr,
                                final_learning_rate=lr_final, energy_weight=energy_weight, force_weight=force_weight,
                                weight_decay=weight_decay, seed=seed, refit_references=refit,
                                max_seconds=None if max_minutes is None else 60 * max_minutes, device=device)
    with Progress(TextColumn("fine-tuning"), BarColumn(), TextColumn("{task.completed}/{task.total} epochs"),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, disable=as_json) as bar:
        task = bar.add_task("ft", total=max(epochs, 1), status="")

        def show(epoch: int, total: int, rec: dict) -> None:
            bar.update(task, completed=epoch, total=total,
                       status=f"val F MAE {rec['val_force_mae_eV_A']:.4f} eV/Å  loss {rec['train_loss']:.4f}")

        res = finetune(parts["train"], parts["val"], out, settings, restart=not overwrite, progress=show)
    info = res.to_dict() | {"n_test": len(parts["test"])}
    info.pop("history")
    if as_json:
        emit_json(info | {"history": res.history})
        return
    t = Table(title=f"fine-tuned {arch} → {res.checkpoint}", show_header=False)
    t.add_row("frames", f"{res.n_train} train / {res.n_val} val / {len(parts['test'])} test (held out)")
    t.add_row("epochs", f"{res.epochs_done}/{res.epochs}" + (" (stopped at the time budget; rerun to continue)"
                                                               if res.stopped_early else ""))
    if res.best_epoch is not None:
        t.add_row("best (val force MAE)", f"epoch {res.best_epoch}: {res.best_val_force_mae_eV_A:.4f} eV/Å")
    if res.energy_shift_eV:
        t.add_row("element references refit", ", ".join(f"{k} {v:+.4f}" for k, v in res.energy_shift_eV.items()) + " eV")
    t.add_row("time", f"{res.seconds / 60:.1f} min")
    t.add_row("use it", f"qdlab parity {res.checkpoint} {data} -o parity_out   |   --engine {arch} --checkpoint {res.checkpoint}")
    console.print(t)


@guarded
def parity_cmd(args: list[str] = typer.Argument(..., metavar="MODEL... DATA",
                                                help="Models (engine name, engine:model, or checkpoint file) then a labelled dataset."),
               out: Path = typer.Option(Path("parity_out"), "-o", "--output", help="Folder for parity.png and parity.json."),
               split: str = typer.Option(None, "--split", help="train | val | test | all (default: test if the data has one)."),
               refit: bool = typer.Option(True, "--refit/--no-refit",
                                          help="Refit per-element reference energies of each model on the train split first."),
               zoom: float = typer.Option(0.25, "--zoom", help="Low-force inset and metrics: |F| ≤ this, eV/Å."),
               device: str = DEVICE_OPT, threads: int = THREADS_OPT, as_json: bool = JSON_OPT) -> None:
    """Energy and force parity of one or more models on labelled frames (pretrained vs fine-tuned)."""
    from qdlab.analysis.parity import evaluate, write_parity
    from qdlab.engines.mlip import set_threads
    from qdlab.store.db import read_frames
    from qdlab.workflows.finetune import model_calculator

    if len(args) < 2:
        raise QdlabError("give at least one model and a dataset: qdlab parity chgnet ft/best.pth.tar data.db -o DIR")
    *specs, data = args
    set_threads(threads)
    frames = read_frames(data, labelled=True)
    if not frames:
        raise QdlabError(f"{data} holds no labelled frames")
    has_split = any("split" in a.info for a in frames)
    which = split or ("test" if any(a.info.get("split") == "test" for a in frames) else "all")
    if which not in ("train", "val", "test", "all"):
        raise QdlabError(f"--split must be train, val, test or all, not {which!r}")
    chosen = frames if which == "all" else [a for a in frames if a.info.get("split") == which]
    if not chosen:
        raise QdlabError(f"{data} has no {which} frames")
    fit = None
    if refit:
        fit = [a for a in frames if a.info.get("split") == "train"] if has_split else frames
        if not fit:
            raise QdlabError(f"{data} has no train frames to refit the element references on; pass --no-refit")
    results = []
    with _bar("parity", as_json) as bar:
        for spec in specs:
            task = bar.add_task(spec, total=len(chosen))
            calc = model_calculator(spec, device=device)
            results.append(evaluate(calc, chosen, label=Path(spec).name if Path(spec).is_file() else spec,
                                    refit_frames=fit, zoom_eV_A=zoom,
                                    progress=lambda d, t, task=task: bar.update(task, completed=d, total=t)))
    paths = write_parity(results, out, title=f"{Path(data).name}: {which} ({len(chosen)} frames)")
    doc = json.loads(paths["json"].read_text())
    if as_json:
        emit_json(doc | {"files": {k: str(v) for k, v in paths.items()}})
        return
    t = Table(title=f"parity on {which} frames of {data} ({len(chosen)}) → {out}")
    for col in ("model", "F RMSE eV/Å", "F R²", f"F R² |F|≤{zoom:g}", "E RMSE meV/atom", "E R²"):
        t.add_column(col)
    for r in results:
        t.add_row(r.label, f"{r.forces.rmse:.4f}", f"{r.forces.r2:.3f}", f"{r.forces_low.r2:.3f}",
                  f"{1000 * r.energy.rmse:.2f}", f"{r.energy.r2:.3f}")
    console.print(t)
    if "force_rmse_ratio_first_over_last" in doc:
        console.print(f"force RMSE ratio first/last: {doc['force_rmse_ratio_first_over_last']:.2f}")


def _initial_labels(start_atoms: list, rattle_count: int, seed: int, ref_calc, reference: str, ref_settings: dict,
                    out: Path, as_json: bool) -> list:
    """Without --data: label ``rattle_count`` rattled copies of every start with the reference."""
    from qdlab.build import rattle
    from qdlab.store.db import read_frames
    from qdlab.workflows.label import label

    if rattle_count < 2:
        raise QdlabError("--rattle-count must be ≥ 2 (train and validation frames)")
    out.mkdir(parents=True, exist_ok=True)
    rattled = [rattle(a, seed=seed + 1000 * j + c) for j, a in enumerate(start_atoms) for c in range(rattle_count)]
    with _bar("initial labels", as_json) as bar:
        task = bar.add_task("label", total=len(rattled))
        label(rattled, ref_calc, out / "initial.db", engine=reference, settings=ref_settings,
              progress=lambda d, t: bar.update(task, completed=d, total=t))
    return read_frames(out / "initial.db", labelled=True)


#: one console line per phase of a learning iteration: event → (iteration, info) → text
_LEARN_LINES = {
    "train": lambda k, i: f"iteration {k}: training member {i['member']} on {i['n_train']} frames ({i['n_val']} val)",
    "trained": lambda k, i: (f"iteration {k}: val energy MAE {1000 * i['val_energy_mae_eV_atom']:.2f} meV/atom, "
                             f"force RMSE {i['val_force_rmse_eV_A']:.4f} eV/Å"),
    "explored": lambda k, i: (f"iteration {k}: MD {'stable' if i['stable'] else 'UNSTABLE'}; frames accurate "
                              f"{i['accurate']}, candidates {i['candidate']}, failed {i['failed']}"),
    "labelled": lambda k, i: f"iteration {k}: labelled {i['n_labelled']} ({i['n_failed']} failed), added {i['n_added']}",
}


def _learn_progress(as_json: bool):
    """Print :data:`_LEARN_LINES` as the phases finish (nothing with --json)."""
    def show(event: str, info: dict) -> None:
        if not as_json and event in _LEARN_LINES:
            console.print(_LEARN_LINES[event](info.get("iteration"), info), highlight=False)

    return show


@guarded
def learn_cmd(starts: list[Path] = typer.Argument(..., help="MD starting structures."),
              out: Path = typer.Option(Path("learn_out"), "-o", "--output", help="Output folder (resumable)."),
              data: Path = typer.Option(None, "--data", help="Labelled initial dataset (default: label rattled starts)."),
              rattle_count: int = typer.Option(8, "--rattle-count", help="Without --data: rattled copies per start to label."),
              reference: str = typer.Option(..., "--reference", "-r", help="Reference engine (cp2k, xtb, classical, ...)."),
              reference_model: str = typer.Option(None, "--reference-model", help="Model/method/parameter file of the reference."),
              arch: str = typer.Option("chgnet", "--engine", "-e", help="Potential to fine-tune: chgnet | sevenn"),
              base: str = typer.Option(None, "--base", help="Pretrained model or checkpoint to start from."),
              committee: int = typer.Option(4, "--committee", help="Models per committee."),
              iterations: int = typer.Option(5, "--iterations", help="Budget: iterations."),
              max_labels: int = typer.Option(None, "--max-labels", help="Budget: reference calculations."),
              trust_lo: float = typer.Option(0.05, "--trust-lo", help="Lower trust level of the max force deviation, eV/Å."),
              trust_hi: float = typer.Option(0.30, "--trust-hi", help="Upper trust level, eV/Å."),
              max_select: int = typer.Option(20, "--max-select", help="Frames labelled per iteration."),
              energy_target: float = typer.Option(1.0, "--energy-target", help="Validation energy MAE target, meV/atom."),
              force_target: float = typer.Option(None, "--force-target", help="Validation force RMSE target, eV/Å."),
              epochs: int = typer.Option(10, "--epochs", help="Fine-tuning epochs per member and iteration."),
              batch_size: int = typer.Option(8, "--batch-size"),
              lr: float = typer.Option(1e-4, "--lr"),
              ensemble: str = typer.Option("baoab", "--ensemble", help="Exploration MD: langevin | baoab | csvr | nve"),
              temperature: float = typer.Option(300.0, "--temperature", "-T", help="K"),
              timestep: float = typer.Option(1.0, "--timestep", help="fs"),
              md_steps: int = typer.Option(500, "--md-steps", help="MD steps per start and iteration."),
              interval: int = typer.Option(10, "--interval", help="Steps between candidate frames."),
              friction: float = typer.Option(0.5, "--friction", help="Langevin/BAOAB friction, ps⁻¹ (seed 001: 0.5)."),
              seed: int = typer.Option(0, "--seed"),
              device: str = DEVICE_OPT, threads: int = THREADS_OPT, as_json: bool = JSON_OPT) -> None:
    """Concurrent learning (seed 001): committee → MD → select by force deviation → label → retrain."""
    from ase.io import read

    from qdlab.engines.mlip import set_threads
    from qdlab.store.db import read_frames
    from qdlab.workflows.finetune import FinetuneSettings
    from qdlab.workflows.learn import LearnSettings, learn
    from qdlab.workflows.md import MDSettings

    set_threads(threads)
    start_atoms = [read(p) for p in starts]
    ref_calc = engine_spec(reference, reference_model).calculator()
    ref_settings = {"engine": reference, "model": reference_model}
    settings = LearnSettings(
        committee=committee, iterations=iterations, max_labels=max_labels, trust_lo_eV_A=trust_lo,
        trust_hi_eV_A=trust_hi, max_select=max_select, energy_mae_target_eV_atom=energy_target / 1000,
        force_rmse_target_eV_A=force_target, seed=seed,
        md=MDSettings(ensemble=ensemble, temperature_K=temperature, timestep_fs=timestep, steps=md_steps,
                      interval=interval, friction_ps=friction, seed=seed),
        finetune=FinetuneSettings(model=arch, base=base, epochs=epochs, batch_size=batch_size, learning_rate=lr,
                                  device=device))
    settings.validate()
    if data is not None:
        initial = read_frames(str(data), labelled=True)
    else:
        initial = _initial_labels(start_atoms, rattle_count, seed, ref_calc, reference, ref_settings, out, as_json)
    show = _learn_progress(as_json)
    res = learn(initial, start_atoms, ref_calc, out, settings, reference_name=reference,
                reference_settings=ref_settings, progress=show)
    if as_json:
        emit_json(res.to_dict())
        return
    console.print(f"{'converged' if res.converged else 'stopped'}: {res.reason}; {len(res.iterations)} iterations, "
                  f"{res.n_labelled_total} frames labelled, data set {res.dataset} ({res.n_frames} frames); "
                  f"committee: {', '.join(str(p) for p in res.models)}")
