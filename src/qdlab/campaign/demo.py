"""The README's main job (``make demo`` / ``qdlab demo``) as a small campaign.

Seed 000's question on a CPU: what do the ligands do to M1/M2/M3? Bare and capped nanocrystals of
the same size, side by side.

1. Build the capped CsPbBr3 nanocrystal (MA on surface A + BzO on surface X at ``coverage``); write
   it (extended XYZ with all labels) and render a PNG.
2. Run a campaign on a local Dask cluster (``workers`` processes): relax (seeded 0.02 Å rattle,
   L-BFGS to ``fmax``) → Γ phonons (central differences ±0.01 Å, the displacements of each model
   split over the workers) → M1/M2/M3 peaks, for the bare n×n×n cube and the capped n×n×n. The
   default (n = 2, 25 % MA + 25 % BzO: 64 and 177 atoms, ≈1,450 force calls) fits in about ten
   minutes on 2 cores. Seed 000's 3×3×3 pair with 50 % MA + BzO (189 and 701 atoms; the capped one
   4,206 force calls, ≈95 core-minutes with CHGNet on CPU) runs only with ``full=True`` or a CUDA
   device — otherwise the report states the skip with the cost model's estimate.
3. Results land in a store (``out/demo.db`` + ``out/demo_files``): a rerun resumes, finished tasks
   are not recomputed. From the store: M1/M2/M3 side by side with the ligand shifts, the DOS
   comparison plot, ``report.md``/``report.json`` and the self-contained ``report.html``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from qdlab.campaign.run import CampaignResult, Progress, plan_campaign, run_campaign
from qdlab.campaign.spec import CampaignSpec, spec_from_dict

_BASE = {"kind": "perovskite", "composition": "CsPbBr3", "lattice": 5.95, "seed": [0]}
CAPPED = ["MA", "BzO"]
#: seed 000's model: 3×3×3 with 50 % MA + 50 % BzO (with ``full`` or on a GPU)
SEED_SIZE, SEED_COVERAGE = 3, 0.5


def _pair(size: int, coverage: float) -> list[dict]:
    """Grids of the bare and the capped n×n×n at ``coverage`` (fraction of surface sites per ligand)."""
    return [_BASE | {"size": [str(size)], "ligands": [[]]},
            _BASE | {"size": [str(size)], "ligands": [CAPPED], "coverage": [coverage]}]


def demo_spec(out: str | Path, *, engine: str = "chgnet", device: str = "cpu", size: int = 2,
              coverage: float = 0.25, full: bool = False, workers: int = 2, fmax: float = 0.005) -> CampaignSpec:
    """The demo campaign's spec (store ``out/demo.db``, files ``out/demo_files``): bare and capped
    ``size``³ at ``coverage``, plus seed 000's 3×3×3 pair (50 %) with ``full`` or on CUDA; ``fmax`` in eV/Å."""
    import torch

    on_gpu = device != "cpu" and torch.cuda.is_available()
    grids = _pair(size, coverage)
    if (full or on_gpu) and (size, coverage) != (SEED_SIZE, SEED_COVERAGE):
        grids += _pair(SEED_SIZE, SEED_COVERAGE)
    out = Path(out).resolve()
    return spec_from_dict({
        "name": "demo", "store": str(out / "demo.db"), "files": str(out / "demo_files"), "grid": grids,
        "engines": [{"name": engine, "device": device}],
        "steps": [{"workflow": "relax", "fmax": fmax, "steps": 1500, "rattle_A": 0.02},
                  {"workflow": "phonons", "delta": 0.01}, {"workflow": "peaks"}],
        "execution": {"workers": workers}})


def _skipped_estimate(spec: CampaignSpec, workers: int) -> dict[str, str]:
    """Seed 000's capped 3×3×3 (50 %) when ``spec`` leaves it out (CPU without ``full``), with its
    estimated cost from the cost model."""
    if any(g.model_extra.get("size") == [str(SEED_SIZE)] and g.ligands == [CAPPED]
           and g.coverage == [SEED_COVERAGE] for g in spec.grid):
        return {}
    big = spec_from_dict(spec.model_dump() | {"grid": [_pair(SEED_SIZE, SEED_COVERAGE)[1]]})
    plan = plan_campaign(big)
    sec = plan.seconds(pending_only=False)
    calls = sum(c.force_calls for c in plan.costs.values())
    n = SEED_SIZE
    return {f"BzO/MA {n}x{n}x{n} (50 %)": (
        f"skipped on CPU: {calls} force calls ≈ {sec / 60:.0f} core-min ≈ {sec / 60 / max(workers, 1):.0f} min on "
        f"{workers} workers; run `qdlab demo --full` or use --device cuda")}


def _system_name(kvp: dict) -> str:
    """``bare 2x2x2`` or ``BzO/MA 2x2x2 (25 %)`` from a store row's labels."""
    name = f"{kvp.get('passivation')} {kvp.get('size')}"
    cov = str(kvp.get("coverage") or "")
    try:
        return name + (f" ({float(cov) * 100:g} %)" if cov and "," not in cov and float(cov) <= 1 else "")
    except ValueError:
        return name


