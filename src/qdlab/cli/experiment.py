"""``qdlab plate ...`` (LARP plate design, OT-2 protocol) and ``qdlab pl ...`` (PL import, fits, views, models)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from qdlab.cli.common import JSON_OPT, AliasGroup, console, emit_json, guarded
from qdlab.errors import QdlabError

plate_app = typer.Typer(help="High-throughput LARP plates: design a well map, generate and simulate the OT-2 protocol.",
                        no_args_is_help=True)
pl_app = typer.Typer(help="Plate-reader PL spectra: import Gen5 exports, fit Gaussians, plot, model with SHAP.",
                     no_args_is_help=True, cls=AliasGroup)


def _floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise QdlabError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not vals:
        raise QdlabError(f"{what}: no values")
    return vals


def _window(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    lo_hi = _floats(text.replace(":", ","), "--window")
    if len(lo_hi) != 2 or lo_hi[0] >= lo_hi[1]:
        raise QdlabError(f"--window: expected LO:HI in nm with LO < HI, got {text!r}")
    return lo_hi[0], lo_hi[1]


@plate_app.command("design")
@guarded
def design_cmd(output: Path = typer.Option(Path("plate.json"), "-o", "--output", help="Plan JSON (well map + mixes + reservoir)."),
               csv: Path = typer.Option(None, "--csv", help="Also write the well map as CSV."),
               ratios: str = typer.Option("0.1,0.25,0.5,0.75,1,1.5,2", "--ratios",
                                          help="Amine per acid r of acid:amine 1:r, comma-separated."),
               pairs: list[str] = typer.Option(["OAc:OLAm"], "--pair", help="Ligand pair (OAc:OLAm, OctAc:OctAm); repeatable."),
               ligand_ratios: str = typer.Option("30", "--ligand-ratio", help="N of ligand:PbBr2 1:N (v/v), comma-separated."),
               antisolvents: list[str] = typer.Option(["toluene", "chloroform"], "--antisolvent", help="Repeatable."),
               replicates: int = typer.Option(1, "--replicates"),
               cs_ul: float = typer.Option(20.0, "--cs-ul", help="Cs stock per well, µL."),
               antisolvent_ul: float = typer.Option(180.0, "--antisolvent-ul", help="Antisolvent per well, µL."),
               precursor_ul: float = typer.Option(20.0, "--precursor-ul", help="Precursor mix injected per well, µL."),
               as_json: bool = JSON_OPT) -> None:
    """Lay out a LARP grid on a 96-well plate and check volumes against well and pipette limits."""
    from qdlab.experiment.plate import PlateDesign, design_plate, save_plan

    design = PlateDesign(amine_ratios=_floats(ratios, "--ratios"), ligand_pairs=pairs,
                         ligand_volume_ratios=_floats(ligand_ratios, "--ligand-ratio"), antisolvents=antisolvents,
                         replicates=replicates, cs_uL=cs_ul, antisolvent_uL=antisolvent_ul, precursor_uL=precursor_ul)
    plan = design_plate(design)
    save_plan(plan, output)
    if csv:
        save_plan(plan, csv)
    info = {"output": str(output), "csv": str(csv) if csv else None, "wells": len(plan["wells"]),
            "mixes": len(plan["mixes"]), "reservoir_uL": {k: round(sum(w["load_uL"] for w in v), 1)
                                                         for k, v in plan["reservoir"].items()}}
    if as_json:
        emit_json(info)
    else:
        console.print(f"{info['wells']} wells, {info['mixes']} precursor mixes → {output}")
        for k, v in info["reservoir_uL"].items():
            console.print(f"  load {v:8.1f} µL {k}")


def _report_sim(log, as_json: bool, extra: dict) -> None:
    tr = log.transfers()
    info = extra | {"simulated": True, "transfers": len(tr), "volume_uL": round(sum(v for v, _, _ in tr), 2),
                    "tips": log.count("Picking up tip"), "mixes": log.count("Mixing")}
    if as_json:
        emit_json(info)
    else:
        console.print(f"simulation ok: {info['transfers']} transfers, {info['volume_uL']} µL, {info['tips']} tips")


@plate_app.command("protocol")
@guarded
def protocol_cmd(plan_file: Path = typer.Argument(..., help="Plan JSON from `qdlab plate design`."),
                 output: Path = typer.Option(Path("larp_protocol.py"), "-o", "--output"),
                 simulate: bool = typer.Option(False, "--simulate", help="Run it in the Opentrons simulator (.venv-ot2)."),
                 as_json: bool = JSON_OPT) -> None:
    """Generate the OT-2 Python protocol (Protocol API v2) for a plan."""
    from qdlab.experiment.opentrons import protocol_steps, simulate_protocol, write_protocol
    from qdlab.experiment.plate import load_plan

    plan = load_plan(plan_file)
    write_protocol(plan, output)
    steps = protocol_steps(plan)
    extra = {"output": str(output), "steps": len(steps), "volume_uL": round(sum(s.volume_uL for s in steps), 2)}
    if simulate:
        _report_sim(simulate_protocol(output), as_json, extra)
    elif as_json:
        emit_json(extra)
    else:
        console.print(f"wrote {output} ({extra['steps']} transfers, {extra['volume_uL']} µL)")


@plate_app.command("simulate")
@guarded
def simulate_cmd(protocol: Path = typer.Argument(..., help="An OT-2 Python protocol."), as_json: bool = JSON_OPT) -> None:
    """Run an OT-2 protocol in the opentrons package's simulator (needs .venv-ot2, made by `make test`)."""
    from qdlab.experiment.opentrons import simulate_protocol

    if not protocol.exists():
        raise QdlabError(f"no such file: {protocol}")
    _report_sim(simulate_protocol(protocol), as_json, {"protocol": str(protocol)})


