"""``qdlab ir``: IR spectra from MD dipoles and from harmonic modes, the dipole model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qdlab.cli.common import JSON_OPT, console, emit_json, guarded

app = typer.Typer(help="IR spectra: from MD dipoles (seed 001) or harmonic modes; the learned dipole model.",
                  no_args_is_help=True)

DIPOLES_OPT = typer.Option("charges", "--dipoles", "-d",
                           help="charges (the frames' initial_charges) | seed001 (Pb by site class, 001 ESP) | "
                                "xtb | MODEL.pt (latent-charge model) | module:factory (an ASE calculator with a "
                                "dipole result); xtb and module:factory are checkpointed per frame (rerun resumes)")


def _bar(label: str, quiet: bool) -> Progress:
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, disable=quiet)


def _bands_table(title: str, bands: dict) -> Table:
    t = Table(title=title)
    for c in ("band", "position cm⁻¹", "seed 001 cm⁻¹"):
        t.add_column(c)
    for name, b in bands.items():
        if name == "delta_nu_cm1":
            t.add_row("Δν = ν_as − ν_s", f"{b:.0f}", "")
        elif b is None:
            t.add_row(name, "–", "")
        else:
            pos = b.get("position_cm1", b.get("centre_cm1"))
            lo, hi = b["paper_cm1"]
            t.add_row(name, f"{pos:.0f}", f"{lo:.0f}" if lo == hi else f"{lo:.0f}–{hi:.0f}")
    return t


@app.command("md")
@guarded
def md_cmd(trajectory: Path = typer.Argument(..., help="NVE trajectory (extended XYZ with momenta and time_fs)."),
           dipoles: str = DIPOLES_OPT,
           out: Path = typer.Option(Path("ir_md"), "--output", "-o", help="Output folder."),
           resolution: float = typer.Option(None, "--resolution", help="Spectral resolution, cm⁻¹ (default: 1/(half the run))."),
           temperature: float = typer.Option(None, "--temperature", help="K for the quantum correction (default: kinetic)."),
           derivative: str = typer.Option("velocities", "--derivative", help="velocities (exact μ̇) | positions | auto"),
           skip_ps: float = typer.Option(None, "--skip-ps", help="Discard this much equilibration, ps."),
           window: str = typer.Option("hann", "--window", help="Taper of the correlation function (scipy name, none)."),
           fmin: float = typer.Option(0.0, "--fmin"), fmax: float = typer.Option(4000.0, "--fmax"),
           as_json: bool = JSON_OPT) -> None:
    """IR spectrum from the dipole autocorrelation of an NVE run, with peaks, carboxylate bands and binding classes."""
    from qdlab.workflows.ir import IRMDSettings, run_ir_md

    s = IRMDSettings(dipoles=dipoles, resolution_cm1=resolution, temperature_K=temperature, window=window,
                     derivative=derivative, skip_ps=skip_ps, fmin_cm1=fmin, fmax_cm1=fmax)
    from qdlab.engines.support import is_import_path

    per_frame = dipoles.lower() in ("xtb", "gfn1", "gfn2") or is_import_path(dipoles)
    with _bar("dipoles", as_json or not per_frame) as bar:
        task = bar.add_task("mu", total=None)
        summary = run_ir_md(trajectory, out, s, progress=lambda d, t: bar.update(task, completed=d, total=t))
    if as_json:
        emit_json(summary)
        return
    console.print(f"IR from {summary['n_frames']} frames, dt {summary['dt_fs']:g} fs, T {summary['temperature_K']:.1f} K, "
                  f"resolution {summary['resolution_cm1']:.2f} cm⁻¹ → {out}")
    console.print(_bands_table("carboxylate bands (MD)", summary["bands"]))
    if summary.get("binding_geometry"):
        console.print({"binding fractions": summary["binding_geometry"]["fractions"]})


@app.command("harmonic")
@guarded
def harmonic_cmd(phonons: Path = typer.Argument(..., help="A `qdlab phonons` output folder (phonons.npz)."),
                 dipoles: str = typer.Option("seed001", "--dipoles", "-d", help="charges | seed001 | xtb | MODEL.pt"),
                 structure: Path = typer.Option(None, "--structure", help="Relaxed structure (default: FOLDER/relaxed.extxyz)."),
                 out: Path = typer.Option(Path("ir_harmonic"), "--output", "-o", help="Output folder."),
                 fwhm: float = typer.Option(10.0, "--fwhm", help="Broadening FWHM, cm⁻¹."),
                 shape: str = typer.Option("lorentzian", "--shape", help="lorentzian | gaussian"),
                 delta: float = typer.Option(0.01, "--delta", help="Displacement for Born charges by finite differences, Å."),
                 fmin: float = typer.Option(0.0, "--fmin"), fmax: float = typer.Option(4000.0, "--fmax"),
                 as_json: bool = JSON_OPT) -> None:
    """Harmonic IR: Born charges of a dipole source, intensities per Γ mode, broadened spectrum, bands."""
    from qdlab.workflows.ir import HarmonicIRSettings, run_ir_harmonic

    s = HarmonicIRSettings(dipoles=dipoles, delta_A=delta, fwhm_cm1=fwhm, shape=shape, fmin_cm1=fmin, fmax_cm1=fmax)
    summary = run_ir_harmonic(phonons, out, s, structure)
    if as_json:
        emit_json(summary)
        return
    console.print(f"harmonic IR of {summary['n_modes']} modes ({summary['source']}) → {out}")
    console.print(_bands_table("carboxylate bands (harmonic, windows)", summary["bands"]))
    console.print({"by mode character": summary["bands_by_mode_character"]})


@app.command("train")
@guarded
def train_cmd(dataset: Path = typer.Argument(..., help="Labelled frames with dipoles (`qdlab label ... -e xtb`)."),
              out: Path = typer.Option(Path("dipole_model.pt"), "--output", "-o", help="Model file (.pt)."),
              epochs: int = typer.Option(600, "--epochs"), lr: float = typer.Option(3e-3, "--lr"),
              hidden: int = typer.Option(64, "--hidden"), cutoff: float = typer.Option(6.0, "--cutoff", help="Å"),
              seed: int = typer.Option(0, "--seed"),
              baselines: str = typer.Option("seed001,charges", "--baselines", help="Fixed-charge sources to compare."),
              overwrite: bool = typer.Option(False, "--overwrite", help="Start afresh instead of resuming."),
              as_json: bool = JSON_OPT) -> None:
    """Train the latent-charge dipole model; held-out RMSE vs the dipole RMS and vs fixed charges, parity plot.

    Checkpointed after every epoch (MODEL.resume.pt); rerunning the same command resumes."""
    from qdlab.workflows.dipole_fit import DipoleFitSettings, run_dipole_training

    s = DipoleFitSettings(epochs=epochs, lr=lr, hidden=hidden, cutoff_A=cutoff, seed=seed)
    names = [b.strip() for b in baselines.split(",") if b.strip()]
    with _bar("epochs", as_json) as bar:
        task = bar.add_task("fit", total=epochs)
        summary = run_dipole_training(dataset, out, s, names, restart=overwrite,
                                      progress=lambda e, n, v: bar.update(task, completed=e))
    if as_json:
        emit_json(summary)
        return
    t = Table(title=f"dipole model {out} (held-out {summary['n_test']} frames)")
    t.add_column("model")
    t.add_column("RMSE (D)")
    t.add_row("latent charges", f"{summary['rmse_D']:.3f}")
    for k, v in summary["baseline_rmse_D"].items():
        t.add_row(f"fixed charges: {k}", f"{v:.3f}")
    t.add_row("RMS of the dipole components", f"{summary['rms_dipole_D']:.3f}")
    console.print(t)


@app.command("parity")
@guarded
def parity_cmd(model: Path = typer.Argument(..., help="Dipole model (.pt)."),
               dataset: Path = typer.Argument(..., help="Labelled frames with dipoles."),
               out: Path = typer.Option(Path("dipole_parity.png"), "--output", "-o"),
               as_json: bool = JSON_OPT) -> None:
    """Dipole parity of a trained model on any labelled frames (RMSE per component, plot)."""
    import numpy as np
    from ase import units

    from qdlab.engines.dipole_model import load_dipole_model
    from qdlab.report.ir_plots import plot_dipole_parity
    from qdlab.store.db import read_frames
    from qdlab.workflows.dipole_fit import frame_dipoles

    m = load_dipole_model(model)
    frames = [a for a in read_frames(dataset) if a.info.get("status", "ok") != "failed"]
    ref = frame_dipoles(frames) / units.Debye
    pred = np.concatenate([m.dipoles(a, a.positions[None]) for a in frames]) / units.Debye
    plot_dipole_parity(ref, {"model": pred}, out, title=f"{model.name} on {dataset.name}")
    err = pred - ref
    res = {"n_frames": len(frames), "rmse_D": float(np.sqrt((err ** 2).mean())),
           "rmse_component_D": np.sqrt((err ** 2).mean(0)).tolist(), "rms_dipole_D": float(np.sqrt((ref ** 2).mean())),
           "plot": str(out)}
    if as_json:
        emit_json(res)
    else:
        console.print(res)


@app.command("seed001")
@guarded
def seed001_cmd(out: Path = typer.Option(Path("seed001_ir"), "--output", "-o", help="Output folder (resumable)."),
                size: int = typer.Option(1, "--size", help="1 Pb6S(OAc)10 (laptop) | 2 Pb19S6(OAc)26 (seed 001)."),
                engine: str = typer.Option("chgnet", "--engine", "-e", help="Force engine for relax and MD (chgnet, sevennet, classical, ...)."),
                model: str = typer.Option(None, "--dipole-model", help="Learned dipole model (.pt) besides seed001 charges."),
                md_steps: int = typer.Option(0, "--md-steps", help="NVE steps for the MD spectrum (0: harmonic only)."),
                timestep: float = typer.Option(0.5, "--timestep", help="fs"),
                resolution: float = typer.Option(None, "--resolution", help="cm⁻¹ (MD spectrum)."),
                as_json: bool = JSON_OPT) -> None:
    """seed001-ir: relax → Γ phonons → harmonic IR (→ NVE → MD IR); acetate bands beside seed 001's ranges."""
    from qdlab.campaign.seed001_ir import reproduce_seed001_ir

    res = reproduce_seed001_ir(out, size=size, engine=engine, dipole_model=model, md_steps=md_steps,
                               timestep_fs=timestep, resolution_cm1=resolution,
                               log=lambda m: console.print(m, highlight=False, markup=False))
    if as_json:
        emit_json(res)
        return
    t = Table(title=f"seed001-ir: {res['formula']} with {res['engine']} (cm⁻¹)")
    cols = ("nu_s", "umbrella", "ch_bend", "nu_as", "delta_nu", "nu_s_coordinate", "nu_as_coordinate")
    t.add_column("spectrum")
    for c in cols:
        t.add_column(c)
    t.add_row("seed 001 (paper)", *[res["paper_cm1"].get(c, "") for c in cols])
    for r in res["rows"]:
        t.add_row(r["spectrum"], *["–" if r.get(c) is None else f"{r[c]:.0f}" for c in cols])
    console.print(t)
