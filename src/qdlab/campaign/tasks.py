"""Units of campaign work: plain functions of JSON-serialisable inputs, run on any Dask worker.

``run_task(task, parent, store, files)`` executes one workflow step of one recipe, writes its large
arrays under ``files/<key[:2]>/<key>/`` and records the result (or the error) as one row of the
results store; it never raises, and returns a small summary dict (``key``, ``status``,
``results``, ``files``, ``error``, ``seconds``) that child steps take as their ``parent``.
``phonon_chunk`` computes the forces of a range of finite-difference displacements of a large
phonon job into its own checkpoint file (the record format of :mod:`qdlab.workflows.phonons`); the
phonon step then merges the chunk files into that module's ``hessian.ckpt`` and resumes from it.

Everything a worker needs is in the arguments: the store URL, the files folder (shared between
the machines of a cluster), the recipe, the engine settings and the step settings.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from qdlab.errors import QdlabError
from qdlab.store.results import DONE, FAILED, ResultStore, canonical_json, package_versions

#: engines built in this worker process, by their settings (CHGNet takes seconds to load)
_CALCS: dict[str, Any] = {}
_MODEL_HASH: dict[str, str] = {}


def task_dir(files: str | os.PathLike, key: str) -> Path:
    """Folder of a task's files: ``files/<key[:2]>/<key>``."""
    return Path(files) / key[:2] / key


def rel(files: str | os.PathLike, path: Path) -> str:
    """Path relative to the files folder (what rows store)."""
    return str(Path(path).resolve().relative_to(Path(files).resolve()))


def calculator(engine: dict):
    """The engine of ``engine`` settings (cached per worker process; one thread)."""
    key = canonical_json(engine)
    if key not in _CALCS:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from qdlab.campaign.spec import EngineSpec
        from qdlab.engines import get_calculator

        _CALCS[key] = get_calculator(**EngineSpec.model_validate(engine).calculator_kwargs())
    return _CALCS[key]


def engine_model_hash(engine: dict) -> str:
    """Content hash of the model behind an engine: the checkpoint file, CHGNet's packaged weights,
    the classical parameters; ``n/a`` where the weights live elsewhere."""
    key = canonical_json(engine)
    if key in _MODEL_HASH:
        return _MODEL_HASH[key]
    from qdlab.campaign.spec import file_hash
    from qdlab.store.results import content_hash

    name, model, ckpt = engine.get("name"), engine.get("model"), engine.get("checkpoint")
    h = "n/a"
    try:
        if ckpt and Path(ckpt).is_file():
            h = file_hash(ckpt)
        elif name == "chgnet":
            import chgnet

            files = sorted((Path(chgnet.__file__).parent / "pretrained" / (model or "0.3.0")).glob("*.pth.tar"))
            h = file_hash(files[0]) if files else "n/a"
        elif name == "classical":
            from qdlab.engines.classical import SEED003_CHARGES, SEED003_LJ

            h = content_hash({"lj": SEED003_LJ, "charges": SEED003_CHARGES, "options": engine.get("options", {})})
    except Exception:  # provenance must never fail a task
        h = "n/a"
    _MODEL_HASH[key] = h
    return h