def _load_spectra(path: Path, wellmap: Path | None, interval: float):
    from qdlab.experiment.plate import load_wellmap
    from qdlab.experiment.platereader import join_wellmap, read_spectra

    tidy = read_spectra(path, interval_min=interval)
    if wellmap is not None:
        tidy = join_wellmap(tidy, load_wellmap(wellmap))
    return tidy


WELLMAP_OPT = typer.Option(None, "--wellmap", help="Plan JSON or well-map CSV to join by well.")
INTERVAL_OPT = typer.Option(10.0, "--interval", help="Minutes between reads when the export has no read times.")


@pl_app.command("import")
@guarded
def import_cmd(export: Path = typer.Argument(..., help="Gen5/Cytation export (.csv/.txt/.xlsx) or tidy CSV/Parquet."),
               output: Path = typer.Option(Path("spectra.parquet"), "-o", "--output", help="Tidy table (.parquet or .csv)."),
               wellmap: Path = WELLMAP_OPT, interval: float = INTERVAL_OPT, as_json: bool = JSON_OPT) -> None:
    """Convert a plate-reader export to the tidy long format (well, read, time_min, wavelength_nm, intensity)."""
    from qdlab.experiment.platereader import write_tidy

    tidy = _load_spectra(export, wellmap, interval)
    write_tidy(tidy, output)
    info = {"output": str(output), "wells": int(tidy["well"].nunique()), "reads": int(tidy["read"].nunique()),
            "wavelengths": int(tidy["wavelength_nm"].nunique()), "rows": len(tidy),
            "saturated_points": int(tidy["intensity"].isna().sum())}
    if as_json:
        emit_json(info)
    else:
        console.print(f"{info['wells']} wells × {info['reads']} reads × {info['wavelengths']} wavelengths → {output}")


