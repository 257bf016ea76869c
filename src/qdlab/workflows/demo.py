"""The main job run by ``make demo`` / ``qdlab demo``.

1. Build a 3×3×3 CsPbBr3 nanocrystal capped with 50 % MA + 50 % BzO; write it (extended XYZ with
   all labels) and render a PNG.
2. Relax the bare 3×3×3 and compute its Γ-point phonon DOS with the default engine (CHGNet):
   6N = 1,134 force calls spread over ``workers`` processes (about 2 min on 2 cores); the same for
   the smallest capped model (1×1×1 + MA/BzO, 64 atoms, about 1 min).
3. The capped 3×3×3 (701 atoms, 4,206 force calls at ≈1.35 s each on one CPU core: ≈95 core-minutes)
   is relaxed and its DOS computed only with ``full=True`` or on a CUDA device; otherwise the
   report states the skip and the measured estimate.
4. M1/M2/M3 peak centres side by side, DOS plots and a comparison plot, report.md/report.json.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qdlab.build import PerovskiteRecipe, build, summary
from qdlab.report.plots import plot_dos_comparison, render_structure
from qdlab.store.files import write_atoms, write_text

DEMO_RECIPE = PerovskiteRecipe(composition="CsPbBr3", size="3", lattice=5.95, ligands=["MA:0.5", "BzO:0.5"], seed=0)
BARE_RECIPE = PerovskiteRecipe(composition="CsPbBr3", size="3", lattice=5.95, seed=0)


def _phonon_system(name: str, atoms, calc, out: Path, workers: int, engine_spec: dict,
                   log: Callable[[str], None], fmax: float, steps: int) -> dict:
    from qdlab.workflows.phonon_io import write_phonon_outputs
    from qdlab.workflows.phonons import phonons
    from qdlab.workflows.relax import relax

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # a cut of the cubic phase is a saddle point in the octahedral tilts: a seeded 0.02 Å
    # displacement lets L-BFGS leave it instead of keeping the symmetry (and imaginary modes)
    atoms = atoms.copy()
    atoms.positions += np.random.default_rng(0).normal(0.0, 0.02, atoms.positions.shape)
    res = relax(atoms, calc, fmax=fmax, steps=steps, trajectory=folder / "relax.traj")
    relaxed = res.atoms
    relaxed.constraints = []
    write_atoms(folder / "relaxed.extxyz", relaxed)
    log(f"[{name}] relaxed in {res.steps} steps, fmax {res.fmax_eV_A:.4f} eV/Å ({time.perf_counter() - t0:.0f} s)")
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 20 or done == total:
            last[0] = time.perf_counter()
            log(f"[{name}] Hessian: {done}/{total} displacements")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ph = phonons(relaxed, calc, checkpoint=folder / "hessian.ckpt", engine_name=json.dumps(engine_spec),
                     workers=workers, engine_spec=engine_spec, progress=progress)
    for w in caught:
        log(f"[{name}] warning: {w.message}")
    s = write_phonon_outputs(relaxed, ph, folder, title=f"{name}: {relaxed.get_chemical_formula(mode='hill')}")
    log(f"[{name}] {ph.n_modes} modes, {ph.n_imaginary} imaginary; peaks "
        + ", ".join(f"{k} {v:.1f}" for k, v in s["peaks_cm1"].items()) + f" cm⁻¹ ({ph.seconds:.0f} s)")
    return s | {"relax_steps": res.steps, "relax_converged": res.converged}


def run_demo(out: str | Path, log: Callable[[str], None] = print, *, full: bool = False, workers: int = 2,
             engine: str = "chgnet", device: str = "cpu", size: int = 3, fmax: float = 0.005) -> dict:
    """Run the demo into folder ``out``; returns the report as a dict (``size`` < 3 and a looser
    relaxation threshold ``fmax`` (eV/Å) for quick tests)."""
    from qdlab.engines import get_calculator

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    recipe = DEMO_RECIPE.model_copy(update={"size": str(size)})
    bare_recipe = BARE_RECIPE.model_copy(update={"size": str(size)})
    tag = f"{size}x{size}x{size}"
    capped = build(recipe)
    s = summary(capped)
    log(f"built {s['formula']} ({s['n_atoms']} atoms, charge {s['charge']}) in {time.perf_counter() - t0:.2f} s")
    structure = write_atoms(out / f"nc_{tag}_MA-BzO.extxyz", capped)
    picture = render_structure(capped, out / f"nc_{tag}_MA-BzO.png",
                               title=f"CsPbBr3 {tag}, 50 % MA + 50 % BzO: {s['formula']}")
    log(f"wrote {structure} and {picture}")

    engine_spec = {"name": engine, "device": device}
    calc = get_calculator(**engine_spec)
    import torch

    on_gpu = device != "cpu" and torch.cuda.is_available()
    systems = {f"bare_{tag}": build(bare_recipe)}
    if size > 1:
        # the smallest capped model (64 atoms, ~1 min) runs the capped pipeline end to end on any machine
        systems["MA-BzO_1x1x1"] = build(DEMO_RECIPE.model_copy(update={"size": "1"}))
    systems[f"MA-BzO_{tag}"] = capped
    always = {f"bare_{tag}"} | ({"MA-BzO_1x1x1"} if size > 1 else set())
    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for name, atoms in systems.items():
        if name not in always and not (full or on_gpu):
            a = atoms.copy()
            a.calc = calc
            a.get_forces()
            t1 = time.perf_counter()
            a.positions[0, 0] += 0.01
            a.get_forces()
            per_call = time.perf_counter() - t1
            est = 6 * len(atoms) * per_call / max(workers, 1) / 60
            skipped[name] = (f"skipped on CPU: {6 * len(atoms)} force calls × {per_call:.2f} s ≈ {est:.0f} min with "
                             f"{workers} workers; run `qdlab demo --full` or use --device cuda")
            log(f"[{name}] {skipped[name]}")
            continue
        results[name] = _phonon_system(name, atoms, calc, out, workers, engine_spec, log,
                                       fmax=fmax, steps=1500)

    if results:
        plot_dos_comparison({k: (v["dos"], v["peaks"]) for k, v in results.items()}, out / "dos_comparison.png",
                            title="Γ-point phonon DOS (CHGNet), per mode")
    table = ["| system | M1 (cm⁻¹) | M2 (cm⁻¹) | M3 (cm⁻¹) | modes | imaginary |", "|---|---|---|---|---|---|"]
    for name in systems:
        if name in results:
            p = results[name]["peaks_cm1"]
            table.append(f"| {name} | {p.get('M1', float('nan')):.1f} | {p.get('M2', float('nan')):.1f} | "
                         f"{p.get('M3', float('nan')):.1f} | {results[name]['n_modes']} | {results[name]['n_imaginary']} |")
        else:
            table.append(f"| {name} | – | – | – | – | {skipped[name]} |")
    for line in table:
        log(line)
    total = time.perf_counter() - t0
    report = {
        "recipe": recipe.model_dump(), "model": s, "engine": engine_spec,
        "phonons": {k: {kk: vv for kk, vv in v.items() if kk not in ("dos", "peaks")} for k, v in results.items()},
        "skipped": skipped, "seconds": round(total, 1),
        "files": {"structure": structure.name, "picture": picture.name},
    }
    lines = [
        "# qdlab demo report", "",
        f"Model: **{s['formula']}**, {s['n_atoms']} atoms, net charge {s['charge']} e "
        f"({', '.join(f'{k} {v}' for k, v in s['ligands'].items())}).", "",
        f"![structure]({picture.name})", "",
        "## Γ-point phonons (engine: CHGNet 0.3.0, central differences ±0.01 Å, σ = 3 cm⁻¹)", "",
        *table, "",
        *( [f"![DOS comparison](dos_comparison.png)", ""] if results else []),
        *[f"![{k}]({k}/dos.png)" for k in results], "",
        *(["Notes: the 1×1×1 capped model holds a single PbBr6 octahedron, so its M1–M3 windows do not "
            "describe nanocrystal bands; it runs the capped pipeline end to end within the demo's time. "
            "Imaginary modes of capped models are ligand librations (≥ 70 % ligand weight): flat torsional "
            "surfaces plus float32 force noise (≈1e-4 eV/Å over ±0.01 Å is ≈1e-2 eV/Å² in the Hessian, tens of "
            "cm⁻¹ for H-rich modes). Each model is displaced by a seeded 0.02 Å before L-BFGS "
            f"(fmax {fmax:g} eV/Å) "
            "so that it can leave the symmetric saddle of the cubic cut.", ""] if "MA-BzO_1x1x1" in results else []),
        f"Total time: {total:.0f} s.", "",
    ]
    write_text(out / "report.md", "\n".join(lines))
    write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    log(f"report: {out / 'report.md'} ({total:.0f} s)")
    return report
