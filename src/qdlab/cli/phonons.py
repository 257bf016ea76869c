"""``qdlab phonons``: Γ-point phonons, DOS, partial DOS and M1/M2/M3 peaks of a structure."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from qdlab.cli.common import JSON_OPT, console, emit_json, guarded
from qdlab.cli.engines import CKPT_OPT, D3_OPT, DEVICE_OPT, ENGINE_OPT, MODEL_OPT, THREADS_OPT


@guarded
def phonons_cmd(structure: Path,
                out: Path = typer.Option(Path("phonons_out"), "--out", "-o", help="Output folder."),
                engine: str = ENGINE_OPT, model: str = MODEL_OPT, checkpoint: str = CKPT_OPT,
                device: str = DEVICE_OPT, threads: int = THREADS_OPT, d3: bool = D3_OPT,
                relax_first: bool = typer.Option(True, "--relax/--no-relax", help="Relax (L-BFGS) before the Hessian."),
                fmax: float = typer.Option(0.01, "--fmax", help="Relaxation force threshold, eV/Å."),
                relax_steps: int = typer.Option(2000, "--relax-steps"),
                delta: float = typer.Option(0.01, "--delta", help="Finite-difference displacement, Å."),
                method: str = typer.Option("fd", "--method", help="fd (finite differences) | analytic (if the engine offers it)."),
                batch: int = typer.Option(None, "--batch", help="Displacements per engine call (engines with batching)."),
                sigma: float = typer.Option(3.0, "--sigma", help="Gaussian smearing of the DOS, cm⁻¹."),
                as_json: bool = JSON_OPT) -> None:
    """Relax, build the Hessian (6N force calls, checkpointed), project rigid modes, DOS and peaks."""
    from ase.io import read

    from qdlab.engines import get_calculator
    from qdlab.store.files import write_atoms
    from qdlab.workflows.phonon_io import write_phonon_outputs
    from qdlab.workflows.phonons import phonons
    from qdlab.workflows.relax import relax

    atoms = read(structure)
    calc = get_calculator(engine, model=model, checkpoint=checkpoint, device=device, threads=threads, d3=d3)
    out.mkdir(parents=True, exist_ok=True)
    if relax_first:
        res = relax(atoms, calc, fmax=fmax, steps=relax_steps, trajectory=out / "relax.traj")
        if not as_json:
            console.print(f"relaxed: {res.steps} steps, fmax {res.fmax_eV_A:.4f} eV/Å, converged={res.converged}")
        atoms = res.atoms
        atoms.constraints = []
        write_atoms(out / "relaxed.extxyz", atoms)
    with Progress(TextColumn("Hessian"), BarColumn(), TextColumn("{task.completed}/{task.total} displacements"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=as_json) as bar:
        task = bar.add_task("fd", total=6 * len(atoms))
        result = phonons(atoms, calc, delta, method=method, batch_size=batch, checkpoint=out / "hessian.ckpt",
                         engine_name=f"{engine}:{model}:{checkpoint}:{d3}",
                         progress=lambda d, t: bar.update(task, completed=d, total=t))
    summary = write_phonon_outputs(atoms, result, out, sigma_cm1=sigma)
    summary = {k: v for k, v in summary.items() if k not in ("dos", "peaks")} | {"out": str(out)}
    if as_json:
        emit_json(summary)
        return
    table = Table(title=f"Γ phonons of {summary['formula']} → {out}", show_header=False)
    table.add_row("modes", f"{summary['n_modes']} (+{summary['n_rigid_projected']} rigid projected out)")
    table.add_row("imaginary (< −5 cm⁻¹)", str(summary["n_imaginary"]))
    for k, v in summary["peaks_cm1"].items():
        table.add_row(f"{k} centre", f"{v:.1f} cm⁻¹")
    table.add_row("time (engine share)", f"{summary['seconds']:.1f} s ({100 * summary['seconds_in_engine'] / max(summary['seconds'], 1e-9):.1f} %)")
    console.print(table)