@pl_app.command("fit")
@guarded
def fit_cmd(spectra: Path = typer.Argument(..., help="Tidy table or Gen5 export."),
            output: Path = typer.Option(Path("fits.csv"), "-o", "--output", help="Results table (.csv or .parquet)."),
            wellmap: Path = WELLMAP_OPT, interval: float = INTERVAL_OPT,
            baseline: str = typer.Option("linear", "--baseline", help="none, constant or linear."),
            window: str = typer.Option(None, "--window", help="Fit window LO:HI in nm, e.g. 450:600."),
            min_snr: float = typer.Option(3.0, "--min-snr", help="Flag fits with height < this × residual RMS."),
            min_height: float = typer.Option(0.0, "--min-height", help="Flag fits with height ≤ this (counts)."),
            as_json: bool = JSON_OPT) -> None:
    """Fit one Gaussian to every well × read at once; failed or meaningless fits are flagged."""
    from qdlab.experiment.platereader import write_tidy
    from qdlab.experiment.plfit import fit_table

    win = _window(window)
    tidy = _load_spectra(spectra, wellmap, interval)
    t0 = time.perf_counter()
    fits = fit_table(tidy, baseline=baseline, window_nm=win, min_snr=min_snr, min_height=min_height)
    dt = time.perf_counter() - t0
    write_tidy(fits, output)
    flags = fits.loc[~fits["ok"], "flag"].str.split("|").explode().value_counts().to_dict()
    info = {"output": str(output), "spectra": len(fits), "ok": int(fits["ok"].sum()), "flagged": int((~fits["ok"]).sum()),
            "flags": flags, "fit_seconds": round(dt, 3), "median_r2": float(fits["r2"].median())}
    if as_json:
        emit_json(info)
    else:
        console.print(f"{info['spectra']} spectra fitted in {dt:.2f} s: {info['ok']} ok, {info['flagged']} flagged "
                      f"{flags or ''} → {output}")


@pl_app.command("plot")
@guarded
def plot_cmd(fits_file: Path = typer.Argument(..., help="Results table from `qdlab pl fit`."),
             out: Path = typer.Option(Path("pl_plots"), "--output", "-o", help="Output folder."),
             spectra: Path = typer.Option(None, "--spectra", help="Tidy table or export, for the heatmaps."),
             wellmap: Path = WELLMAP_OPT,
             pair: str = typer.Option(None, "--pair", help="Only this ligand pair in the ratio map."),
             antisolvent: str = typer.Option(None, "--antisolvent", help="Only this antisolvent in the ratio map."),
             wells: str = typer.Option(None, "--wells", help="Wells for the heatmaps, comma-separated (default: first 16)."),
             as_json: bool = JSON_OPT) -> None:
    """Heatmaps per well, time traces of centre/FWHM/height, and the intensity/FWHM map vs acid:amine ratio."""
    import pandas as pd

    from qdlab.experiment.plate import load_wellmap
    from qdlab.experiment.views import plot_heatmaps, plot_ratio_map, plot_traces

    if not fits_file.exists():
        raise QdlabError(f"no such file: {fits_file}")
    fits = pd.read_parquet(fits_file) if fits_file.suffix.lower() == ".parquet" else pd.read_csv(fits_file)
    if wellmap is not None:
        wm = load_wellmap(wellmap)
        fits = fits.merge(wm[[c for c in wm.columns if c not in fits.columns or c == "well"]], on="well", how="left")
    written = [str(plot_traces(fits, out / "traces.png"))]
    if "amine_per_acid" in fits.columns:
        sel = fits
        if pair:
            sel = sel[sel["ligand_pair"] == pair]
        if antisolvent:
            sel = sel[sel["antisolvent"] == antisolvent]
        if sel.empty:
            raise QdlabError(f"no wells with pair={pair} antisolvent={antisolvent}")
        title = " ".join(x for x in (pair, antisolvent) if x) or None
        written.append(str(plot_ratio_map(sel, out / "ratio_map.png", title=title)))
    if spectra is not None:
        tidy = _load_spectra(spectra, None, 10.0)
        chosen = [w.strip() for w in wells.split(",")] if wells else None
        written.append(str(plot_heatmaps(tidy, out / "heatmaps.png", wells=chosen)))
    if as_json:
        emit_json({"written": written})
    else:
        for w in written:
            console.print(f"wrote {w}")


@pl_app.command("table")
@guarded
def table_cmd(fits_file: Path = typer.Argument(..., help="Results table from `qdlab pl fit`."),
              wellmap: Path = typer.Option(..., "--wellmap", help="Plan JSON or well-map CSV."),
              at: float = typer.Option(0.0, "--time", help="Targets from the read nearest this time, min."),
              output: Path = typer.Option(Path("synthesis.csv"), "-o", "--output"),
              as_json: bool = JSON_OPT) -> None:
    """Synthesis table for `qdlab pl models`: per-well reagent volumes + fitted peak/intensity at a time."""
    import pandas as pd

    from qdlab.experiment.models import training_table
    from qdlab.experiment.plate import load_wellmap
    from qdlab.experiment.platereader import write_tidy

    if not fits_file.exists():
        raise QdlabError(f"no such file: {fits_file}")
    fits = pd.read_parquet(fits_file) if fits_file.suffix.lower() == ".parquet" else pd.read_csv(fits_file)
    table = training_table(fits, load_wellmap(wellmap), time_min=at)
    write_tidy(table, output)
    info = {"output": str(output), "wells": len(table), "dropped_flagged": table.attrs["dropped_wells"],
            "columns": list(table.columns)}
    if as_json:
        emit_json(info)
    else:
        console.print(f"{len(table)} wells → {output} ({info['dropped_flagged']} flagged left out)")


