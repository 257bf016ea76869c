"""Synthetic PL plate runs and synthesis tables with known answers (tests, benchmarks, demos).

``synthetic_run`` makes Gaussian PL spectra for every well × read on the Cytation grid
(400–650 nm, 2 nm steps; one read every 10 min) with known centre/FWHM/height per spectrum,
optionally noisy; ``write_gen5`` writes them as a Gen5-style export ("Read N:EM Spectrum"
blocks) so the importer can be tested end to end. ``synthetic_synthesis_table`` draws a
synthesis table whose target depends on known features only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qdlab.experiment.plfit import FWHM_PER_SIGMA
from qdlab.experiment.plate import well_names


def cytation_grid(lo_nm: float = 400.0, hi_nm: float = 650.0, step_nm: float = 2.0) -> np.ndarray:
    """Emission wavelengths (nm) of the Cytation 5 sweep in seed 002: 400–650 nm in 2 nm steps (126)."""
    return np.arange(lo_nm, hi_nm + 0.5 * step_nm, step_nm)


def synthetic_run(n_wells: int = 96, n_reads: int = 72, *, wavelength_nm: np.ndarray | None = None,
                  interval_min: float = 10.0, noise: float = 0.0, baseline: float = 20.0, slope: float = 0.0,
                  seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gaussian spectra for ``n_wells`` × ``n_reads`` with drifting peaks; returns (tidy, truth).

    Per well: centre 500–520 nm, FWHM 20–35 nm, height 500–5000 counts at t = 0, drifting
    linearly with time (red shift up to 3 nm, broadening up to 5 nm, intensity loss up to 50 %
    over the run). ``noise`` is the σ (counts) of added Gaussian noise; ``baseline`` + ``slope``
    × (λ − 525 nm) is added to every spectrum. ``truth`` holds the exact parameters per
    (well, read): center_nm, fwhm_nm, height.
    """
    rng = np.random.default_rng(seed)
    x = cytation_grid() if wavelength_nm is None else np.asarray(wavelength_nm, float)
    wells = np.array(well_names(max(n_wells, 1))[:n_wells] if n_wells <= 96 else
                     [f"{chr(65 + i // 24)}{i % 24 + 1}" for i in range(n_wells)], dtype=object)
    t = np.arange(n_reads) * interval_min
    frac = t / max(t[-1], 1.0)
    c0, f0, h0 = rng.uniform(500, 520, n_wells), rng.uniform(20, 35, n_wells), rng.uniform(500, 5000, n_wells)
    dc, df, dh = rng.uniform(0, 3, n_wells), rng.uniform(0, 5, n_wells), rng.uniform(0, 0.5, n_wells)
    c = c0[:, None] + dc[:, None] * frac[None, :]
    f = f0[:, None] + df[:, None] * frac[None, :]
    h = h0[:, None] * (1 - dh[:, None] * frac[None, :])
    s = f / FWHM_PER_SIGMA
    y = h[..., None] * np.exp(-0.5 * ((x[None, None, :] - c[..., None]) / s[..., None]) ** 2)
    y = y + baseline + slope * (x - 525.0)
    if noise > 0:
        y = y + rng.normal(0.0, noise, y.shape)
    nw, nr, nx = y.shape
    tidy = pd.DataFrame({"well": np.repeat(wells, nr * nx), "read": np.tile(np.repeat(np.arange(1, nr + 1), nx), nw),
                         "time_min": np.tile(np.repeat(t, nx), nw), "wavelength_nm": np.tile(x, nw * nr),
                         "intensity": y.ravel()})
    truth = pd.DataFrame({"well": np.repeat(wells, nr), "read": np.tile(np.arange(1, nr + 1), nw),
                          "center_nm": c.ravel(), "fwhm_nm": f.ravel(), "height": h.ravel()})
    return tidy, truth


