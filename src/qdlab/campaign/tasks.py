"""Units of campaign work: plain functions of JSON-serialisable inputs, run on any Dask worker.

``run_task(task, parent, store, files)`` executes one workflow step of one recipe, writes its large
arrays under ``files/<key[:2]>/<key>/`` and records the result (or the error) as one row of the
results store; it never raises, and returns a small summary dict (``key``, ``status``,
``results``, ``files``, ``error``, ``seconds``) that child steps take as their ``parent``.
``phonon_chunk`` computes the forces of a range of finite-difference displacements of a large
phonon job (:func:`qdlab.workflows.phonons.evaluate_chunk`); the phonon step then resumes the
task's Hessian checkpoint, which holds the chunks (the campaign never reads the record files).

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
        from qdlab.engines.spec import EngineSpec

        _CALCS[key] = EngineSpec.model_validate(engine).calculator(threads=1)
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
    from qdlab.workflows.relax import RelaxSettings, run_relax

    settings = RelaxSettings.model_validate({"seed": int(task["recipe"].get("seed", 0))} | task["settings"])
    atoms = input_structure(task, parent, files)
    res = run_relax(atoms, calculator(task["engine"]), settings, trajectory=out / "relax.traj")
    relaxed = res.atoms
    relaxed.constraints = []
    write_atoms(out / "relaxed.extxyz", relaxed)
    results = {"energy_eV": res.energy_eV, "energy_per_atom_eV": res.energy_eV / len(relaxed),
               "fmax_eV_A": res.fmax_eV_A, "relax_steps": res.steps, "converged": res.converged,
               "restarted_from_step": res.restarted_from_step, "force_calls": res.steps + 1}
    return relaxed, results, {"structure": rel(files, out / "relaxed.extxyz"),
                              "trajectory": rel(files, out / "relax.traj")}


def _phonon_plan(task: dict, atoms: Atoms):
    from qdlab.engines.spec import EngineSpec
    from qdlab.workflows.phonons import plan_displacements

    return plan_displacements(atoms, task["settings"]["delta"], EngineSpec.model_validate(task["engine"]))


def phonon_plan(task: dict, parent: dict | None, files: str):
    """The displacement plan of a phonon task (its input structure, δ and engine)."""
    return _phonon_plan(task, input_structure(task, parent, files))


def phonon_chunk(task: dict, parent: dict, files: str, j0: int, j1: int) -> dict:
    """Forces of displacement jobs ``j0 ≤ j < j1`` of a phonon task into their chunk of the task's
    Hessian checkpoint (:func:`qdlab.workflows.phonons.evaluate_chunk`; resumable). Never raises:
    returns ``{status, done, computed, seconds[, error]}``."""
    t0 = time.perf_counter()
    try:
        if task["parent"] is not None and (parent is None or parent.get("status") != DONE):
            raise QdlabError(f"parent step failed: {(parent or {}).get('error', 'no result')}")
        from qdlab.workflows.phonons import evaluate_chunk

        plan = phonon_plan(task, parent, files)
        rep = evaluate_chunk(plan, task_dir(files, task["key"]) / "hessian.ckpt", j0, j1,
                             lambda: calculator(task["engine"]), batch_size=task["settings"].get("batch"))
        return {"status": DONE, "done": rep.n_jobs, "computed": rep.computed, "seconds": time.perf_counter() - t0}
    except Exception as exc:  # recorded by the phonon step that waits for this chunk
        return {"status": FAILED, "error": _one_line(exc), "seconds": time.perf_counter() - t0}


def _phonons(task: dict, parent: dict | None, files: str, out: Path, chunks: list[dict] | None
             ) -> tuple[Atoms, dict, dict]:
    from qdlab.engines.spec import EngineSpec
    from qdlab.store.files import write_atoms
    from qdlab.workflows.phonon_io import write_phonon_outputs
    from qdlab.workflows.phonons import phonons

    s = task["settings"]
    atoms = input_structure(task, parent, files)
    write_atoms(out / "structure.extxyz", atoms)
    failed = [c for c in (chunks or []) if c.get("status") != DONE]
    if failed:
        raise QdlabError(f"{len(failed)} displacement chunk(s) failed: {failed[0].get('error')}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # imaginary modes are counted in the results
        res = phonons(atoms, None if chunks else calculator(task["engine"]), s["delta"], method=s["method"],
                      checkpoint=out / "hessian.ckpt", engine_spec=EngineSpec.model_validate(task["engine"]),
                      batch_size=s.get("batch"))
    summary = write_phonon_outputs(atoms, res, out, sigma_cm1=s["sigma_cm1"], phonopy_export=False,
                                   title=f"{task['labels'].get('passivation', '')} {atoms.get_chemical_formula()}")
    results = {"n_modes": res.n_modes, "n_imaginary": res.n_imaginary, "lowest_cm1": summary["lowest_cm1"],
               "highest_cm1": summary["highest_cm1"], "force_calls": 6 * len(atoms) if s["method"] == "fd" else 0,
               "n_chunks": len(chunks or []), "displacements_reused": res.displacements_reused,
               "engine_seconds": res.seconds_in_engine + sum(c.get("seconds", 0.0) for c in chunks or [])}
    results |= {f"{k}_cm1": v for k, v in summary["peaks_cm1"].items()}
    names = {"phonons": "phonons.npz", "dos": "dos.csv", "pdos": "pdos.csv", "frequencies": "frequencies.csv",
             "dos_png": "dos.png", "structure": "structure.extxyz", "checkpoint": "hessian.ckpt"}
    return atoms, results, {k: rel(files, out / v) for k, v in names.items()}


def _peaks(task: dict, parent: dict | None, files: str, out: Path) -> tuple[Atoms, dict, dict]:
    from ase.io import read

    from qdlab.workflows.phonon_io import dos_and_peaks, save_dos_csv, save_peaks
    from qdlab.workflows.phonons import PhononResult

    s = task["settings"]
    atoms = read(_parent_file(parent, files, "structure"), format="extxyz")
    ph = PhononResult.load(_parent_file(parent, files, "phonons"))
    dos, peaks, missing = dos_and_peaks(atoms, ph.frequencies_cm1, ph.modes, sigma_cm1=s["sigma_cm1"],
                                        regions=s.get("regions"))
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
    from qdlab.analysis.trajectory import read_frames
    from qdlab.workflows.md_analysis import RMSFSettings, run_rmsf

    frames = read_frames(_parent_file(parent, files, "trajectory"))
    r = run_rmsf(frames, RMSFSettings(**task["settings"]))
    r.save(out)
    results: dict[str, Any] = {"n_frames": r.n_frames}
    for el, st in r.by_element.items():
        results[f"rmsf_{el}_mean_A"] = st.mean_A
        results[f"rmsf_{el}_std_A"] = st.std_A
    results["rmsf_by_depth_A"] = {el: {str(d): st.mean_A for d, st in v.items()} for el, v in r.by_depth.items()}
    return frames[-1], results, {"rmsf": rel(files, out / "rmsf.csv"), "rmsf_summary": rel(files, out / "rmsf.json")}


def _rdf(task: dict, parent: dict | None, files: str, out: Path) -> tuple[Atoms, dict, dict]:
    from qdlab.analysis.trajectory import read_frames
    from qdlab.workflows.md_analysis import RDFSettings, run_rdf

    frames = read_frames(_parent_file(parent, files, "trajectory"))
    arrays: dict[str, np.ndarray] = {}
    results: dict[str, Any] = {}
    for g in run_rdf(frames, RDFSettings(**task["settings"])):
        tag = g.pair.replace("-", "_")
        arrays[f"{tag}_r_A"], arrays[f"{tag}_g"] = g.r_A, g.g
        results[f"rdf_{tag}_peak_A"] = g.first_peak()
    np.savez_compressed(out / "rdf.npz", **arrays)
    return frames[-1], results, {"rdf": rel(files, out / "rdf.npz")}


def _thermal(task: dict, parent: dict | None, files: str, out: Path) -> tuple[Atoms, dict, dict]:
    """Harmonic F, S, C_v, ZPE (eV, eV/K) and ⟨u²⟩ (Å²) of the parent phonon step
    (:func:`qdlab.workflows.ir.run_thermal`); row values at 10 K and 300 K where in the grid."""
    from ase.io import read

    from qdlab.workflows.ir import ThermalSettings, run_thermal

    structure = _parent_file(parent, files, "structure")
    summary = run_thermal(_parent_file(parent, files, "phonons"), out, ThermalSettings(**task["settings"]),
                          structure=structure)
    results: dict[str, Any] = {k: summary[k] for k in ("zpe_eV", "n_modes", "n_excluded", "n_imaginary")}
    for t, v in summary["at"].items():
        results |= {f"F_{t}_eV": v["F_eV"], f"S_{t}_eV_K": v["S_eV_K"], f"Cv_{t}_eV_K": v["Cv_eV_K"]}
        results |= {f"u2_{el}_{t}_A2": u for el, u in v["u2_A2"].items()}
    names = {"thermal": "thermal.csv", "msd": "msd_per_atom.npz", "thermal_png": "thermal.png",
             "thermal_json": "thermal.json"}
    return read(structure, format="extxyz"), results, {k: rel(files, out / v) for k, v in names.items()}


def _binding(task: dict, parent: dict | None, files: str, out: Path) -> tuple[Atoms, dict, dict]:
    """Ligand binding and exchange energies (eV) on the task's model as host, every structure relaxed
    with the task's engine (:func:`qdlab.workflows.binding.binding_energies`)."""
    from qdlab.report.uncertainty_plots import plot_binding
    from qdlab.workflows.binding import BindingSettings, binding_energies
    from qdlab.workflows.committee import EngineChoice

    host = input_structure(task, parent, files)
    res = binding_energies(host, BindingSettings(**task["settings"], engine=EngineChoice(**task["engine"])), out)
    plot_binding(res, out / "binding.png")
    order = res.ordering()
    results: dict[str, Any] = res.flat() | {"all_converged": all(res.converged.values()),
                                            "ordering": " > ".join(order["order"]), "ordering_robust": order["robust"]}
    return host, results, {"binding": rel(files, out / "binding.json"), "binding_png": rel(files, out / "binding.png"),
                           "units": rel(files, out / "units")}


