"""The README's main job (``make demo`` / ``qdlab demo``) as a small campaign.

1. Build the 3×3×3 CsPbBr3 nanocrystal capped with 50 % MA + 50 % BzO; write it (extended XYZ
   with all labels) and render a PNG.
2. Run a campaign on a local Dask cluster (``workers`` processes): relax (seeded 0.02 Å rattle,
   L-BFGS to ``fmax``) → Γ phonons (central differences ±0.01 Å, the displacements of each model
   split over the workers) → M1/M2/M3 peaks, for the bare n×n×n cube (189 atoms, 1,134 force calls)
   and the smallest capped model (1×1×1 + MA/BzO, 64 atoms) always; the capped n×n×n (701 atoms,
   4,206 force calls, ≈95 core-minutes with CHGNet on CPU) only with ``full=True`` or a CUDA
   device — otherwise the report states the skip with the cost model's estimate.
3. Results land in a store (``out/demo.db`` + ``out/demo_files``): a rerun resumes, finished tasks
   are not recomputed. From the store: M1/M2/M3 side by side, the DOS comparison plot,
   ``report.md``/``report.json`` and the self-contained ``report.html``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from qdlab.campaign.run import CampaignResult, Progress, plan_campaign, run_campaign
from qdlab.campaign.spec import CampaignSpec, spec_from_dict

_BASE = {"kind": "perovskite", "composition": "CsPbBr3", "lattice": 5.95, "seed": [0], "coverage": [0.5]}
CAPPED = ["MA", "BzO"]


def demo_spec(out: str | Path, *, engine: str = "chgnet", device: str = "cpu", size: int = 3, full: bool = False,
              workers: int = 2, fmax: float = 0.005) -> CampaignSpec:
    """The demo campaign's spec (store ``out/demo.db``, files ``out/demo_files``); ``fmax`` in eV/Å."""
    import torch

    on_gpu = device != "cpu" and torch.cuda.is_available()
    grids = [_BASE | {"size": [str(size)], "ligands": [[]]}]
    capped_sizes = ["1"] if size > 1 else []
    if full or on_gpu or size == 1:
        capped_sizes.append(str(size))
    if capped_sizes:
        grids.append(_BASE | {"size": capped_sizes, "ligands": [CAPPED]})
    out = Path(out).resolve()
    return spec_from_dict({
        "name": "demo", "store": str(out / "demo.db"), "files": str(out / "demo_files"), "grid": grids,
        "engines": [{"name": engine, "device": device}],
        "steps": [{"workflow": "relax", "fmax": fmax, "steps": 1500, "rattle_A": 0.02},
                  {"workflow": "phonons", "delta": 0.01}, {"workflow": "peaks"}],
        "execution": {"workers": workers}})


def _skipped_estimate(spec: CampaignSpec, size: int, workers: int) -> dict[str, str]:
    """The capped n×n×n left out of ``spec`` (CPU without ``full``), with its estimated cost."""
    if size == 1 or any(str(size) in g.model_extra.get("size", []) and g.ligands == [CAPPED] for g in spec.grid):
        return {}
    big = spec_from_dict(spec.model_dump() | {"grid": [_BASE | {"size": [str(size)], "ligands": [CAPPED]}]})
    plan = plan_campaign(big)
    sec = plan.seconds(pending_only=False)
    calls = sum(c.force_calls for c in plan.costs.values())
    return {f"BzO/MA {size}x{size}x{size}": (
        f"skipped on CPU: {calls} force calls ≈ {sec / 60:.0f} core-min ≈ {sec / 60 / max(workers, 1):.0f} min on "
        f"{workers} workers; run `qdlab demo --full` or use --device cuda")}


