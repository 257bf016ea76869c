"""``seed001-ir``: acetate-capped PbS IR bands beside seed 001's (SCIENCE.md §6), laptop-sized.

Build the carboxylate-capped PbS octahedron (size 2 = seed 001's Pb19S6(OAc)26, size 1 =
Pb6S(OAc)10 for a laptop) → relax → Γ phonons (analytic Hessian when the engine offers one,
checkpointed) → harmonic IR with seed 001's fixed charges (and a learned dipole model when given)
→ optionally a short NVE run from thermalised velocities → IR from the dipole autocorrelation.
Each stage writes into its own folder under ``out`` and is skipped when its summary already exists
(rerun to resume). The carboxylate bands (ν_s, umbrella, CH bend, ν_as, Δν: maxima of each spectrum
in the band windows; for harmonic spectra also the centres of the COO-stretch coordinates over the
modes, ``nu_s_coordinate``/``nu_as_coordinate``) are returned beside the paper's ranges, as measured: the potential is not 001's DFT-trained one, and short runs on a
small model are not its 1 ns NVE.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from qdlab.errors import QdlabError

PAPER = {"nu_s": "1370–1420", "umbrella": "~1450", "ch_bend": "~1480", "nu_as": "1550–1600"}


def _cached(path: Path, make: Callable[[], dict]) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    return make()


def _prepare(out: Path, size: int, engine: str, fmax: float, log: Callable[[str], None]):
    from ase.io import read

    from qdlab.build.recipes import PbSRecipe, build_pbs
    from qdlab.engines.spec import EngineSpec
    from qdlab.store.files import write_atoms
    from qdlab.workflows.phonon_io import write_phonon_outputs
    from qdlab.workflows.phonons import phonons
    from qdlab.workflows.relax import RelaxSettings, run_relax

    spec = EngineSpec(name=engine)
    calc = spec.calculator()
    ph_dir = out / "phonons"
    relaxed_path = ph_dir / "relaxed.extxyz"
    if not relaxed_path.exists():
        atoms = build_pbs(PbSRecipe(size=size, ligand="OAc", seed=0))
        write_atoms(out / "model.extxyz", atoms)
        log(f"relaxing {atoms.get_chemical_formula()} ({len(atoms)} atoms) with {engine}")
        # the relax workflow; rattle 0: the README's band tables were measured from the unrattled model
        res = run_relax(atoms, calc, RelaxSettings(fmax=fmax, steps=3000, rattle_A=0.0), trajectory=out / "relax.traj")
        relaxed = res.atoms
        relaxed.constraints = []
        ph_dir.mkdir(parents=True, exist_ok=True)
        write_atoms(relaxed_path, relaxed)
    relaxed = read(relaxed_path)
    if not (ph_dir / "summary.json").exists():
        method = "analytic" if hasattr(calc, "get_hessian") else "fd"
        log(f"Γ phonons ({method})")
        result = phonons(relaxed, calc, method=method, checkpoint=ph_dir / "hessian.ckpt",
                         engine_spec=spec)
        write_phonon_outputs(relaxed, result, ph_dir)
    return relaxed, calc, ph_dir


def reproduce_seed001_ir(out: str | Path, *, size: int = 1, engine: str = "chgnet", fmax: float = 0.01,
                         dipole_model: str | None = None, md_steps: int = 0, timestep_fs: float = 0.5,
                         temperature_K: float = 300.0, resolution_cm1: float | None = None,
                         log: Callable[[str], None] = lambda m: None) -> dict:
    """Run (or resume) the seed001-ir pipeline (module docstring); returns bands per spectrum beside 001's."""
    from qdlab.store.files import write_text
    from qdlab.workflows.ir import HarmonicIRSettings, IRMDSettings, run_ir_harmonic, run_ir_md
    from qdlab.workflows.md import MDSettings, run_md

    if size not in (1, 2, 3):
        raise QdlabError("size must be 1 (Pb6S(OAc)10), 2 (seed 001's Pb19S6(OAc)26) or 3")
    o = Path(out)
    relaxed, calc, ph_dir = _prepare(o, size, engine, fmax, log)
    sources = ["seed001"] + ([dipole_model] if dipole_model else [])
    spectra: dict[str, dict] = {}
    for src in sources:
        tag = "model" if src == dipole_model else src
        d = o / f"ir_harmonic_{tag}"
        spectra[f"harmonic/{tag}"] = _cached(d / "ir_harmonic.json", lambda: run_ir_harmonic(
            ph_dir, d, HarmonicIRSettings(dipoles=src, fmin_cm1=0.0, fmax_cm1=4000.0)))
    if md_steps > 0:
        traj = o / "nve.extxyz"
        log(f"NVE {md_steps} steps × {timestep_fs} fs from {temperature_K} K velocities")
        run_md(relaxed, calc, MDSettings(ensemble="nve", temperature_K=temperature_K, timestep_fs=timestep_fs,
                                         steps=md_steps, interval=1, seed=0), trajectory=traj)
        for src in sources:
            tag = "model" if src == dipole_model else src
            d = o / f"ir_md_{tag}"
            spectra[f"md/{tag}"] = _cached(d / "ir_md.json", lambda: run_ir_md(
                traj, d, IRMDSettings(dipoles=src, resolution_cm1=resolution_cm1, fmin_cm1=0.0, fmax_cm1=4000.0)))
    rows = []
    for name, s in spectra.items():
        win, coord = s["bands"], s.get("bands_by_mode_character") or {}
        row = {"spectrum": name}
        for b in ("nu_s", "umbrella", "ch_bend", "nu_as"):  # the spectrum's maxima in the band windows
            row[b] = None if not win.get(b) else round(float(win[b]["position_cm1"]), 1)
        row["delta_nu"] = win.get("delta_nu_cm1")
        for b in ("nu_s", "nu_as"):  # harmonic only: centres of the COO-stretch coordinates over the modes
            if coord.get(b):
                row[f"{b}_coordinate"] = round(float(coord[b]["centre_cm1"]), 1)
        rows.append(row)
    summary = {"target": "seed001-ir", "formula": relaxed.get_chemical_formula(), "engine": engine, "size": size,
               "paper_cm1": PAPER, "rows": rows, "out": str(o)}
    write_text(o / "seed001_ir.json", json.dumps(summary, indent=2) + "\n")
    return summary