def _ir(task: dict, parent: dict | None, files: str, out: Path) -> tuple[Atoms, dict, dict]:
    """Harmonic IR spectrum of the parent phonon step (:func:`qdlab.workflows.ir.run_ir_harmonic`), cm⁻¹."""
    from ase.io import read

    from qdlab.workflows.ir import HarmonicIRSettings, run_ir_harmonic

    structure = _parent_file(parent, files, "structure")
    summary = run_ir_harmonic(_parent_file(parent, files, "phonons"), out, HarmonicIRSettings(**task["settings"]),
                              structure=structure)
    names = {"ir_modes": "ir_modes.csv", "ir": "ir_harmonic.csv", "ir_json": "ir_harmonic.json",
             "ir_png": "ir_harmonic.png"}
    atoms = read(structure, format="extxyz")
    return atoms, _ir_results(summary, atoms), {k: rel(files, out / v) for k, v in names.items()}


def _ir_md(task: dict, parent: dict | None, files: str, out: Path) -> tuple[Atoms, dict, dict]:
    """IR spectrum of the parent MD step's trajectory (:func:`qdlab.workflows.ir.run_ir_md`), cm⁻¹."""
    from qdlab.analysis.trajectory import read_frames
    from qdlab.workflows.ir import IRMDSettings, run_ir_md

    traj = _parent_file(parent, files, "trajectory")
    summary = run_ir_md(traj, out, IRMDSettings(**task["settings"]))
    frames = read_frames(traj)
    results = _ir_results(summary, frames[0]) | {k: summary[k] for k in ("resolution_cm1", "n_frames") if k in summary}
    names = {"ir_md": "ir_md.csv", "ir_json": "ir_md.json", "ir_png": "ir_md.png"}
    return frames[-1], results, {k: rel(files, out / v) for k, v in names.items()}