def provenance(task: dict) -> dict:
    """qdlab and package versions, engine model hash, host and process of this execution."""
    return {"versions": package_versions(), "engine_model_hash": engine_model_hash(task["engine"]),
            "host": socket.gethostname(), "pid": os.getpid(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seed": task["recipe"].get("seed", 0), "settings": task["settings"]}


# -- inputs from the parent step ---------------------------------------------------------------
def _parent_file(parent: dict, files: str, name: str) -> Path:
    f = parent.get("files", {}).get(name)
    if not f:
        raise QdlabError(f"parent step {parent.get('step', '?')} recorded no {name} file")
    p = Path(files) / f
    if not p.is_file():
        raise QdlabError(f"{name} file {p} of the parent step is missing (files folder not shared?)")
    return p


def input_structure(task: dict, parent: dict | None, files: str) -> Atoms:
    """The model a structure-consuming step starts from: the parent's output structure (with all
    builder labels), or the recipe built afresh."""
    from ase.io import read

    if parent is None:
        from qdlab.campaign.spec import build_recipe

        return build_recipe(task["recipe"])
    return read(_parent_file(parent, files, "structure"), format="extxyz")


# -- workflows ---------------------------------------------------------------------------------
def _relax(task: dict, parent: dict | None, files: str, out: Path) -> tuple[Atoms, dict, dict]:
    from qdlab.store.files import write_atoms
    from qdlab.workflows.relax import relax

    s = task["settings"]
    atoms = input_structure(task, parent, files)
    if s["rattle_A"] > 0:
        rng = np.random.default_rng(int(task["recipe"].get("seed", 0)))
        atoms.positions += rng.normal(0.0, s["rattle_A"], atoms.positions.shape)
    res = relax(atoms, calculator(task["engine"]), optimizer=s["optimizer"], fmax=s["fmax"], steps=s["steps"],
                fix=s.get("fix"), trajectory=out / "relax.traj")
    relaxed = res.atoms
    relaxed.constraints = []
    write_atoms(out / "relaxed.extxyz", relaxed)
    results = {"energy_eV": res.energy_eV, "energy_per_atom_eV": res.energy_eV / len(relaxed),
               "fmax_eV_A": res.fmax_eV_A, "relax_steps": res.steps, "converged": res.converged,
               "restarted_from_step": res.restarted_from_step, "force_calls": res.steps + 1}
    return relaxed, results, {"structure": rel(files, out / "relaxed.extxyz"),
                              "trajectory": rel(files, out / "relax.traj")}


def phonon_engine_name(task: dict) -> str:
    """The engine label in the phonon checkpoint key (settings that change the forces)."""
    return canonical_json({k: task["engine"].get(k) for k in ("name", "model", "checkpoint", "d3", "options")})


def chunk_ranges(n_jobs: int, n_chunks: int) -> list[tuple[int, int]]:
    """Split displacement jobs 0..n_jobs-1 into ``n_chunks`` contiguous [j0, j1) ranges."""
    n_chunks = max(1, min(n_chunks, n_jobs))
    edges = np.linspace(0, n_jobs, n_chunks + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _read_records(path: Path, n_atoms: int) -> dict[int, np.ndarray]:
    """Complete (index, forces) records of a phonon checkpoint file, read-only (a record being
    appended by another process is ignored, never truncated)."""
    rec = 8 + 8 * 3 * n_atoms
    if not path.exists():
        return {}
    data = path.read_bytes()
    n_full = len(data) // rec
    buf = np.frombuffer(data[: n_full * rec], np.uint8).reshape(n_full, rec)
    idx = buf[:, :8].copy().view(np.int64).ravel()
    forces = buf[:, 8:].copy().view(np.float64).reshape(n_full, n_atoms, 3)
    return {int(i): f for i, f in zip(idx, forces)}


def _chunk_folder(files: str, task: dict) -> Path:
    return task_dir(files, task["key"]) / "chunks"


def _done_in_chunks(folder: Path, key: str, n_atoms: int, skip: Path | None = None) -> dict[int, np.ndarray]:
    done: dict[int, np.ndarray] = {}
    for p in sorted(folder.glob("chunk_*.ckpt")):
        if p == skip:
            continue
        meta = p.with_suffix(p.suffix + ".json")
        if meta.exists() and json.loads(meta.read_text()).get("key") == key:
            done.update(_read_records(p, n_atoms))
    return done


def phonon_chunk(task: dict, parent: dict, files: str, j0: int, j1: int) -> dict:
    """Forces of displacement jobs ``j0 ≤ j < j1`` (job j = 2·(3i+k) + (0: +δ, 1: −δ)) of a phonon
    task, appended one record at a time to ``chunks/chunk_<j0>_<j1>.ckpt`` (resumable; jobs already
    in any chunk file are skipped). Never raises: returns ``{status, done, seconds[, error]}``."""
    t0 = time.perf_counter()
    try:
        if task["parent"] is not None and (parent is None or parent.get("status") != DONE):
            raise QdlabError(f"parent step failed: {(parent or {}).get('error', 'no result')}")
        from qdlab.workflows.phonons import DisplacementCheckpoint, checkpoint_key, displacements

        atoms = input_structure(task, parent, files)
        delta = task["settings"]["delta"]
        key = checkpoint_key(atoms, delta, phonon_engine_name(task))
        folder = _chunk_folder(files, task)
        path = folder / f"chunk_{j0:06d}_{j1:06d}.ckpt"
        ck = DisplacementCheckpoint(path, key, len(atoms))
        done = ck.load()
        done.update(_done_in_chunks(folder, key, len(atoms), skip=path))
        jobs = displacements(atoms, delta, jobs=[j for j in range(j0, min(j1, 6 * len(atoms))) if j not in done])
        if jobs:
            calc = calculator(task["engine"])
            batch = task["settings"].get("batch")
            step = batch if batch and batch > 1 and hasattr(calc, "get_forces_batch") else 1
            for b in range(0, len(jobs), step):
                part = jobs[b:b + step]
                if step > 1:
                    forces = calc.get_forces_batch([a for _, a in part])
                else:
                    part[0][1].calc = calc
                    forces = [part[0][1].get_forces()]
                for (j, _), f in zip(part, forces):
                    f = np.asarray(f, float)
                    if not np.all(np.isfinite(f)):
                        raise QdlabError(f"engine returned non-finite forces for displacement {j}")
                    ck.append(j, f)
        return {"status": DONE, "done": j1 - j0, "computed": len(jobs), "seconds": time.perf_counter() - t0}
    except Exception as exc:  # recorded by the phonon step that waits for this chunk
        return {"status": FAILED, "error": _one_line(exc), "seconds": time.perf_counter() - t0}


def _merge_chunks(task: dict, files: str, atoms: Atoms, out: Path) -> None:
    """Merge the chunk checkpoints into ``hessian.ckpt`` (the phonon module's format and key)."""
    from qdlab.workflows.phonons import DisplacementCheckpoint, checkpoint_key

    delta = task["settings"]["delta"]
    key = checkpoint_key(atoms, delta, phonon_engine_name(task))
    done = _done_in_chunks(_chunk_folder(files, task), key, len(atoms))
    if len(done) < 6 * len(atoms):
        raise QdlabError(f"only {len(done)} of {6 * len(atoms)} displacements were computed")
    ck = DisplacementCheckpoint(out / "hessian.ckpt", key, len(atoms))
    have = ck.load()
    missing = sorted(set(done) - set(have))
    if missing:
        with open(ck.path, "ab") as fh:
            fh.write(b"".join(np.int64(j).tobytes() + np.ascontiguousarray(done[j], np.float64).tobytes()
                              for j in missing))
            fh.flush()
            os.fsync(fh.fileno())


class _NoEngine:
    """Stands in for the engine once every displacement is in the checkpoint (never called)."""

    def get_forces(self, *args, **kwargs):  # pragma: no cover - guarded by the completeness check
        raise QdlabError("phonon checkpoint incomplete")


def _phonons(task: dict, parent: dict | None, files: str, out: Path, chunks: list[dict] | None
             ) -> tuple[Atoms, dict, dict]:
    from qdlab.store.files import write_atoms
    from qdlab.workflows.phonon_io import write_phonon_outputs
    from qdlab.workflows.phonons import phonons

    s = task["settings"]
    atoms = input_structure(task, parent, files)
    write_atoms(out / "structure.extxyz", atoms)
    failed = [c for c in (chunks or []) if c.get("status") != DONE]
    if failed:
        raise QdlabError(f"{len(failed)} displacement chunk(s) failed: {failed[0].get('error')}")
    if chunks:
        _merge_chunks(task, files, atoms, out)
        calc = _NoEngine()
    else:
        calc = calculator(task["engine"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # imaginary modes are counted in the results
        res = phonons(atoms, calc, s["delta"], method=s["method"], checkpoint=out / "hessian.ckpt",
                      engine_name=phonon_engine_name(task), batch_size=s.get("batch"))
    summary = write_phonon_outputs(atoms, res, out, sigma_cm1=s["sigma_cm1"], phonopy_export=False,
                                   title=f"{task['labels'].get('passivation', '')} {atoms.get_chemical_formula()}")
    results = {"n_modes": res.n_modes, "n_imaginary": res.n_imaginary, "lowest_cm1": summary["lowest_cm1"],
               "highest_cm1": summary["highest_cm1"], "force_calls": 6 * len(atoms) if s["method"] == "fd" else 0,
               "n_chunks": len(chunks or []),
               "engine_seconds": res.seconds_in_engine + sum(c.get("seconds", 0.0) for c in chunks or [])}
    results |= {f"{k}_cm1": v for k, v in summary["peaks_cm1"].items()}
    names = {"phonons": "phonons.npz", "dos": "dos.csv", "pdos": "pdos.csv", "frequencies": "frequencies.csv",
             "dos_png": "dos.png", "structure": "structure.extxyz", "checkpoint": "hessian.ckpt"}
    return atoms, results, {k: rel(files, out / v) for k, v in names.items()}


def _peaks(task: dict, parent: dict | None, files: str, out: Path) -> tuple[Atoms, dict, dict]:
    from ase.io import read

    from qdlab.analysis.dos import CSPBBR3_REGIONS, label_selections, mode_peaks, phonon_dos
    from qdlab.workflows.phonon_io import save_dos_csv, save_peaks

    s = task["settings"]
    atoms = read(_parent_file(parent, files, "structure"), format="extxyz")
    with np.load(_parent_file(parent, files, "phonons")) as z:
        freqs, modes = z["frequencies_cm1"], z["modes"]
    sel = label_selections(atoms, "auto")
    dos = phonon_dos(freqs, modes, sel, sigma_cm1=s["sigma_cm1"])
    missing: dict[str, str] = {}
    peaks = mode_peaks(dos, s.get("regions") or CSPBBR3_REGIONS, missing=missing)
    save_dos_csv(dos, out / "dos.csv", out / "pdos.csv")
    save_peaks(peaks, out / "peaks.json", out / "peaks.csv")
    results: dict[str, Any] = {f"{k}_cm1": p.centre_cm1 for k, p in peaks.items()}
    results |= {f"{k}_window_cm1": list(p.window_cm1) for k, p in peaks.items()}
    if missing:
        results["missing_peaks"] = missing
    return atoms, results, {"peaks": rel(files, out / "peaks.json"), "dos": rel(files, out / "dos.csv"),
                            "pdos": rel(files, out / "pdos.csv")}


def _md(task: dict, parent: dict | None, files: str, out: Path) -> tuple[Atoms, dict, dict]:
    from qdlab.store.files import read_complete_frames, write_atoms
    from qdlab.workflows.md import MDSettings, run_md

    s = dict(task["settings"])
    atoms = input_structure(task, parent, files)
    res = run_md(atoms, calculator(task["engine"]), MDSettings(**s), trajectory=out / "md.extxyz")
    last = read_complete_frames(out / "md.extxyz")[-1]
    write_atoms(out / "last.extxyz", last)
    results = {"n_frames": res.n_frames, "mean_temperature_K": res.mean_temperature_K,
               "std_temperature_K": res.std_temperature_K, "steps_per_second": res.steps_per_second,
               "restarted_from_step": res.restarted_from_step, "force_calls": res.steps + 1}
    if res.energy_drift_eV_atom_ps is not None:
        results["energy_drift_eV_atom_ps"] = res.energy_drift_eV_atom_ps
    return last, results, {"trajectory": rel(files, out / "md.extxyz"), "structure": rel(files, out / "last.extxyz")}


def _rmsf(task: dict, parent: dict | None, files: str, out: Path) -> tuple[Atoms, dict, dict]:
    from qdlab.analysis.rmsf import rmsf
    from qdlab.analysis.trajectory import read_frames

    s = task["settings"]
    frames = read_frames(_parent_file(parent, files, "trajectory"))
    r = rmsf(frames, align=s["align"], skip_ps=s["skip_ps"] or None, bin_width=s["bin_width_A"])
    depth = r.depth if r.depth is not None else np.full(len(r.rmsf_A), -2)
    np.savez_compressed(out / "rmsf.npz", rmsf_A=r.rmsf_A, symbols=np.asarray(r.symbols, str), depth=depth)
    results: dict[str, Any] = {"n_frames": r.n_frames}
    for el, st in r.by_element.items():
        results[f"rmsf_{el}_mean_A"] = st.mean_A
        results[f"rmsf_{el}_std_A"] = st.std_A
    results["rmsf_by_depth_A"] = {el: {str(d): st.mean_A for d, st in v.items()} for el, v in r.by_depth.items()}
    return frames[-1], results, {"rmsf": rel(files, out / "rmsf.npz")}


def _rdf(task: dict, parent: dict | None, files: str, out: Path) -> tuple[Atoms, dict, dict]:
    from qdlab.analysis.rdf import rdf
    from qdlab.analysis.trajectory import load_trajectory, read_frames

    s = task["settings"]
    frames = read_frames(_parent_file(parent, files, "trajectory"))
    traj = load_trajectory(frames, skip_ps=s["skip_ps"] or None)
    arrays: dict[str, np.ndarray] = {}
    results: dict[str, Any] = {}
    for pair in s["pairs"]:
        spec = _resolve_sites(pair, task["recipe"])
        g = rdf(traj, spec, r_max=s["r_max_A"], dr=s["dr_A"])
        tag = spec.replace("-", "_")
        arrays[f"{tag}_r_A"], arrays[f"{tag}_g"] = g.r_A, g.g
        results[f"rdf_{tag}_peak_A"] = g.first_peak()
    np.savez_compressed(out / "rdf.npz", **arrays)
    return frames[-1], results, {"rdf": rel(files, out / "rdf.npz")}


def _resolve_sites(pair: str, recipe: dict) -> str:
    """``"Pb-X"`` → ``"Pb-Br"`` for a CsPbBr3 recipe (A, B, X stand for the composition's sites)."""
    if recipe.get("kind", "perovskite") != "perovskite":
        return pair
    from qdlab.build.model import parse_perovskite

    c = parse_perovskite(recipe.get("composition", "CsPbBr3"))
    return "-".join({"A": c.A, "B": c.B, "X": c.X}.get(p, p) for p in pair.split("-"))


WORKFLOWS = {"relax": _relax, "peaks": _peaks, "md": _md, "rmsf": _rmsf, "rdf": _rdf}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, QdlabError) else f"{type(exc).__name__}: {text}"


def record(store: ResultStore, task: dict, status: str, atoms: Atoms | None, results: dict, files: dict,
           error: str | None, seconds: float, tb: str | None = None) -> bool:
    """Write a task's row (searchable columns: labels, scalar results, status)."""
    kvp = {"campaign": task["campaign"], "step": task["step"], "workflow": task["workflow"],
           "recipe_key": task["recipe_key"], "n_atoms": task["n_atoms"], "seconds": seconds, **task["labels"]}
    kvp |= {k: v for k, v in results.items() if isinstance(v, (int, float, str, bool, np.number))}
    data = {"recipe": task["recipe"], "settings": task["settings"], "engine": task["engine"],
            "parent": task["parent"], "results": results, "files": files, "provenance": provenance(task),
            "error": error, "traceback": tb}
    return store.put(task["key"], atoms, kvp, data, status=status)


def run_task(task: dict, parent: dict | None, store: str, files: str, chunks: list[dict] | None = None) -> dict:
    """Execute one task and record its row; never raises.

    ``parent``: the summary returned by the parent step (None: the step builds the recipe);
    ``chunks``: summaries of :func:`phonon_chunk` sub-tasks of a split phonon step.
    Returns ``{key, step, status, results, files, error, seconds, written}``.
    """
    t0 = time.perf_counter()
    out = task_dir(files, task["key"])
    summary = {"key": task["key"], "step": task["step"], "workflow": task["workflow"], "status": FAILED,
               "results": {}, "files": {}, "error": None, "seconds": 0.0, "written": False}
    atoms = None
    try:
        rs = ResultStore(store, files)
        if task["parent"] is not None and (parent is None or parent.get("status") != DONE):
            raise QdlabError(f"parent step {parent.get('step') if parent else '?'} failed: "
                             f"{(parent or {}).get('error') or 'no result'}")
        out.mkdir(parents=True, exist_ok=True)
        if task["workflow"] == "phonons":
            atoms, results, fls = _phonons(task, parent, files, out, chunks)
        else:
            atoms, results, fls = WORKFLOWS[task["workflow"]](task, parent, files, out)
        summary |= {"status": DONE, "results": json.loads(canonical_json(results)), "files": fls}
    except Exception as exc:
        summary["error"] = _one_line(exc)
        summary["traceback"] = traceback.format_exc(limit=6)
    summary["seconds"] = time.perf_counter() - t0
    try:
        summary["written"] = record(rs, task, summary["status"], atoms, summary["results"], summary["files"],
                                    summary["error"], summary["seconds"], summary.get("traceback"))
    except Exception as exc:  # the store itself failed: the client records the failure if it can
        summary |= {"status": FAILED, "error": f"could not write the result: {_one_line(exc)}"}
    return summary


def row_summary(row) -> dict:
    """The summary :func:`run_task` would return, rebuilt from a stored row (for resumed parents)."""
    return {"key": row.key, "step": row.kvp.get("step"), "workflow": row.kvp.get("workflow"), "status": row.status,
            "results": row.results, "files": row.files, "error": row.data.get("error"),
            "seconds": row.kvp.get("seconds", 0.0), "written": False}
