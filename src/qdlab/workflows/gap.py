"""Gap trajectories: the band gap of every (strided) frame of a trajectory, plan → evaluate → assemble.

- :func:`plan_frames` reads the trajectory once (frame count, times, the checkpoint key) and lists
  the frames as chunks of consecutive indices (the units any executor can run);
- :func:`evaluate_chunk` computes HOMO/LUMO/gap of one chunk (reads only those frames);
- :func:`assemble` turns the records into a :class:`~qdlab.analysis.exciton_phonon.GapTrace`.
:func:`gap_trajectory` runs the three over worker processes with a JSON-lines checkpoint
(:class:`GapCheckpoint`, one line per finished frame, fsync'd) and resumes from it. With
``linear=True`` the gap is the Hellmann–Feynman linear model around the first planned frame
(microseconds per frame; exact to first order in the displacements). Energies eV, times fs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from qdlab.analysis.exciton_phonon import GapTrace
from qdlab.errors import QdlabError


class GapSettings(BaseModel):
    """One settings model for the gap workflow (CLI, Python API, campaign step)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    method: str = Field("tight-binding", description="band-edge engine (tight-binding; pseudopotential at merge)")
    params: str | None = Field(None, description="TB parameter set name or file; None: the set for the halide present")
    eta: float | None = Field(None, description="Harrison exponent override")
    n_states: int = Field(2, ge=1, description="states each side of the gap")
    soc: bool = True
    skip: int = Field(0, ge=0, description="frames discarded at the start")
    stride: int = Field(1, ge=1, description="keep every stride-th frame")
    dt_fs: float | None = Field(None, gt=0, description="frame spacing when frames carry no info['time_fs']")
    linear: bool = Field(False, description="Hellmann–Feynman linear model around the first frame")
    chunk: int = Field(8, ge=1, description="frames per unit of work")


def band_edge_engine(settings: GapSettings):
    """The engine named by the settings (the single dispatch point for band-edge methods)."""
    if settings.method == "tight-binding":
        from qdlab.electronic.tb.cluster import TightBinding

        return TightBinding(settings.params, eta=settings.eta, soc=settings.soc)
    raise QdlabError(f"unknown band-edge method {settings.method!r} (available: tight-binding)")


@dataclass(frozen=True)
class GapPlan:
    """The frames to compute: indices into the trajectory, their times (fs), chunks, identity key."""

    path: str
    indices: tuple[int, ...]
    times_fs: tuple[float, ...]
    chunks: tuple[tuple[int, ...], ...]
    key: str
    settings: GapSettings


def _read(path: str, index):
    from ase.io import read

    try:
        return read(path, index=index)
    except Exception as exc:  # ase raises many types for unreadable files
        raise QdlabError(f"cannot read {path}: {' '.join(str(exc).split())}") from None


def plan_frames(path: str | os.PathLike, settings: GapSettings) -> GapPlan:
    """Frames ``skip::stride`` of the trajectory, chunked; errors if none remain or times are unknown."""
    frames = _read(str(path), ":")
    n = len(frames)
    idx = list(range(settings.skip, n, settings.stride))
    if not idx:
        raise QdlabError(f"{path}: {n} frame(s), none left after skip={settings.skip}, stride={settings.stride}")
    first = frames[idx[0]]
    for k in idx:
        if not np.array_equal(frames[k].numbers, first.numbers):
            raise QdlabError(f"{path}: frame {k} has different atoms than frame {idx[0]}")
    if all("time_fs" in frames[k].info for k in idx):
        times = [float(frames[k].info["time_fs"]) for k in idx]
    elif settings.dt_fs is not None:
        times = [k * settings.dt_fs for k in idx]
    elif len(idx) == 1:
        times = [0.0]
    else:
        raise QdlabError(f"{path}: frames carry no info['time_fs']; give the frame spacing (dt_fs)")
    h = hashlib.sha256(settings.model_dump_json(exclude={"chunk"}).encode())
    h.update(np.ascontiguousarray(first.numbers).tobytes())
    h.update(np.round(np.concatenate([frames[k].positions.ravel() for k in idx]), 8).tobytes())
    chunks = tuple(tuple(idx[i:i + settings.chunk]) for i in range(0, len(idx), settings.chunk))
    return GapPlan(str(path), tuple(idx), tuple(times), chunks, h.hexdigest()[:24], settings)