@pl_app.command("models")
@guarded
def models_cmd(table: Path = typer.Argument(..., help="Synthesis table (CSV/Parquet): features + target."),
               target: str = typer.Option("peak_nm", "--target", help="Target column (peak position or intensity)."),
               features: list[str] = typer.Option([], "--feature", help="Feature column; repeatable (default: all numeric "
                                                                  "but the targets peak_nm, intensity, fwhm_nm)."),
               models: list[str] = typer.Option([], "--model", help="linear, random_forest, svr, mlp, gradient_boosting; repeatable."),
               seed: int = typer.Option(0, "--seed"), cv: int = typer.Option(5, "--cv", help="Cross-validation folds."),
               n_estimators: int = typer.Option(200, "--n-estimators"),
               out: Path = typer.Option(Path("models_out"), "--output", "-o", help="Output folder."),
               as_json: bool = JSON_OPT) -> None:
    """Fit the regression models (seeded 80/20 split + CV), write the RMSE table, SHAP ranking and beeswarm."""
    import pandas as pd

    from qdlab.experiment.models import MODEL_NAMES, fit_models, plot_beeswarm, shap_ranking, shap_values
    from qdlab.experiment.platereader import write_tidy

    from qdlab.build.gate import check_option
    from qdlab.experiment.tables import read_table

    check_option("--cv", cv, ge=2)
    df = read_table(table)
    feats = features or [c for c in df.columns if c not in {target, "peak_nm", "intensity", "fwhm_nm", "well"}
                         and pd.api.types.is_numeric_dtype(df[c])]
    report = fit_models(df, target, features=feats, models=models or MODEL_NAMES, seed=seed, cv=cv,
                        n_estimators=n_estimators)
    expl = shap_values(report)
    ranking = shap_ranking(expl)
    write_tidy(report.rmse, out / "rmse.csv")
    write_tidy(ranking, out / "shap_ranking.csv")
    plot_beeswarm(expl, out / "shap_beeswarm.png", title=f"{target}: {report.best}")
    info = {"target": target, "best": report.best, "rmse": report.rmse.round(4).to_dict("records"),
            "shap_ranking": ranking["feature"].tolist(), "out": str(out)}
    if as_json:
        emit_json(info)
    else:
        console.print(report.rmse.to_string(index=False))
        console.print(f"best: {report.best}; SHAP ranking: {', '.join(info['shap_ranking'])}")


@pl_app.command("synthetic")
@guarded
def synthetic_cmd(export: Path = typer.Option(None, "--export", help="Write a synthetic Gen5 export (.csv/.xlsx)."),
                  table: Path = typer.Option(None, "--table", help="Write a synthetic synthesis table (CSV)."),
                  wells: int = typer.Option(8, "--wells"), reads: int = typer.Option(12, "--reads"),
                  noise: float = typer.Option(10.0, "--noise", help="Noise σ, counts."),
                  rows: int = typer.Option(200, "--rows"), seed: int = typer.Option(0, "--seed"),
                  as_json: bool = JSON_OPT) -> None:
    """Synthetic data with known answers: a Gen5 export of Gaussian spectra and/or a synthesis table."""
    from qdlab.experiment.platereader import write_tidy
    from qdlab.experiment.synthetic import synthetic_run, synthetic_synthesis_table, write_gen5

    if export is None and table is None:
        raise QdlabError("nothing to write: give --export and/or --table")
    written = []
    if export is not None:
        tidy, _ = synthetic_run(wells, reads, noise=noise, seed=seed)
        written.append(str(write_gen5(tidy, export)))
    if table is not None:
        written.append(str(write_tidy(synthetic_synthesis_table(rows, seed=seed), table)))
    if as_json:
        emit_json({"written": written})
    else:
        for w in written:
            console.print(f"wrote {w}")
