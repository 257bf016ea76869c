"""Plate-reader import: BioTek Gen5 / Cytation exports (CSV, TSV, XLSX) and a tidy long format.

A Gen5 export holds metadata lines and then one block per read (SCIENCE.md §8)::

    Read 1:EM Spectrum                 title: "Read N:EM Spectrum" (N = read number)
    Time<sep>0:00:00                   optional: read time h:mm:ss (else (N−1) × interval)
    Wavelength<sep>A1<sep>A2<sep>...   header: a wavelength column, one column per well
    400<sep>123<sep>...                one row per emission wavelength (nm)
    <blank line, next title or end>

``OVRFLW`` (saturated) and ``?????`` cells become NaN (the fit gives them zero weight). A block
that is ragged (a row with fewer or more cells than its header), empty (no data rows), has a
non-numeric cell, repeats a read number, or has a wavelength grid different from the first
block raises :class:`PlateReaderError` naming the line (CSV) or row (XLSX).

The tidy long format has one row per (well, read, wavelength): ``well, read, time_min,
wavelength_nm, intensity`` (CSV or Parquet); :func:`join_wellmap` adds the well-map columns.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd

from qdlab.errors import QdlabError

TIDY_COLUMNS = ["well", "read", "time_min", "wavelength_nm", "intensity"]
_TITLE = re.compile(r"^\s*Read\s+(\d+)\s*:\s*EM\s+Spectrum\b", re.IGNORECASE)
_WELL = re.compile(r"^[A-P](?:[1-9]|1\d|2[0-4])$")
_BAD_VALUES = {"OVRFLW", "?????", "OVRFLOW", "*"}


class PlateReaderError(QdlabError):
    """A plate-reader export or tidy table that cannot be read."""


def _time_minutes(value: object, where: str) -> float:
    """Read time (h:mm:ss text, Excel time/timedelta/datetime or fraction of a day) in minutes."""
    if isinstance(value, dt.timedelta):
        return value.total_seconds() / 60
    if isinstance(value, (dt.datetime, dt.time)):
        return value.hour * 60 + value.minute + value.second / 60
    if isinstance(value, (int, float)):
        return float(value) * 1440.0  # Excel stores times as fractions of a day
    text = str(value).strip()
    m = re.fullmatch(r"(\d+):(\d{1,2}):(\d{1,2}(?:\.\d*)?)", text)
    if not m:
        raise PlateReaderError(f"{where}: cannot read the time {text!r} (expected h:mm:ss)")
    return int(m[1]) * 60 + int(m[2]) + float(m[3]) / 60


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _rows_text(path: Path) -> tuple[list[list[object]], str]:
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    lines = text.splitlines()
    sample = "\n".join(lines[:200])
    delim = "\t" if sample.count("\t") > sample.count(",") else ","
    return [list(r) for r in csv.reader(lines, delimiter=delim)], "line"


def _rows_xlsx(path: Path, sheet: str | None) -> tuple[list[list[object]], str]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a bad file
        raise PlateReaderError(f"{path}: not a readable XLSX workbook ({exc})") from None
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise PlateReaderError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(wb.sheetnames)})")
        ws = wb[sheet] if sheet else wb.worksheets[0]
        rows = [list(r) for r in ws.iter_rows(values_only=True)]
    finally:
        wb.close()
    return rows, "row"


def _trim(row: list[object]) -> list[object]:
    """Cells without leading and trailing empty ones (Gen5 XLSX tables may start in column B)."""
    out = list(row)
    while out and _cell(out[-1]) == "":
        out.pop()
    k = 0
    while k < len(out) and _cell(out[k]) == "":
        k += 1
    return out[k:]


class _Cursor:
    """Position in the rows of an export, with the wording of its messages (``source unit N``)."""

    def __init__(self, rows: list[list[object]], source: str, unit: str):
        self.rows, self.source, self.unit, self.i = rows, source, unit, 0

    def at(self, i: int | None = None) -> str:
        return f"{self.source} {self.unit} {(self.i if i is None else i) + 1}"

    def row(self) -> list[object]:
        return _trim(self.rows[self.i]) if self.i < len(self.rows) else []

    def skip_blank(self) -> None:
        while self.i < len(self.rows) and not _trim(self.rows[self.i]):
            self.i += 1


def _block_time(cur: _Cursor) -> float | None:
    """The block's ``Time`` line (minutes), if it has one; the cursor ends on the header."""
    cur.skip_blank()
    r = cur.row()
    if not (r and _cell(r[0]).lower() in {"time", "read time", "start time"}):
        return None
    if len(r) < 2:
        raise PlateReaderError(f"{cur.at()}: 'Time' line without a value")
    t = _time_minutes(r[1], cur.at())
    cur.i += 1
    cur.skip_blank()
    return t


