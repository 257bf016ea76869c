"""``qdlab phonons``: Γ-point phonons of a structure (``qdlab phonons STRUCTURE``, the same as
``qdlab phonons run STRUCTURE``), ``compare`` of finished runs, and ``thermal``: harmonic
thermodynamics and ⟨u²⟩ from a finished run's Γ Hessian."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from qdlab.cli.common import JSON_OPT, AliasGroup, console, emit_json, guarded, settings_default
from qdlab.cli.engines import (
    CKPT_OPT,
    D3_OPT,
    DEVICE_OPT,
    ENGINE_OPT,
    FMAX_OPT,
    MODEL_OPT,
    RATTLE_OPT,
    SEED_OPT,
    THREADS_OPT,
    engine_spec,
)

DEFAULT_COMMAND = "run"


class PhononsGroup(AliasGroup):
    """The ``phonons`` group: a first argument that names no subcommand (a structure file, or an
    option other than ``--help``) goes to ``run``, so ``qdlab phonons STRUCTURE [OPTIONS]`` stays
    the phonon calculation beside ``qdlab phonons compare|thermal``."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(help="Γ-point phonons: `qdlab phonons STRUCTURE` (= `run`), `compare` finished runs, "
                       "`thermal` properties from one.", no_args_is_help=True, cls=PhononsGroup)


@app.command("compare")
@guarded
def compare_cmd(folders: list[Path] = typer.Argument(..., help="Finished `qdlab phonons` output folders."),
                out: Path = typer.Option(Path("phonons_compare.png"), "--output", "-o", help="The PNG plot."),
                as_json: bool = JSON_OPT) -> None:
    """Overlay the DOS of finished runs in one plot and tabulate their M1/M2/M3 peak centres."""
    from qdlab.errors import QdlabError
    from qdlab.report.plots import plot_dos_comparison
    from qdlab.workflows.phonon_io import load_dos_csv, load_peaks

    if out.suffix.lower() != ".png":
        raise QdlabError(f"compare writes a PNG: give -o plot.png, not {out}")
    systems = {f.name or str(f): (load_dos_csv(f), load_peaks(f)) for f in folders}
    plot_dos_comparison(systems, out, title="Γ-point phonon DOS per mode")
    table = {k: {n: p.centre_cm1 for n, p in v[1].items()} for k, v in systems.items()}
    if as_json:
        emit_json({"plot": str(out), "peaks_cm1": table})
        return
    t = Table(title=f"peak centres (cm⁻¹) → {out}")
    names = sorted({n for v in table.values() for n in v})
    t.add_column("system")
    for n in names:
        t.add_column(n)
    for k, v in table.items():
        t.add_row(k, *[f"{v[n]:.1f}" if n in v else "–" for n in names])
    console.print(t)


def _default(name: str):
    from qdlab.workflows.phonons import PhononSettings

    return settings_default(PhononSettings, name)