def _ir_results(summary: dict, atoms: Atoms) -> dict[str, Any]:
    """Row values of an IR summary: the strongest peak (cm⁻¹), carboxylate band positions (cm⁻¹; only
    for a model with C and O), the whole summary."""
    peaks = summary.get("peaks") or []
    results: dict[str, Any] = {"n_peaks": len(peaks), "summary": {k: v for k, v in summary.items() if k != "files"}}
    if peaks:
        results["ir_strongest_cm1"] = max(peaks, key=lambda p: p["height"])["position_cm1"]
    if {"C", "O"} <= set(atoms.get_chemical_symbols()):
        for band, v in (summary.get("bands") or {}).items():
            value = v.get("position_cm1") if isinstance(v, dict) else v
            if isinstance(value, (int, float)):
                results[f"ir_{band.removesuffix('_cm1')}_cm1"] = value
    return results


def _gap(task: dict, parent: dict | None, files: str, out: Path) -> tuple[Atoms, dict, dict]:
    """HOMO, LUMO, gap (eV) per frame of the parent MD step (:func:`qdlab.workflows.gap.gap_trajectory`,
    its chunks in turn, checkpointed in ``gap.ckpt``) → ``gap.csv``."""
    from qdlab.analysis.trajectory import read_frames
    from qdlab.workflows.gap import GapSettings, gap_trajectory, save_gap_trace

    traj = _parent_file(parent, files, "trajectory")
    trace = gap_trajectory(traj, GapSettings(**task["settings"]), checkpoint=out / "gap.ckpt")
    save_gap_trace(trace, out / "gap.csv")
    g = trace.gap_eV
    results = {"n_frames": len(g), "mean_gap_eV": float(np.mean(g)), "std_gap_meV": float(np.std(g) * 1e3),
               "min_gap_eV": float(np.min(g)), "max_gap_eV": float(np.max(g))}
    return read_frames(traj)[-1], results, {"gap": rel(files, out / "gap.csv"),
                                            "checkpoint": rel(files, out / "gap.ckpt")}