def ligand_shifts(systems: list[dict]) -> dict[str, dict[str, float]]:
    """Peak shifts (cm⁻¹) of each capped system from the bare one of the same size: capped − bare."""
    bare = {s["size"]: s["peaks_cm1"] for s in systems if s["passivation"] == "bare"}
    return {s["name"]: {m: round(v - bare[s["size"]][m], 2) for m, v in s["peaks_cm1"].items()
                        if m in bare.get(s["size"], {})}
            for s in systems if s["passivation"] != "bare" and s["size"] in bare}


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
            "name": _system_name(r.kvp), "passivation": r.kvp.get("passivation"),
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
    shifts = ligand_shifts(systems)
    table = ["| system | atoms | M1 (cm⁻¹) | M2 (cm⁻¹) | M3 (cm⁻¹) | ΔM1 | ΔM2 | ΔM3 | modes | imaginary |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in systems:
        p, d = s["peaks_cm1"], shifts.get(s["name"], {})
        table.append(f"| {s['name']} | {s['n_atoms']} | " + " | ".join(
            f"{p[m]:.1f}" if m in p else "–" for m in ("M1", "M2", "M3")) + " | " + " | ".join(
            f"{d[m]:+.1f}" if m in d else "–" for m in ("M1", "M2", "M3")) + f" | {s['n_modes']} | {s['n_imaginary']} |")
    table += [f"| {k} | – | – | – | – | – | – | – | – | {v} |" for k, v in skipped.items()]
    lines = [
        "# qdlab demo report", "",
        f"Model: **{model['formula']}**, {model['n_atoms']} atoms, net charge {model['charge']} e "
        f"({', '.join(f'{k} {v}' for k, v in model['ligands'].items())}).", "",
        f"![structure]({picture})", "",
        f"## Γ-point phonons (engine: {engine}, central differences ±0.01 Å, σ = 3 cm⁻¹)", "",
        "ΔM = capped − bare of the same size (cm⁻¹). Seed 000 (DFT-fine-tuned MatterSim): ligands "
        "blueshift M1 and redshift M2, M3; the effect shrinks with size.", "",
        *table, ""]
    if systems:
        lines += ["![DOS comparison](dos_comparison.png)", ""]
    if any(s["passivation"] != "bare" for s in systems):
        lines += ["Notes: imaginary modes of capped models are ligand librations: flat torsional surfaces plus "
                  "float32 force noise (≈1e-4 eV/Å over ±0.01 Å is ≈1e-2 eV/Å² in the Hessian, tens of cm⁻¹ for "
                  "H-rich modes). Each model is displaced by a seeded 0.02 Å before L-BFGS "
                  f"(fmax {fmax:g} eV/Å) so that it can leave the symmetric saddle of the cubic cut.", ""]
    lines += ["Full results: `report.html` (self-contained), store `demo.db` + `demo_files/`.", "",
              f"Total time: {seconds:.0f} s.", ""]
    return "\n".join(lines)


def run_demo(out: str | Path, log: Callable[[str], None] = print, *, full: bool = False, workers: int = 2,
             engine: str = "chgnet", device: str = "cpu", size: int = 2, coverage: float = 0.25,
             fmax: float = 0.005, progress: Progress | None = None) -> dict:
    """Run (or resume) the demo into folder ``out``; returns the report as a dict.

    ``size`` (unit cells) and ``coverage`` (fraction of surface sites per ligand) of the bare/capped
    pair; ``size`` 1 and a looser ``fmax`` (eV/Å) make quick tests. Writes ``nc_<n>x<n>x<n>_MA-BzO.extxyz``
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
                           "size": str(size), "ligands": [f"{n}:{coverage:g}" for n in CAPPED]})
    model = summary(capped)
    log(f"built {model['formula']} ({model['n_atoms']} atoms, charge {model['charge']}) in "
        f"{time.perf_counter() - t0:.2f} s")
    structure = write_atoms(out / f"nc_{tag}_MA-BzO.extxyz", capped)
    picture = render_structure(capped, out / f"nc_{tag}_MA-BzO.png",
                               title=f"CsPbBr3 {tag}, {coverage * 100:g} % MA + {coverage * 100:g} % BzO: "
                                     f"{model['formula']}")
    log(f"wrote {structure} and {picture}")

    spec = demo_spec(out, engine=engine, device=device, size=size, coverage=coverage, full=full, workers=workers,
                     fmax=fmax)
    skipped = _skipped_estimate(spec, workers)
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
    shifts = ligand_shifts(systems)
    for s in systems:
        log(f"{s['name']}: " + ", ".join(f"{m} {v:.1f}" for m, v in s["peaks_cm1"].items())
            + f" cm⁻¹; {s['n_modes']} modes, {s['n_imaginary']} imaginary"
            + ("; shift vs bare " + ", ".join(f"Δ{m} {d:+.1f}" for m, d in shifts[s["name"]].items())
               if s["name"] in shifts else ""))
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
              "shifts_cm1": shifts, "skipped": skipped, "seconds": round(seconds, 1),
              "files": {"structure": structure.name, "picture": picture.name, "report_html": html.name,
                        "store": Path(spec.store).name}}
    write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    log(f"report: {html} and {out / 'report.md'} ({seconds:.0f} s)")
    return report