def demo_systems(store, campaign: str = "demo") -> list[dict]:
    """One dict per finished model of the demo campaign: labels, relaxation, phonon counts, peaks
    (cm⁻¹) and the folder of its peaks step (``dos.csv``/``peaks.json``), smallest model first."""
    from qdlab.store.results import DONE

    rows = {r.key: r for r in store.rows(campaign=campaign) if r.status == DONE}
    out = []
    for r in rows.values():
        if r.kvp.get("workflow") != "peaks":
            continue
        ph = rows.get(r.data.get("parent"))
        rx = rows.get(ph.data.get("parent")) if ph is not None else None
        out.append({
            "name": f"{r.kvp.get('passivation')} {r.kvp.get('size')}", "passivation": r.kvp.get("passivation"),
            "size": r.kvp.get("size"), "n_atoms": r.kvp.get("n_atoms"),
            "relax_steps": rx.results.get("relax_steps") if rx else None,
            "fmax_eV_A": rx.results.get("fmax_eV_A") if rx else None,
            "n_modes": ph.results.get("n_modes") if ph else None,
            "n_imaginary": ph.results.get("n_imaginary") if ph else None,
            "lowest_cm1": ph.results.get("lowest_cm1") if ph else None,
            "peaks_cm1": {m: r.results[f"{m}_cm1"] for m in ("M1", "M2", "M3") if f"{m}_cm1" in r.results},
            "folder": str(store.path(r.files["peaks"]).parent)})
    return sorted(out, key=lambda s: (s["n_atoms"] or 0, s["name"]))


def _markdown(model: dict, picture: str, systems: list[dict], skipped: dict, fmax: float, engine: str,
              seconds: float) -> str:
    table = ["| system | atoms | M1 (cm⁻¹) | M2 (cm⁻¹) | M3 (cm⁻¹) | modes | imaginary |",
             "|---|---|---|---|---|---|---|"]
    for s in systems:
        p = s["peaks_cm1"]
        table.append(f"| {s['name']} | {s['n_atoms']} | " + " | ".join(
            f"{p[m]:.1f}" if m in p else "–" for m in ("M1", "M2", "M3")) + f" | {s['n_modes']} | {s['n_imaginary']} |")
    table += [f"| {k} | – | – | – | – | – | {v} |" for k, v in skipped.items()]
    lines = [
        "# qdlab demo report", "",
        f"Model: **{model['formula']}**, {model['n_atoms']} atoms, net charge {model['charge']} e "
        f"({', '.join(f'{k} {v}' for k, v in model['ligands'].items())}).", "",
        f"![structure]({picture})", "",
        f"## Γ-point phonons (engine: {engine}, central differences ±0.01 Å, σ = 3 cm⁻¹)", "",
        *table, ""]
    if systems:
        lines += ["![DOS comparison](dos_comparison.png)", ""]
    if any(s["passivation"] != "bare" and s["size"] == "1x1x1" for s in systems):
        lines += ["Notes: the 1×1×1 capped model holds a single PbBr6 octahedron, so its M1–M3 windows do not "
                  "describe nanocrystal bands; it runs the capped pipeline end to end within the demo's time. "
                  "Imaginary modes of capped models are ligand librations (≥ 70 % ligand weight): flat torsional "
                  "surfaces plus float32 force noise (≈1e-4 eV/Å over ±0.01 Å is ≈1e-2 eV/Å² in the Hessian, tens "
                  "of cm⁻¹ for H-rich modes). Each model is displaced by a seeded 0.02 Å before L-BFGS "
                  f"(fmax {fmax:g} eV/Å) so that it can leave the symmetric saddle of the cubic cut.", ""]
    lines += ["Full results: `report.html` (self-contained), store `demo.db` + `demo_files/`.", "",
              f"Total time: {seconds:.0f} s.", ""]
    return "\n".join(lines)