def evaluate_chunk(path: str, indices: tuple[int, ...], settings: GapSettings, model=None) -> list[dict]:
    """HOMO, LUMO, gap (eV) of the listed frames: ``[{"index", "homo_eV", "lumo_eV", "gap_eV"}]``."""
    lo, hi = min(indices), max(indices) + 1
    frames = _read(path, f"{lo}:{hi}")
    engine = None if model is not None else band_edge_engine(settings)
    out = []
    for k in indices:
        atoms = frames[k - lo]
        if model is not None:
            g = model.gap(atoms.positions)
            out.append({"index": k, "homo_eV": float("nan"), "lumo_eV": float("nan"), "gap_eV": g})
            continue
        st = engine.states(atoms, settings.n_states)
        out.append({"index": k, "homo_eV": st.homo_eV, "lumo_eV": st.lumo_eV, "gap_eV": st.gap_eV})
    return out


def assemble(plan: GapPlan, records: dict[int, dict]) -> GapTrace:
    """Records (by frame index) → the gap trace, in plan order; every planned frame must be present."""
    missing = [k for k in plan.indices if k not in records]
    if missing:
        raise QdlabError(f"gap records missing for {len(missing)} frame(s), first {missing[0]}")
    col = {c: np.array([records[k][c] for k in plan.indices]) for c in ("gap_eV", "homo_eV", "lumo_eV")}
    return GapTrace(np.array(plan.times_fs), col["gap_eV"], col["homo_eV"], col["lumo_eV"],
                    {"source": plan.path, "frames": list(plan.indices), "key": plan.key,
                     "settings": plan.settings.model_dump()})


class GapCheckpoint:
    """Append-only JSON lines: a header with the plan key, then one record per finished frame."""

    def __init__(self, path: str | os.PathLike, key: str):
        self.path = Path(path)
        self.key = key
        if self.path.exists() and self.path.stat().st_size:
            head = self.path.read_text().split("\n", 1)[0]
            try:
                ok = json.loads(head).get("key") == key
            except json.JSONDecodeError:
                ok = False
            if not ok:
                raise QdlabError(f"checkpoint {self.path} belongs to another trajectory/settings; delete it to start over")
            self._cut_torn_tail()
        else:
            from qdlab.store.files import write_text

            write_text(self.path, json.dumps({"key": key}) + "\n")  # atomic: a kill never leaves a torn header

    def _cut_torn_tail(self) -> None:
        """Drop a last line a kill cut short (no newline): appending after it would glue the next
        record onto the fragment and lose both."""
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)
                fh.flush()
                os.fsync(fh.fileno())

    def load(self) -> dict[int, dict]:
        out = {}
        for line in self.path.read_text().splitlines()[1:]:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line torn by a kill
                continue
            out[int(rec["index"])] = rec
        return out

    def append(self, records: list[dict]) -> None:
        with open(self.path, "a") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in records))
            fh.flush()
            os.fsync(fh.fileno())


def linear_model(plan: GapPlan):
    """The Hellmann–Feynman linear gap model around the first planned frame."""
    from qdlab.electronic.tb.coupling import LinearGapModel

    atoms = _read(plan.path, plan.indices[0])
    engine = band_edge_engine(plan.settings)
    return LinearGapModel.from_solution(atoms, engine.solve(atoms, plan.settings.n_states))


def gap_trajectory(path: str | os.PathLike, settings: GapSettings | None = None, *,
                   checkpoint: str | os.PathLike | None = None, workers: int = 1,
                   progress: Callable[[int, int], None] | None = None) -> GapTrace:
    """Gap per frame of a trajectory (extxyz/traj), checkpointed and resumable, over ``workers`` processes."""
    settings = settings or GapSettings()
    plan = plan_frames(path, settings)
    ck = GapCheckpoint(checkpoint, plan.key) if checkpoint else None
    done = ck.load() if ck else {}
    todo = [c for c in plan.chunks if any(k not in done for k in c)]
    model = linear_model(plan) if settings.linear else None
    if progress:
        progress(len(done), len(plan.indices))

    def record(recs: list[dict]) -> None:
        done.update({r["index"]: r for r in recs})
        if ck:
            ck.append(recs)
        if progress:
            progress(len(done), len(plan.indices))

    try:
        _run_chunks(plan, todo, settings, model, workers, record)
    except BaseException:
        if ck and not ck.load():  # nothing finished (e.g. bad input): leave no file behind
            ck.path.unlink(missing_ok=True)
        raise
    return assemble(plan, done)


