"""Reading a synthesis table (CSV or Parquet) with one-line refusals for empty, binary or
malformed files instead of pandas tracebacks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qdlab.errors import QdlabError


def read_table(path: str | Path, *, min_rows: int = 1) -> pd.DataFrame:
    """The table at ``path`` (Parquet by suffix, else CSV) with at least ``min_rows`` rows and one column."""
    p = Path(path)
    if not p.is_file():
        raise QdlabError(f"no such file: {p}")
    if p.stat().st_size == 0:
        raise QdlabError(f"{p} is empty; give a CSV or Parquet table (features + target)")
    try:
        if p.suffix.lower() == ".parquet":
            df = pd.read_parquet(p)
        else:
            with open(p, "rb") as fh:
                if b"\0" in fh.read(4096):
                    raise QdlabError(f"{p} is binary, not a CSV table")
            df = pd.read_csv(p)
    except QdlabError:
        raise
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many types for a bad file
        raise QdlabError(f"cannot read {p} as a table ({type(exc).__name__}: {' '.join(str(exc).split())[:100]})") \
            from None
    if df.shape[1] == 0 or len(df) < min_rows:
        raise QdlabError(f"{p} has {len(df)} rows and {df.shape[1]} columns; need at least {min_rows} rows")
    return df