def run_demo(out: str | Path, log: Callable[[str], None] = print, *, full: bool = False, workers: int = 2,
             engine: str = "chgnet", device: str = "cpu", size: int = 3, fmax: float = 0.005,
             progress: Progress | None = None) -> dict:
    """Run (or resume) the demo into folder ``out``; returns the report as a dict.

    ``size`` < 3 and a looser ``fmax`` (eV/Å) make quick tests. Writes ``nc_<n>x<n>x<n>_MA-BzO.extxyz``
    and ``.png``, ``demo.db`` + ``demo_files/``, ``dos_comparison.png``, ``report.md``,
    ``report.json`` and ``report.html``.
    """
    from qdlab.build import summary
    from qdlab.campaign.spec import build_recipe
    from qdlab.report.html import figure_html, write_report
    from qdlab.report.plots import plot_dos_comparison, render_structure
    from qdlab.store.files import write_atoms, write_text
    from qdlab.store.results import ResultStore
    from qdlab.workflows.phonon_io import load_dos_csv, load_peaks

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tag = f"{size}x{size}x{size}"
    capped = build_recipe({"kind": "perovskite", "composition": "CsPbBr3", "lattice": 5.95, "seed": 0,
                           "size": str(size), "ligands": [f"{n}:0.5" for n in CAPPED]})
    model = summary(capped)
    log(f"built {model['formula']} ({model['n_atoms']} atoms, charge {model['charge']}) in "
        f"{time.perf_counter() - t0:.2f} s")
    structure = write_atoms(out / f"nc_{tag}_MA-BzO.extxyz", capped)
    picture = render_structure(capped, out / f"nc_{tag}_MA-BzO.png",
                               title=f"CsPbBr3 {tag}, 50 % MA + 50 % BzO: {model['formula']}")
    log(f"wrote {structure} and {picture}")

    spec = demo_spec(out, engine=engine, device=device, size=size, full=full, workers=workers, fmax=fmax)
    skipped = _skipped_estimate(spec, size, workers)
    for name, why in skipped.items():
        log(f"[{name}] {why}")
    res: CampaignResult = run_campaign(spec, workers=workers, progress=progress, log=log)
    for f in res.failures:
        log(f"failed: {f['step']} {f.get('passivation')} {f.get('size')}: {f['error']}")

    store = ResultStore(spec.store, spec.files)
    systems = demo_systems(store)
    comparison = None
    if systems:
        comparison = plot_dos_comparison(
            {s["name"]: (load_dos_csv(s["folder"]), load_peaks(s["folder"])) for s in systems},
            out / "dos_comparison.png", title=f"Γ-point phonon DOS ({engine}), per mode")
    for s in systems:
        log(f"{s['name']}: " + ", ".join(f"{m} {v:.1f}" for m, v in s["peaks_cm1"].items())
            + f" cm⁻¹; {s['n_modes']} modes, {s['n_imaginary']} imaginary")
    seconds = time.perf_counter() - t0
    write_text(out / "report.md", _markdown(model, picture.name, systems, skipped, fmax, engine, seconds))
    extra = []
    if comparison is not None:
        extra.append("<h2>Demo: DOS comparison</h2>" + figure_html(comparison, "total DOS per mode; dotted: M1/M2/M3"))
    if skipped:
        extra.append("<h2>Skipped</h2><ul>" + "".join(f"<li>{k}: {v}</li>" for k, v in skipped.items()) + "</ul>")
    html = out / "report.html"
    write_report(store, html, campaign="demo", title="qdlab demo: bare vs MA/BzO-capped CsPbBr3, Γ phonons",
                 extra_sections=extra or None)
    report = {"model": model, "engine": {"name": engine, "device": device}, "fmax_eV_A": fmax,
              "campaign": res.to_dict(),
              "phonons": {s["name"]: {k: v for k, v in s.items() if k != "folder"} for s in systems},
              "skipped": skipped, "seconds": round(seconds, 1),
              "files": {"structure": structure.name, "picture": picture.name, "report_html": html.name,
                        "store": Path(spec.store).name}}
    write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    log(f"report: {html} and {out / 'report.md'} ({seconds:.0f} s)")
    return report