def _run_chunks(plan: GapPlan, todo, settings: GapSettings, model, workers: int, record) -> None:
    if workers > 1 and len(todo) > 1 and model is None:
        from concurrent.futures import as_completed

        from qdlab.workflows.pool import worker_pool

        with worker_pool(workers) as pool:  # Ctrl-C: workers killed at once, one line
            futs = [pool.submit(evaluate_chunk, plan.path, c, settings) for c in todo]
            for fut in as_completed(futs):
                record(fut.result())
    else:
        for c in todo:
            record(evaluate_chunk(plan.path, c, settings, model))


def save_gap_trace(trace: GapTrace, path: str | os.PathLike) -> Path:
    """CSV ``time_fs,gap_eV,homo_eV,lumo_eV`` (atomic), readable by :func:`read_gap_trace`."""
    from qdlab.store.files import write_text

    return write_text(path, trace.to_csv())


def dft_band_edges(atoms) -> tuple[float, float]:
    """(HOMO, LUMO) in eV from a frame's DFT eigenvalues and occupations (all spins and k-points)."""
    calc = atoms.calc
    if calc is None or not hasattr(calc, "get_eigenvalues"):
        raise QdlabError("frame carries no eigenvalues (need vasprun.xml/OUTCAR-like input or a gap CSV)")
    try:
        nspin, nk = calc.get_number_of_spins(), len(calc.get_ibz_k_points())
        e = np.array([calc.get_eigenvalues(k, s) for s in range(nspin) for k in range(nk)])
        o = np.array([calc.get_occupation_numbers(k, s) for s in range(nspin) for k in range(nk)])
    except Exception as exc:  # ase raises PropertyNotImplementedError, AttributeError ... for missing data
        raise QdlabError(f"frame carries no usable eigenvalues/occupations ({' '.join(str(exc).split())})") from None
    occ = o > 0.5 * (2.0 / nspin)
    if occ.all() or not occ.any():
        raise QdlabError("eigenvalues are all occupied or all empty: no gap")
    return float(e[occ].max()), float(e[~occ].min())


def _is_cp2k_output(path: str | os.PathLike) -> bool:
    p = Path(path)
    if not p.is_file() or p.suffix.lower() not in (".out", ".log", ".txt", ""):
        return False
    with open(p, errors="replace") as fh:
        return "CP2K|" in fh.read(20000)


def import_gap_trace(path: str | os.PathLike, dt_fs: float | None = None) -> GapTrace:
    """A gap trace from a CSV (``time_fs,gap_eV``), a CP2K output with MO energies (one block per step,
    :mod:`qdlab.engines.cp2k_mo`) or DFT output ASE reads with eigenvalues (vasprun.xml)."""
    from qdlab.analysis.exciton_phonon import read_gap_trace

    if Path(path).suffix.lower() == ".csv":
        return read_gap_trace(path)
    if _is_cp2k_output(path):
        from qdlab.engines.cp2k_mo import cp2k_gap_trace, read_cp2k_mos

        if dt_fs is None and len(read_cp2k_mos(path)) > 1:
            raise QdlabError(f"{path}: CP2K output frames carry no time; give the frame spacing (dt_fs)")
        return cp2k_gap_trace(path, dt_fs or 0.0)
    frames = _read(str(path), ":")
    edges = np.array([dft_band_edges(a) for a in frames])
    if all("time_fs" in a.info for a in frames):
        t = np.array([float(a.info["time_fs"]) for a in frames])
    elif dt_fs is not None or len(frames) == 1:
        t = np.arange(len(frames)) * (dt_fs or 0.0)
    else:
        raise QdlabError(f"{path}: frames carry no time; give the frame spacing (dt_fs)")
    return GapTrace(t, edges[:, 1] - edges[:, 0], edges[:, 0], edges[:, 1], {"source": str(path)})
