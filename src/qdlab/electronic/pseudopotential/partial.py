"""Checkpoint of a gap-states search in progress (``<states>.partial.npz``).

A search is a sequence of solver calls around moving centres (:func:`.engine.gap_states`); one
call on a 0.5 Bohr grid runs for hours. The checkpoint holds the search's state at the start of
the current call (call number, centre, covered interval, the converged pairs found so far) and,
for block Davidson, the solver's own state at its last small-space iteration (V, H·V, the projected
matrices, counters: 4 blocks of vectors at most), written atomically at most every
``checkpoint_s`` seconds. A rerun with the same inputs (same key) continues from it and performs
the same arithmetic as an uninterrupted run, so the states are the same to the last bit on a
deterministic H·X. A checkpoint of other inputs or one that cannot be read is ignored (the search
starts over and replaces it).
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qdlab.store.files import write_npz

_INNER = ("V", "HV", "S", "K", "it", "n_apply", "stalled")


def partial_path(checkpoint: str | Path) -> Path:
    """The in-progress checkpoint beside a states checkpoint ``x.states.npz`` → ``x.states.partial.npz``."""
    p = Path(checkpoint)
    return p.with_name(p.name[:-4] + ".partial.npz" if p.name.endswith(".npz") else p.name + ".partial.npz")


@dataclass
class SearchState:
    """Where a gap-states search stands at the start of call ``attempt`` (Hartree, vectors (dim, k))."""

    attempt: int = 0
    centre: float = 0.0
    covered: list[float] = field(default_factory=list)
    found_e: list[float] = field(default_factory=list)
    found_v: list[np.ndarray] = field(default_factory=list)
    inner: dict | None = None  # the solver's snapshot within call ``attempt``
    elapsed_s: float = 0.0     # wall seconds of the search up to this checkpoint, over all earlier runs


def load_partial(path: Path, key: str, dim: int) -> SearchState | None:
    """The search state saved for inputs ``key`` (None: absent, other inputs or unreadable)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}  # reading every member checks each CRC
        if str(d["key"]) != key or d["found_v"].shape[0] != dim:
            return None
        inner = {k: d[f"inner_{k}"] for k in _INNER} if bool(d["has_inner"]) else None
        return SearchState(int(d["attempt"]), float(d["centre"]), d["covered"].tolist(), d["found_e"].tolist(),
                           list(d["found_v"].T), inner, float(d["elapsed_s"]) if "elapsed_s" in d else 0.0)
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile):
        return None


class PartialWriter:
    """Writes the search state at each call's start and the solver's snapshots every ``interval_s``."""

    def __init__(self, path: Path, key: str, dim: int, interval_s: float, elapsed_before_s: float = 0.0):
        self.path, self.key, self.dim, self.interval_s = path, key, dim, interval_s
        self.state = SearchState()
        self.last = self.started = time.monotonic()
        self.elapsed_before_s = elapsed_before_s   # from the checkpoint this run resumed

    def elapsed_s(self) -> float:
        """Wall seconds of the search so far: earlier runs (to their last checkpoint) + this one."""
        return self.elapsed_before_s + time.monotonic() - self.started

    def start_call(self, state: SearchState, write: bool = True) -> None:
        """The search is at the start of ``state.attempt``; written unless it resumes a saved snapshot."""
        self.state = state
        if write:
            self._write(None)

    def snapshot(self, inner: dict) -> None:
        """The solver's state (views into its buffers): written when ``interval_s`` has passed."""
        if time.monotonic() - self.last >= self.interval_s:
            self._write(inner)

    def _write(self, inner: dict | None) -> None:
        st = self.state
        vecs = np.array(st.found_v).T if st.found_v else np.empty((self.dim, 0), complex)
        arrays = {"key": np.asarray(self.key), "attempt": st.attempt, "centre": st.centre,
                  "covered": np.asarray(st.covered, float), "found_e": np.asarray(st.found_e, float),
                  "found_v": vecs, "has_inner": inner is not None, "elapsed_s": self.elapsed_s()}
        if inner is not None:
            arrays.update({f"inner_{k}": inner[k] for k in _INNER})
        write_npz(self.path, **arrays)
        self.last = time.monotonic()

    def done(self) -> None:
        """The search finished and its states are saved: the in-progress checkpoint goes."""
        self.path.unlink(missing_ok=True)