def _linewidth(task: dict, parent: dict | None, files: str, out: Path) -> tuple[Atoms | None, dict, dict]:
    """Huang–Rhys factors, reorganisation energy and Γ (meV) of the parent gap step's trace
    (:func:`qdlab.analysis.exciton_phonon.linewidth`)."""
    from qdlab.analysis.exciton_phonon import linewidth, plot_linewidth
    from qdlab.store.files import write_text
    from qdlab.workflows.gap import import_gap_trace

    s = task["settings"]
    res = linewidth(import_gap_trace(_parent_file(parent, files, "gap")), s["T_K"], s.get("bands_meV"),
                    s["resolution_meV"], s["skip_fs"], s["max_lag_fs"])
    summary = res.summary()
    write_text(out / "linewidth.json", json.dumps(summary, indent=2) + "\n")
    plot_linewidth(res, out / "linewidth.png")
    results = {k: v for k, v in summary.items() if k != "huang_rhys_bands"} | summary["huang_rhys_bands"]
    return None, results, {"linewidth": rel(files, out / "linewidth.json"),
                           "linewidth_png": rel(files, out / "linewidth.png")}


def _excitons(task: dict, parent: dict | None, files: str, out: Path) -> tuple[Atoms, dict, dict]:
    """Exciton fine structure of the task's model (:func:`qdlab.workflows.excitons.evaluate_exciton_unit`;
    states, kernel and result checkpointed in the task folder) → the scalar values of its row (eV)."""
    from qdlab.workflows.excitons import ExcitonSettings, ExcitonUnit, evaluate_exciton_unit

    atoms = input_structure(task, parent, files)
    row = evaluate_exciton_unit(ExcitonUnit("nc", atoms), ExcitonSettings(**task["settings"]), out)
    results = {k: v for k, v in row.items() if isinstance(v, (int, float, str, bool)) or v is None}
    for i, split in enumerate(row.get("bright_splittings_meV", [])[1:], start=1):  # splitting to bright state i
        results[f"bright_split_{i}_meV"] = split
    return atoms, results, {"excitons": rel(files, out / "nc.excitons.json"),
                            "states": rel(files, out / "nc.states.npz"), "kernel": rel(files, out / "nc.kernel.npz")}


WORKFLOWS = {"relax": _relax, "peaks": _peaks, "md": _md, "rmsf": _rmsf, "rdf": _rdf, "thermal": _thermal,
             "binding": _binding, "ir": _ir, "ir_md": _ir_md, "gap": _gap, "linewidth": _linewidth,
             "excitons": _excitons}


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
    rs = None
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
    if rs is None:  # the store could not be opened: report why, the client records it if it can
        return summary
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
