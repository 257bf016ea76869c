"""Refusals for data-set commands, before anything is written: an existing data set is never
replaced silently, and an empty, binary or unreadable source never becomes an empty data set."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from qdlab.errors import QdlabError

_TEXT = {".xyz", ".extxyz", ".cif", ".vasp", ".pdb", ".json", ""}


def dataset_exists(out: str | os.PathLike) -> bool:
    """Whether the data set ``out`` exists (a database URL is assumed to)."""
    text = str(out)
    return "://" in text or (Path(text).exists() and Path(text).stat().st_size > 0)


def check_output(out: str | os.PathLike, *, append: bool, overwrite: bool) -> None:
    """Refuse to replace an existing data set unless ``--overwrite`` (or ``--append``) says so."""
    if append and overwrite:
        raise QdlabError("--append and --overwrite contradict each other; choose one")
    if "://" in str(out):
        return
    if not append and not overwrite and dataset_exists(out):
        raise QdlabError(f"{out} already exists; pass --append to add to it or --overwrite to replace it")


def check_sources(sources: Sequence[str | os.PathLike]) -> None:
    """Every source exists, is not empty or binary where text is expected, and holds ≥ 1 frame."""
    from qdlab.store.db import is_database, read_frames

    if not sources:
        raise QdlabError("give at least one source file")
    for src in sources:
        text = str(src)
        if is_database(text) and "://" in text:
            continue
        p = Path(text)
        if not p.is_file():
            raise QdlabError(f"source {p} does not exist")
        if p.stat().st_size == 0:
            raise QdlabError(f"source {p} is empty; give a trajectory, structure or data set file")
        if p.suffix.lower() in _TEXT:
            with open(p, "rb") as fh:
                if b"\0" in fh.read(4096):
                    raise QdlabError(f"source {p} is binary, not a {p.suffix or 'text'} file")
        try:
            n = len(read_frames(text))
        except QdlabError:
            raise
        except Exception as exc:  # noqa: BLE001 - any reader failure is the same refusal
            raise QdlabError(f"cannot read source {p} ({' '.join(str(exc).split())[:100]}); "
                             "give a file ASE reads") from None
        if n == 0:
            raise QdlabError(f"source {p} holds no frames")