def _block_header(cur: _Cursor, read: int, where: str) -> list[str]:
    """``Wavelength, A1, A2, ...`` of a block, checked (well names, no duplicates)."""
    if cur.i >= len(cur.rows) or _TITLE.match(_cell(cur.row()[0])):
        raise PlateReaderError(f"{where}: block 'Read {read}:EM Spectrum' is empty (no header, no data)")
    header = [_cell(c) for c in cur.row()]
    if not header or re.sub(r"[\s\[\]()]|nm", "", header[0].lower()) != "wavelength":
        raise PlateReaderError(f"{cur.at()}: expected a header 'Wavelength, A1, A2, ...' "
                               f"after 'Read {read}:EM Spectrum', found {header[:3]}")
    wells = header[1:]
    if not wells:
        raise PlateReaderError(f"{cur.at()}: header has no well columns")
    for w in wells:
        if not _WELL.match(w):
            raise PlateReaderError(f"{cur.at()}: {w!r} is not a well name (A1 … P24)")
    if len(set(wells)) != len(wells):
        dup = sorted({w for w in wells if wells.count(w) > 1})
        raise PlateReaderError(f"{cur.at()}: well(s) {', '.join(dup)} appear twice in the header")
    return header


def _number(v: object, j: int, header: list[str], cur: _Cursor, read: int) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    s = _cell(v)
    if j > 0 and s.upper() in _BAD_VALUES:
        return np.nan
    try:
        return float(s)
    except ValueError:
        col = "wavelength" if j == 0 else f"well {header[j]}"
        raise PlateReaderError(f"{cur.at()}: {col} value {s!r} is not a number "
                               f"(block 'Read {read}:EM Spectrum')") from None


def _block_data(cur: _Cursor, header: list[str], read: int, where: str) -> np.ndarray:
    """The block's rows (wavelength, one intensity per well) up to the next block or a blank line."""
    data: list[list[float]] = []
    while cur.i < len(cur.rows):
        r = cur.row()
        if not r or _TITLE.match(_cell(r[0])):
            break
        if len(r) != len(header):
            raise PlateReaderError(f"{cur.at()}: ragged row in block 'Read {read}:EM Spectrum': "
                                   f"{len(r)} cells, header has {len(header)}")
        data.append([_number(v, j, header, cur, read) for j, v in enumerate(r)])
        cur.i += 1
    if not data:
        raise PlateReaderError(f"{where}: block 'Read {read}:EM Spectrum' has a header but no data rows")
    return np.asarray(data)


def parse_gen5_rows(rows: list[list[object]], *, source: str = "export", unit: str = "line",
                    interval_min: float = 10.0) -> pd.DataFrame:
    """Parse the rows of a Gen5 export (cells as read) into the tidy long format.

    ``unit`` names the row unit in messages ("line" for CSV, "row" for XLSX); numbering is 1-based.
    Reads without a ``Time`` line get time (N − 1) × ``interval_min`` (min).
    """
    frames: list[pd.DataFrame] = []
    seen: dict[int, int] = {}
    grid: np.ndarray | None = None
    grid_line = 0
    cur = _Cursor(rows, source, unit)
    while cur.i < len(rows):
        row = cur.row()
        m = _TITLE.match(_cell(row[0])) if row else None
        cur.i += 1
        if not m:
            continue
        title_line, read = cur.i, int(m[1])
        where = f"{source} {unit} {title_line}"
        if read in seen:
            raise PlateReaderError(f"{where}: read {read} repeats the block at {unit} {seen[read]}")
        seen[read] = title_line
        time_min = _block_time(cur)
        header = _block_header(cur, read, where)
        hline = cur.i + 1
        cur.i += 1
        arr = _block_data(cur, header, read, where)
        wl = arr[:, 0]
        if np.any(np.diff(wl) <= 0):
            raise PlateReaderError(f"{source} {unit} {hline}: wavelengths of read {read} are not strictly increasing")
        if grid is None:
            grid, grid_line = wl, hline
        elif grid.shape != wl.shape or not np.allclose(grid, wl):
            raise PlateReaderError(f"{source} {unit} {hline}: read {read} has a wavelength grid "
                                   f"({wl[0]:g}–{wl[-1]:g} nm, {wl.size} points) different from the block at "
                                   f"{unit} {grid_line} ({grid[0]:g}–{grid[-1]:g} nm, {grid.size} points)")
        t = (read - 1) * interval_min if time_min is None else time_min
        wells = header[1:]
        frames.append(pd.DataFrame({"well": np.tile(np.array(wells, dtype=object), wl.size),
                                    "read": read, "time_min": t,
                                    "wavelength_nm": np.repeat(wl, len(wells)), "intensity": arr[:, 1:].ravel()}))
    if not frames:
        raise PlateReaderError(f"{source}: no 'Read N:EM Spectrum' block found")
    return sort_tidy(pd.concat(frames, ignore_index=True))