@app.command(DEFAULT_COMMAND)
@guarded
def phonons_cmd(structure: Path = typer.Argument(..., help="Structure file (extended XYZ, ...)."),
                out: Path = typer.Option(Path("phonons_out"), "--output", "-o", help="Output folder."),
                engine: str = ENGINE_OPT, model: str = MODEL_OPT, checkpoint: str = CKPT_OPT,
                device: str = DEVICE_OPT, threads: int = THREADS_OPT, d3: bool = D3_OPT,
                relax_first: bool = typer.Option(True, "--relax/--no-relax", help="Relax (L-BFGS) before the Hessian."),
                fmax: float = FMAX_OPT,
                relax_steps: int = typer.Option(2000, "--relax-steps", help="Maximum relaxation steps."),
                rattle: float = RATTLE_OPT, seed: int = SEED_OPT,
                delta: float = typer.Option(_default("delta"), "--delta", help="Finite-difference displacement, Å."),
                method: str = typer.Option(_default("method"), "--method", help="fd (finite differences) | analytic (classical, chgnet: exact second derivatives)."),
                batch: int = typer.Option(_default("batch"), "--batch", help="Displacements per engine call (engines with batching)."),
                workers: int = typer.Option(1, "--workers", help="Processes sharing the displacements (1 thread each)."),
                sigma: float = typer.Option(_default("sigma_cm1"), "--sigma", help="Gaussian smearing of the DOS, cm⁻¹."),
                as_json: bool = JSON_OPT) -> None:
    """Relax, build the Hessian (6N force calls, checkpointed), project rigid modes, DOS and peaks.

    `qdlab phonons STRUCTURE` is the same command.
    """
    import warnings

    from qdlab.cli.inputs import check_phonon_job, load_engine, load_structure
    from qdlab.store.files import write_atoms
    from qdlab.store.locks import output_lock
    from qdlab.workflows.phonon_io import write_phonon_outputs
    from qdlab.workflows.phonons import PhononSettings, phonons
    from qdlab.workflows.relax import RelaxSettings, run_relax

    atoms = load_structure(structure, what="phonons input", min_atoms=2)
    check_phonon_job(atoms, fmax=fmax, relax_steps=relax_steps, delta=delta, sigma=sigma, workers=workers,
                     batch=batch, method=method)  # one line naming the option, before any work
    ps = PhononSettings(delta=delta, method=method, batch=batch, sigma_cm1=sigma)
    spec = engine_spec(engine, model, checkpoint, device, threads, d3)
    calc = load_engine(atoms, spec)
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out / "hessian.ckpt", what="phonons run"):  # a second run into this folder is refused
        if relax_first:
            settings = RelaxSettings(fmax=fmax, steps=relax_steps, rattle_A=rattle, seed=seed)
            res = run_relax(atoms, calc, settings, trajectory=out / "relax.traj")
            if not as_json:
                console.print(f"relaxed: {res.steps} steps, fmax {res.fmax_eV_A:.4f} eV/Å, converged={res.converged}")
            atoms = res.atoms
            atoms.constraints = []
            write_atoms(out / "relaxed.extxyz", atoms)
        with Progress(TextColumn("Hessian"), BarColumn(), TextColumn("{task.completed}/{task.total} displacements"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=as_json) as bar, \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            task = bar.add_task("fd", total=6 * len(atoms))
            result = phonons(atoms, calc, ps.delta, method=ps.method, batch_size=ps.batch, checkpoint=out / "hessian.ckpt",
                             workers=workers, engine_spec=spec,
                             progress=lambda d, t: bar.update(task, completed=d, total=t))
    for w in caught:  # qdlab's reports (damaged checkpoint records, imaginary modes): one line each
        if issubclass(w.category, UserWarning) and "qdlab" in str(w.filename):
            console.print(f"warning: {w.message}", highlight=False)
    summary = write_phonon_outputs(atoms, result, out, sigma_cm1=ps.sigma_cm1)
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


@app.command("thermal")
@guarded
def thermal_cmd(folder: Path = typer.Argument(..., metavar="PHONONS_DIR", help="A `qdlab phonons` output folder (phonons.npz)."),
                structure: Path = typer.Option(None, "--structure", help="Relaxed structure (default: FOLDER/relaxed.extxyz)."),
                out: Path = typer.Option(Path("thermal"), "--output", "-o", help="Output folder."),
                tmin: float = typer.Option(0.0, "--tmin", help="K"), tmax: float = typer.Option(1000.0, "--tmax", help="K"),
                tstep: float = typer.Option(10.0, "--tstep", help="K"),
                cutoff: float = typer.Option(1.0, "--cutoff", help="Modes below this (cm⁻¹, incl. imaginary) are excluded."),
                classical: bool = typer.Option(False, "--classical", help="⟨u²⟩ with k_BT per mode (to compare with classical MD)."),
                as_json: bool = JSON_OPT) -> None:
    """Harmonic F, S, C_v, ZPE vs T and ⟨u²⟩ per atom/element from Γ phonons."""
    from qdlab.workflows.ir import ThermalSettings, run_thermal

    summary = run_thermal(folder, out, ThermalSettings(tmin, tmax, tstep, cutoff, classical), structure)
    if as_json:
        emit_json(summary)
        return
    t = Table(title=f"harmonic thermal properties → {out} (ZPE {summary['zpe_eV']:.4f} eV, "
                    f"{summary['n_modes']} modes, {summary['n_excluded']} excluded)")
    for c in ("T", "F (eV)", "S (meV/K)", "C_v (meV/K)", "⟨u²⟩ by element (Å²)"):
        t.add_column(c)
    for k, v in summary["at"].items():
        t.add_row(k, f"{v['F_eV']:.4f}", f"{1e3 * v['S_eV_K']:.4f}", f"{1e3 * v['Cv_eV_K']:.4f}",
                  ", ".join(f"{e} {u:.2e}" for e, u in v["u2_A2"].items()))
    console.print(t)