def gen5_text(tidy: pd.DataFrame, *, sep: str = ",", with_time: bool = True) -> str:
    """A Gen5-style export of a tidy table: a metadata header, then one "Read N:EM Spectrum" block per read."""
    lines = ["Software Version" + sep + "3.11.19", "", "Experiment File Path:" + sep + "qdlab synthetic",
             "Plate Number" + sep + "Plate 1", "Reader Type:" + sep + "Cytation5", "", "Procedure Details", "",
             "Read" + sep + "Fluorescence Spectrum", sep + "Excitation: 365 nm" + sep + "Emission Start: 400 nm",
             ""]
    wells = list(dict.fromkeys(tidy["well"]))
    for read, block in tidy.groupby("read", sort=True):
        wide = block.pivot(index="wavelength_nm", columns="well", values="intensity")[wells]
        lines.append(f"Read {read}:EM Spectrum")
        lines.append("")
        if with_time:
            tmin = float(block["time_min"].iloc[0])
            hh, rem = divmod(round(tmin * 60), 3600)
            lines.append(f"Time{sep}{hh}:{rem // 60:02d}:{rem % 60:02d}")
        lines.append(sep.join(["Wavelength", *wells]))
        for wl, row in zip(wide.index, wide.to_numpy()):
            lines.append(sep.join([f"{wl:g}", *(("OVRFLW" if not np.isfinite(v) else f"{v:.6g}") for v in row)]))
        lines.append("")
    return "\n".join(lines) + "\n"


def write_gen5(tidy: pd.DataFrame, path: str | Path, **kw) -> Path:
    """Write :func:`gen5_text` to ``path`` (CSV, or XLSX when the suffix is .xlsx)."""
    p = Path(path)
    if p.suffix.lower() != ".xlsx":
        from qdlab.store.files import write_text

        return write_text(p, gen5_text(tidy, sep="\t" if p.suffix.lower() in {".txt", ".tsv"} else ",", **kw))
    from openpyxl import Workbook

    from qdlab.store.files import atomic_path

    wb = Workbook()
    ws = wb.active
    for line in gen5_text(tidy, sep="\t", **kw).splitlines():
        cells = line.split("\t") if line else []
        ws.append([_num(c) for c in cells])
    with atomic_path(p) as tmp:
        wb.save(tmp)
    return p


def _num(cell: str) -> object:
    try:
        return float(cell)
    except ValueError:
        return cell


SYNTHESIS_FEATURES = ["OAc", "OLAm", "PbBr2", "Cs", "ligand_ratio", "OctAc", "OctAm", "toluene", "chloroform"]


def synthetic_synthesis_table(n: int = 200, *, noise_nm: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """A synthesis table (volumes µL per well, ligand_ratio = ligand:PbBr2 fraction) with known targets.

    ``peak_nm`` = 505 + 0.06·toluene − 0.06·chloroform + 6·OLAm (+ noise): it depends on toluene,
    chloroform and OLAm only (chloroform −, toluene +, as published); ``intensity`` =
    1000·(1 − 8·ligand_ratio) + 20·PbBr2 − 50·OLAm depends on ligand_ratio, PbBr2 and OLAm only.
    The other features are random and irrelevant.
    """
    rng = np.random.default_rng(seed)
    tol = rng.choice([0.0, 180.0], n) * rng.uniform(0.5, 1.0, n)
    chl = np.where(tol > 0, 0.0, rng.uniform(90.0, 180.0, n))
    df = pd.DataFrame({
        "OAc": rng.uniform(0.2, 1.0, n), "OLAm": rng.uniform(0.05, 1.0, n), "PbBr2": rng.uniform(15.0, 20.0, n),
        "Cs": rng.uniform(15.0, 25.0, n), "ligand_ratio": rng.choice([1 / 30, 1 / 15], n),
        "OctAc": rng.uniform(0.0, 1.0, n), "OctAm": rng.uniform(0.0, 1.0, n), "toluene": tol, "chloroform": chl,
    })
    df["peak_nm"] = 505 + 0.06 * df.toluene - 0.06 * df.chloroform + 6.0 * df.OLAm + rng.normal(0, noise_nm, n)
    df["intensity"] = (1000 * (1 - 8 * df.ligand_ratio) + 20 * df.PbBr2 - 50 * df.OLAm
                       + rng.normal(0, 5, n))
    return df
