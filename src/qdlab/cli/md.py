"""``qdlab md``: molecular dynamics (one temperature or a series), checkpointed and resumable."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from qdlab.cli.common import JSON_OPT, console, emit_json, guarded
from qdlab.cli.engines import CKPT_OPT, D3_OPT, DEVICE_OPT, ENGINE_OPT, MODEL_OPT, THREADS_OPT, engine_spec
from qdlab.errors import QdlabError


def _temperatures(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise QdlabError(f"--temperature takes a number or a comma list (10,100,300), not {text!r}") from None
    if not values:
        raise QdlabError("--temperature is empty")
    return values


@guarded
def md_cmd(structure: Path,
           out: Path = typer.Option(Path("md.extxyz"), "--output", "-o",
                                    help="Trajectory (.extxyz keeps labels, or .traj); a folder for a temperature series."),
           engine: str = ENGINE_OPT, model: str = MODEL_OPT, checkpoint: str = CKPT_OPT,
           device: str = DEVICE_OPT, threads: int = THREADS_OPT, d3: bool = D3_OPT,
           ensemble: str = typer.Option("langevin", "--ensemble", help="langevin | baoab | csvr | nve"),
           temperature: str = typer.Option("300", "--temperature", "-T",
                                           help="K (NVT target, NVE initial); a comma list runs a series."),
           timestep: float = typer.Option(1.0, "--timestep", help="fs"),
           steps: int = typer.Option(1000, "--steps", help="Total MD steps (a rerun continues to this count)."),
           interval: int = typer.Option(50, "--interval", help="Steps between written frames."),
           friction: float = typer.Option(20.0, "--friction", help="Langevin friction, ps⁻¹ (seed 000: 20)."),
           taut: float = typer.Option(100.0, "--taut", help="CSVR coupling time, fs."),
           freeze: str = typer.Option(None, "--freeze",
                                      help="core:X | shell:X (X unit cells, multiples of 0.5) | a selection (depth>=2)."),
           seed: int = typer.Option(0, "--seed", help="Velocities and thermostat noise."),
           chain: bool = typer.Option(False, "--chain", help="Series: start each T from the previous T's last frame."),
           overwrite: bool = typer.Option(False, "--overwrite", help="Start afresh instead of resuming."),
           as_json: bool = JSON_OPT) -> None:
    """Run NVT (Langevin, BAOAB, CSVR) or NVE MD; rerunning the same command resumes after a kill."""
    from qdlab.cli.inputs import load_engine, load_structure
    from qdlab.workflows.md import MDSettings, preflight, run_md, temperature_series

    temps = _temperatures(temperature)
    settings = MDSettings(ensemble=ensemble, temperature_K=temps[0], timestep_fs=timestep, steps=steps,
                          interval=interval, friction_ps=friction, taut_fs=taut, freeze=freeze, seed=seed)
    settings.validate()
    for t in temps:
        MDSettings(**{**settings.__dict__, "temperature_K": t}).validate()  # every T before the first run
    atoms = load_structure(structure, what="MD input")
    if len(temps) == 1:
        preflight(atoms, settings, out, restart=not overwrite)
    calc = load_engine(atoms, engine_spec(engine, model, checkpoint, device, threads, d3))
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, disable=as_json) as bar:
        task = bar.add_task(f"MD {ensemble}", total=steps, status="")

        def show(step: int, total: int, info: dict, label: str = "") -> None:
            rate = bar.tasks[task].speed
            bar.update(task, completed=step, total=total, description=f"MD {ensemble}{label}",
                       status=f"T {info['temperature_K']:.0f} K  E {info['etot_eV']:.3f} eV"
                              + (f"  {rate:.1f} steps/s" if rate else ""))

        if len(temps) == 1:
            results = [run_md(atoms, calc, settings, trajectory=out, restart=not overwrite, progress=show)]
        else:
            if overwrite:
                raise QdlabError("--overwrite with a series: delete the series folder instead")
            results = temperature_series(atoms, calc, temps, out, settings, chain=chain,
                                         fmt="traj" if out.suffix == ".traj" else "extxyz",
                                         progress=lambda t, step, total, info: show(step, total, info, f" {t:g} K"))
    summaries = [r.to_dict() for r in results]
    if as_json:
        emit_json(summaries[0] if len(summaries) == 1 else summaries)
        return
    for r in summaries:
        drift = (f", drift {r['energy_drift_eV_atom_ps']:.2e} eV/atom/ps" if r["energy_drift_eV_atom_ps"] is not None
                 else "")
        console.print(f"{r['trajectory']}: {r['n_frames']} frames, ⟨T⟩ {r['mean_temperature_K']:.1f} ± "
                      f"{r['std_temperature_K']:.1f} K (target {r['target_temperature_K']:g}){drift}, "
                      f"{r['steps_per_second']:.1f} steps/s")
