"""``qdlab analyze rdf|adf|rmsf|vdos|coordination TRAJ``: trajectory analyses → CSV, JSON and PNG.

Every subcommand reads the trajectory (ASE ``.traj`` or extended XYZ), discards equilibration
(``--skip`` ps or ``--skip-frames``), keeps every ``--stride``-th frame, computes everything and only
then writes its files into ``-o DIR`` (atomically, so bad input leaves no file behind).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from qdlab.cli.common import JSON_OPT, AliasGroup, console, emit_json, guarded, settings_default
from qdlab.errors import QdlabError
from qdlab.workflows.md_analysis import FrameWindow, RDFSettings, RMSFSettings, run_rdf, run_rmsf

analyze_app = typer.Typer(help="Trajectory analyses: RDF, ADF, RMSF, vibrational DOS, carboxylate binding geometry.",
                          no_args_is_help=True, cls=AliasGroup)

TRAJ_ARG = typer.Argument(..., help="Trajectory file (ASE .traj, extended XYZ, anything ase.io.read reads).")
OUT_OPT = typer.Option(Path("analysis_out"), "--output", "-o", help="Output folder.")
SKIP_OPT = typer.Option(None, "--skip-ps", help="Discard the first PS picoseconds, ps (needs info['time_fs'] in the frames).")
SKIP_FRAMES_OPT = typer.Option(0, "--skip-frames", help="Discard the first N frames.")
STRIDE_OPT = typer.Option(1, "--stride", help="Keep every K-th frame after the skip.")
LABELS_OPT = typer.Option(None, "--labels", help="Model file (extended XYZ) with the per-atom labels, for .traj input.")


def _load(traj: Path, window: FrameWindow, labels: Path | None, as_json: bool):
    """The frames of ``traj`` chosen by ``window`` (the workflows' one frame selection)."""
    with console.status(f"reading {traj}", spinner="dots") if not as_json else _Null():
        return window.load(traj, labels)


def _window(skip: float | None, skip_frames: int, stride: int) -> FrameWindow:
    return FrameWindow(skip_ps=skip or 0.0, skip_frames=skip_frames, stride=stride)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _csv_text(columns: dict[str, np.ndarray], fmt: str = "%.8g") -> str:
    """CSV with a header row from equal-length numeric columns (vectorised formatting)."""
    buf = io.StringIO()
    np.savetxt(buf, np.column_stack([np.asarray(v, float) for v in columns.values()]), delimiter=",", fmt=fmt,
               header=",".join(columns), comments="")
    return buf.getvalue()


def _finish(out: Path, name: str, summary: dict, csv: str, plot, as_json: bool, rows: list[tuple[str, str]]) -> None:
    from qdlab.store.files import write_text

    out.mkdir(parents=True, exist_ok=True)
    write_text(out / f"{name}.csv", csv)
    plot(out / f"{name}.png")
    summary = summary | {"files": [str(out / f"{name}.{x}") for x in ("csv", "json", "png")]}
    write_text(out / f"{name}.json", json.dumps(summary, indent=2, default=float) + "\n")
    if as_json:
        emit_json(summary)
        return
    _table(name, out, rows)


def _table(name: str, out: Path, rows: list[tuple[str, str]]) -> None:
    table = Table(title=f"{name} → {out}", show_header=False)
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


def _frames_info(t) -> dict:
    return {"n_frames": t.n_frames, "n_atoms": t.n_atoms,
            "first_frame": int(t.frame_indices[0]) if t.frame_indices is not None else 0,
            "time_ps": None if t.times_fs is None else [float(t.times_fs[0]) / 1e3, float(t.times_fs[-1]) / 1e3]}


@analyze_app.command("rdf")
@guarded
def rdf_cmd(traj: Path = TRAJ_ARG,
            pair: list[str] = typer.Option(settings_default(RDFSettings, "pairs"), "--pair",
                                           help="Element pair A-B (repeatable), e.g. Pb-Br, Pb-O; A/B/X name perovskite sites."),
            r_max: float = typer.Option(settings_default(RDFSettings, "r_max_A"), "--rmax", help="Largest distance, Å."),
            dr: float = typer.Option(settings_default(RDFSettings, "dr_A"), "--dr", help="Bin width, Å."),
            volume: str = typer.Option("hull", "--volume", help="Ideal-gas volume: hull | sphere | a number in Å³."),
            skip: float = SKIP_OPT, skip_frames: int = SKIP_FRAMES_OPT, stride: int = STRIDE_OPT,
            labels: Path = LABELS_OPT, out: Path = OUT_OPT, as_json: bool = JSON_OPT) -> None:
    """Radial distribution g_AB(r) and coordination number n_AB(r) of a finite cluster."""
    from qdlab.report.md_plots import plot_rdf

    vol: str | float = volume
    if volume not in ("hull", "sphere"):
        try:
            vol = float(volume)
        except ValueError:
            raise QdlabError(f"--volume must be hull, sphere or a number in Å³, not {volume!r}") from None
    settings = RDFSettings(pairs=pair, r_max_A=r_max, dr_A=dr, volume=vol,
                           **_window(skip, skip_frames, stride).model_dump())
    t = _load(traj, settings, labels, as_json)
    results = run_rdf(t, settings)
    cols = {"r_A": results[0].r_A}
    for r in results:
        cols[f"g_{r.pair}"] = r.g
        cols[f"n_{r.pair}"] = r.coordination
    summary = _frames_info(t) | {"volume_A3": results[0].volume_A3, "volume_mode": results[0].volume_mode,
                                 "pairs": {r.pair: _rdf_summary(r) for r in results}}
    rows = [(r.pair, f"peak {r.first_peak():.2f} Å, first minimum {r.first_minimum():.2f} Å, "
                     f"n = {r.coordination_at(r.first_minimum()):.2f}") for r in results]
    _finish(out, "rdf", summary, _csv_text(cols), lambda p: plot_rdf(results, p), as_json, rows)


def _rdf_summary(r) -> dict:
    rmin = r.first_minimum()
    return {"first_peak_A": r.first_peak(), "first_minimum_A": rmin, "n_a": r.n_a, "n_b": r.n_b,
            "coordination_at_first_minimum": r.coordination_at(rmin) if np.isfinite(rmin) else None}


@analyze_app.command("adf")
@guarded
def adf_cmd(traj: Path = TRAJ_ARG,
            triplet: list[str] = typer.Option(["Pb-Br-Pb"], "--triplet", help="A-B-C, angle at B (repeatable)."),
            cutoff: str = typer.Option("3.6", "--cutoff", help="Neighbour cutoff r_AB[,r_CB] in Å."),
            dtheta: float = typer.Option(1.0, "--dtheta", help="Bin width, degrees."),
            skip: float = SKIP_OPT, skip_frames: int = SKIP_FRAMES_OPT, stride: int = STRIDE_OPT,
            labels: Path = LABELS_OPT, out: Path = OUT_OPT, as_json: bool = JSON_OPT) -> None:
    """Angular distribution of A-B-C triplets (angle at the central atom) with neighbour cutoffs."""
    from qdlab.analysis.rdf import adf
    from qdlab.report.md_plots import plot_adf

    try:
        cuts = tuple(float(c) for c in cutoff.split(","))
    except ValueError:
        raise QdlabError(f"--cutoff {cutoff!r} must be one or two distances in Å, e.g. 3.6 or 3.6,3.8") from None
    if len(cuts) not in (1, 2):
        raise QdlabError(f"--cutoff {cutoff!r} must be one or two distances in Å")
    t = _load(traj, _window(skip, skip_frames, stride), labels, as_json)
    results = [adf(t, x, cutoffs=cuts if len(cuts) == 2 else cuts[0], dtheta=dtheta) for x in triplet]
    cols = {"theta_deg": results[0].theta_deg} | {f"p_{r.triplet}": r.density for r in results}
    summary = _frames_info(t) | {"triplets": {r.triplet: {"mean_deg": r.mean_deg(), "angles_per_frame": r.angles_per_frame,
                                                          "cutoffs_A": list(r.cutoffs_A)} for r in results}}
    rows = [(r.triplet, f"mean {r.mean_deg():.1f}°, {r.angles_per_frame:.1f} angles/frame") for r in results]
    _finish(out, "adf", summary, _csv_text(cols), lambda p: plot_adf(results, p), as_json, rows)


@analyze_app.command("rmsf")
@guarded
def rmsf_cmd(traj: Path = TRAJ_ARG,
             reference: str = typer.Option(settings_default(RMSFSettings, "reference"), "--reference",
                                           help="Alignment reference: mean (iterated) | first."),
             mass_weighted: bool = typer.Option(False, "--mass-weighted/--geometric", help="Mass-weighted Kabsch fit."),
             fit: str = typer.Option(None, "--fit", help="Fit on this selection only (e.g. core, element=Pb)."),
             skip: float = SKIP_OPT, skip_frames: int = SKIP_FRAMES_OPT, stride: int = STRIDE_OPT,
             labels: Path = LABELS_OPT, out: Path = OUT_OPT, as_json: bool = JSON_OPT) -> None:
    """RMSF per atom after Kabsch alignment, summarised per element and depth layer."""
    from qdlab.report.md_plots import plot_rmsf

    settings = RMSFSettings(reference=reference, mass_weighted=mass_weighted, fit=fit,
                            **_window(skip, skip_frames, stride).model_dump())
    t = _load(traj, settings, labels, as_json)
    res = run_rmsf(t, settings)
    summary = _frames_info(t) | res.to_dict()
    summary |= {"files": [str(out / f"rmsf.{x}") for x in ("csv", "json", "png")]}
    res.save(out, summary)
    plot_rmsf(res, out / "rmsf.png")
    if as_json:
        emit_json(summary)
        return
    rows = [(str(e), f"{s.mean_A:.3f} ± {s.std_A:.3f} Å ({s.n_atoms} atoms)") for e, s in res.by_element.items()]
    _table("rmsf", out, rows)


@analyze_app.command("vdos")
@guarded
def vdos_cmd(traj: Path = TRAJ_ARG,
             temperature: float = typer.Option(None, "--temperature", "-T", help="K (default: kinetic temperature)."),
             dt: float = typer.Option(None, "--dt", help="Time between frames, fs (default from info['time_fs'])."),
             source: str = typer.Option("auto", "--source", help="auto | velocities | positions."),
             window: str = typer.Option("hann", "--window", help="hann | blackman | hamming | none ..."),
             by: str = typer.Option("element", "--by", help="Partial VDOS: element | none."),
             sigma: float = typer.Option(0.0, "--sigma", help="Gaussian smoothing, cm⁻¹."),
             pad: int = typer.Option(1, "--pad", help="Zero-padding factor."),
             skip: float = SKIP_OPT, skip_frames: int = SKIP_FRAMES_OPT, stride: int = STRIDE_OPT,
             labels: Path = LABELS_OPT, out: Path = OUT_OPT, as_json: bool = JSON_OPT) -> None:
    """Vibrational DOS (mass-weighted velocity spectrum × quantum correction), total and per element."""
    from qdlab.analysis.vdos import vdos
    from qdlab.report.md_plots import plot_vdos

    if by not in ("element", "none"):
        raise QdlabError(f"--by must be element or none, not {by!r}")
    t = _load(traj, _window(skip, skip_frames, stride), labels, as_json)
    res = vdos(t, temperature_K=temperature, dt_fs=dt, source=source, window=window, pad=pad, sigma_cm1=sigma,
               selections="element" if by == "element" else None)
    cols = {"wavenumber_cm1": res.frequencies_cm1, "total": res.total, "classical_total": res.classical_total}
    cols |= {f"total_{k}": v for k, v in res.partial.items()}
    peaks = res.peaks().tolist()
    summary = _frames_info(t) | {"temperature_K": res.temperature_K, "kinetic_temperature_K": res.kinetic_temperature_K,
                                 "dt_fs": res.dt_fs, "resolution_cm1": res.resolution_cm1, "nyquist_cm1": res.nyquist_cm1,
                                 "source": res.source, "window": res.window, "peaks_cm1": peaks,
                                 "classical_integral": float(np.trapezoid(res.classical_total, res.frequencies_cm1))}
    rows = [("source", res.source), ("T (K)", f"{res.temperature_K:.2f}"),
            ("resolution", f"{res.resolution_cm1:.2f} cm⁻¹ (Nyquist {res.nyquist_cm1:.0f})"),
            ("peaks (cm⁻¹)", ", ".join(f"{p:.1f}" for p in peaks[:12]))]
    _finish(out, "vdos", summary, _csv_text(cols), lambda p: plot_vdos(res, p, xmax=min(res.nyquist_cm1, 4000.0)),
            as_json, rows)


@analyze_app.command("coordination")
@guarded
def coordination_cmd(traj: Path = TRAJ_ARG,
                     metal: str = typer.Option("Pb", "--metal", help="Binding metal element."),
                     threshold: float = typer.Option(3.0, "--threshold", help="Short/long distance, Å."),
                     seed: int = typer.Option(0, "--seed", help="k-means seed."),
                     skip: float = SKIP_OPT, skip_frames: int = SKIP_FRAMES_OPT, stride: int = STRIDE_OPT,
                     labels: Path = LABELS_OPT, out: Path = OUT_OPT, as_json: bool = JSON_OPT) -> None:
    """Carboxylate binding geometry (r1, r2, r3; bridge / tilted bridge / chelate / unidentate)."""
    from qdlab.analysis.coordination import CLASS_NAMES, binding_geometry
    from qdlab.report.md_plots import plot_binding_geometry

    t = _load(traj, _window(skip, skip_frames, stride), labels, as_json)
    res = binding_geometry(t, metal=metal, threshold_A=threshold, seed=seed)
    f, g = res.r1_A.shape
    cols = {"frame": np.repeat(t.frame_indices if t.frame_indices is not None else np.arange(f), g),
            "group": np.tile(np.arange(g), f), "ligand_id": np.tile(res.ligand_id, f),
            "metal_star": res.metal_star.ravel(), "r1_A": res.r1_A.ravel(), "r2_A": res.r2_A.ravel(),
            "r3_A": res.r3_A.ravel(), "class": res.classes.ravel()}
    csv = "# class: " + ", ".join(f"{k}={n}" for k, n in enumerate(CLASS_NAMES)) + "\n" + _csv_text(cols)
    summary = _frames_info(t) | res.summary()
    rows = [(k, f"{100 * v:.1f} %") for k, v in res.fractions.items()]
    rows += [("k-means bridge / tilted", f"{100 * res.kmeans['bridge']:.1f} % / {100 * res.kmeans['tilted_bridge']:.1f} %"),
             ("O > 3 Å from every metal", f"{100 * res.far_o_fraction:.1f} % of ligand-frames")]
    _finish(out, "binding", summary, csv, lambda p: plot_binding_geometry(res, p), as_json, rows)


from qdlab.cli.electronic import linewidth_cmd  # noqa: E402  (issue 18: gap-trace linewidth)

analyze_app.command("linewidth")(linewidth_cmd)