def sort_tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Sort a tidy table by well (A1, A2, …, B1 in plate order), read and wavelength."""
    key = df["well"].str.extract(r"^([A-P])(\d+)$")
    order = pd.DataFrame({"r": key[0], "c": key[1].astype(float), "read": df["read"], "wl": df["wavelength_nm"]})
    idx = order.sort_values(["r", "c", "read", "wl"], kind="stable").index
    return df.loc[idx].reset_index(drop=True)


def read_gen5(path: str | Path, *, interval_min: float = 10.0, sheet: str | None = None) -> pd.DataFrame:
    """Read a Gen5 / Cytation export (.csv, .txt/.tsv or .xlsx) into the tidy long format."""
    p = Path(path)
    if not p.exists():
        raise PlateReaderError(f"no such file: {p}")
    rows, unit = _rows_xlsx(p, sheet) if p.suffix.lower() in {".xlsx", ".xlsm"} else _rows_text(p)
    return parse_gen5_rows(rows, source=p.name, unit=unit, interval_min=interval_min)


def read_tidy(path: str | Path) -> pd.DataFrame:
    """Read a tidy long table (CSV or Parquet) with columns well, read, time_min, wavelength_nm, intensity."""
    p = Path(path)
    if not p.exists():
        raise PlateReaderError(f"no such file: {p}")
    df = pd.read_parquet(p) if p.suffix.lower() in {".parquet", ".pq"} else pd.read_csv(p)
    missing = [c for c in TIDY_COLUMNS if c not in df.columns]
    if missing:
        raise PlateReaderError(f"{p.name}: missing column(s) {', '.join(missing)} (tidy format: {', '.join(TIDY_COLUMNS)})")
    for c in ("time_min", "wavelength_nm", "intensity"):
        if not pd.api.types.is_numeric_dtype(df[c]):
            bad = pd.to_numeric(df[c], errors="coerce").isna() & df[c].notna()
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise PlateReaderError(f"{p.name} line {first + 2}: column {c} value {df[c].iloc[first]!r} is not a number")
    if df.duplicated(["well", "read", "wavelength_nm"]).any():
        first = int(np.flatnonzero(df.duplicated(["well", "read", "wavelength_nm"]).to_numpy())[0])
        raise PlateReaderError(f"{p.name} line {first + 2}: duplicate (well, read, wavelength_nm)")
    return df


def read_spectra(path: str | Path, *, interval_min: float = 10.0) -> pd.DataFrame:
    """Read either format: a tidy table if its first line names the tidy columns, else a Gen5 export."""
    p = Path(path)
    if p.suffix.lower() in {".parquet", ".pq"}:
        return read_tidy(p)
    if p.suffix.lower() in {".csv", ".txt", ".tsv"} and p.exists():
        with p.open(encoding="utf-8-sig", errors="replace") as fh:
            first = fh.readline()
        if all(c in first for c in TIDY_COLUMNS):
            return read_tidy(p)
    return read_gen5(p, interval_min=interval_min)


def join_wellmap(tidy: pd.DataFrame, wellmap: pd.DataFrame) -> pd.DataFrame:
    """Add the well-map columns (ligand ratio, antisolvent, volumes, …) to every tidy row, by well.

    Wells measured but absent from the map keep NaN design columns; the map's own ``row``/``col``
    helpers are dropped.
    """
    if "well" not in wellmap.columns:
        raise PlateReaderError("well map has no 'well' column")
    cols = [c for c in wellmap.columns if c not in tidy.columns or c == "well"]
    return tidy.merge(wellmap[cols], on="well", how="left")


def write_tidy(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a table atomically as Parquet (.parquet) or CSV (anything else)."""
    from qdlab.store.files import atomic_path

    p = Path(path)
    with atomic_path(p) as tmp:
        if p.suffix.lower() in {".parquet", ".pq"}:
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
    return p
