"""Gen5 / Cytation import (CSV, TSV, XLSX), tidy format, precise errors, well-map join."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from qdlab.experiment.platereader import (PlateReaderError, join_wellmap, parse_gen5_rows, read_gen5, read_spectra,
                                          read_tidy, write_tidy)
from qdlab.experiment.synthetic import gen5_text, synthetic_run, write_gen5


@pytest.fixture()
def run():
    tidy, _ = synthetic_run(5, 3, noise=3.0, seed=1, interval_min=10.0)
    return tidy


def _same(a, b):
    cols = ["well", "read", "time_min", "wavelength_nm", "intensity"]
    a = a[cols].reset_index(drop=True)
    b = b[cols].reset_index(drop=True)
    assert list(a.well) == list(b.well) and (a.read.to_numpy() == b.read.to_numpy()).all()
    np.testing.assert_allclose(a.time_min, b.time_min)
    np.testing.assert_allclose(a.wavelength_nm, b.wavelength_nm)
    np.testing.assert_allclose(a.intensity, b.intensity, rtol=1e-5)


@pytest.mark.parametrize("suffix", [".csv", ".txt", ".xlsx"])
def test_roundtrip(tmp_path, run, suffix):
    path = write_gen5(run, tmp_path / f"export{suffix}")
    got = read_gen5(path)
    assert got["well"].nunique() == 5 and got["read"].nunique() == 3 and got["wavelength_nm"].nunique() == 126
    _same(got, run)


def test_tables_starting_in_column_b(run):
    rows = [([""] + ln.split(",")) if ln and not ln.startswith("Read ") else ln.split(",")
            for ln in gen5_text(run).splitlines()]
    _same(parse_gen5_rows(rows), run)


def test_read_times_and_interval_fallback(tmp_path, run):
    text = gen5_text(run).replace("Time,0:10:00", "Time,0:12:30")
    got = parse_gen5_rows([r.split(",") for r in text.splitlines()], source="x")
    assert sorted(got.time_min.unique()) == [0.0, 12.5, 20.0]
    no_time = gen5_text(run, with_time=False)
    got = parse_gen5_rows([r.split(",") for r in no_time.splitlines()], interval_min=7.0)
    assert sorted(got.time_min.unique()) == [0.0, 7.0, 14.0]


def _lines(run):
    return gen5_text(run).splitlines()


def _line_of(lines, prefix, nth=0):
    hits = [i for i, ln in enumerate(lines) if ln.startswith(prefix)]
    return hits[nth]


def _parse(lines):
    return parse_gen5_rows([ln.split(",") for ln in lines], source="plate.csv")


def test_ragged_row_names_line(run):
    lines = _lines(run)
    k = _line_of(lines, "Wavelength", 1) + 5
    lines[k] = ",".join(lines[k].split(",")[:-2])
    with pytest.raises(PlateReaderError, match=rf"plate.csv line {k + 1}: ragged row .*Read 2"):
        _parse(lines)


def test_malformed_value_names_line_and_well(run):
    lines = _lines(run)
    k = _line_of(lines, "Wavelength", 2) + 3
    cells = lines[k].split(",")
    cells[2] = "12x4"
    lines[k] = ",".join(cells)
    with pytest.raises(PlateReaderError, match=rf"line {k + 1}: well B1 value '12x4' is not a number"):
        _parse(lines)


def test_empty_block_names_line(run):
    lines = _lines(run)
    start = _line_of(lines, "Read 2:EM Spectrum")
    end = _line_of(lines, "Read 3:EM Spectrum")
    with pytest.raises(PlateReaderError, match=rf"line {start + 1}: block 'Read 2:EM Spectrum' is empty"):
        _parse(lines[:start + 1] + [""] + lines[end:])
    head = _line_of(lines, "Wavelength", 1)
    with pytest.raises(PlateReaderError, match=rf"line {start + 1}: .*header but no data rows"):
        _parse(lines[:head + 1] + [""] + lines[end:])


def test_other_malformed_blocks(run):
    lines = _lines(run)
    r3 = _line_of(lines, "Read 3:EM Spectrum")
    dup = lines.copy()
    dup[r3] = "Read 2:EM Spectrum"
    with pytest.raises(PlateReaderError, match="read 2 repeats the block at line"):
        _parse(dup)
    grid = lines.copy()
    last = _line_of(lines, "Wavelength", 2) + 1
    del grid[last]  # read 3 lacks 400 nm
    with pytest.raises(PlateReaderError, match=r"line \d+: read 3 has a wavelength grid .*different"):
        _parse(grid)
    bad = lines.copy()
    h = _line_of(lines, "Wavelength", 0)
    bad[h] = bad[h].replace("A1", "Z9")
    with pytest.raises(PlateReaderError, match=rf"line {h + 1}: 'Z9' is not a well name"):
        _parse(bad)
    with pytest.raises(PlateReaderError, match="no 'Read N:EM Spectrum' block"):
        _parse(lines[:5])


def test_xlsx_errors_name_the_row(tmp_path, run):
    from openpyxl import load_workbook

    path = write_gen5(run, tmp_path / "e.xlsx")
    wb = load_workbook(path)
    ws = wb.active
    heads = [c.row for c in ws["A"] if c.value == "Wavelength"]
    times = [c.row for c in ws["A"] if c.value == "Time"]
    ws.cell(row=times[1], column=2, value=dt.time(0, 12, 30))   # an Excel time cell
    wb.save(path)
    assert sorted(read_gen5(path).time_min.unique()) == [0.0, 12.5, 20.0]
    ws.cell(row=heads[0] + 2, column=3, value="n/a")
    wb.save(path)
    with pytest.raises(PlateReaderError, match=rf"e.xlsx row {heads[0] + 2}: well B1 value 'n/a'"):
        read_gen5(path)


def test_overflow_is_nan(run):
    lines = _lines(run)
    k = _line_of(lines, "Wavelength", 0) + 10
    cells = lines[k].split(",")
    cells[1] = "OVRFLW"
    lines[k] = ",".join(cells)
    got = _parse(lines)
    assert got["intensity"].isna().sum() == 1


def test_tidy_io_and_join(tmp_path, run):
    for name in ("t.csv", "t.parquet"):
        p = write_tidy(run, tmp_path / name)
        _same(read_spectra(p), run)
    bad = run.drop(columns="time_min")
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(PlateReaderError, match="missing column"):
        read_tidy(tmp_path / "bad.csv")
    wm = pd.DataFrame({"well": ["A1", "B1"], "antisolvent": ["toluene", "chloroform"], "amine_per_acid": [0.1, 2.0]})
    j = join_wellmap(run, wm)
    assert len(j) == len(run)
    assert (j.loc[j.well == "B1", "antisolvent"] == "chloroform").all()
    assert j.loc[j.well == "C1", "antisolvent"].isna().all()
