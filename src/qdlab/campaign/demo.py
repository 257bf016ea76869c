"""The README's main job as a small campaign: bare vs MA/BzO-capped CsPbBr3, relax + Γ phonons +
M1/M2/M3 peaks on a local Dask cluster, results in a store, ending in the HTML report.

Systems: the bare n×n×n cube (default 3×3×3, 189 atoms, 1,134 force calls) and the smallest
capped model (1×1×1 with 50 % MA + 50 % BzO, 64 atoms) always; the capped n×n×n (701 atoms,
4,206 force calls, ≈95 core-minutes with CHGNet on CPU) only with ``full=True`` or a CUDA device —
its displacements are then split over the workers. A rerun resumes from the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qdlab.campaign.run import CampaignResult, plan_campaign, run_campaign
from qdlab.campaign.spec import CampaignSpec, spec_from_dict


def demo_spec(out: str | Path, *, engine: str = "chgnet", device: str = "cpu", size: int = 3, full: bool = False,
              workers: int = 2) -> CampaignSpec:
    """The demo campaign's spec (store ``out/demo.db``, files ``out/demo_files``)."""
    import torch

    on_gpu = device != "cpu" and torch.cuda.is_available()
    base = {"kind": "perovskite", "composition": "CsPbBr3", "lattice": 5.95, "seed": [0], "coverage": [0.5]}
    grids = [base | {"size": [str(size)], "ligands": [[]]}]
    capped_sizes = ["1"] if size > 1 else []
    if full or on_gpu or size == 1:
        capped_sizes.append(str(size))
    if capped_sizes:
        grids.append(base | {"size": capped_sizes, "ligands": [["MA", "BzO"]]})
    out = Path(out).resolve()
    return spec_from_dict({
        "name": "demo", "store": str(out / "demo.db"), "files": str(out / "demo_files"), "grid": grids,
        "engines": [{"name": engine, "device": device}],
        "steps": [{"workflow": "relax", "fmax": 0.005, "steps": 1500, "rattle_A": 0.02},
                  {"workflow": "phonons", "delta": 0.01}, {"workflow": "peaks"}],
        "execution": {"workers": workers}})


def run_demo_campaign(out: str | Path, *, engine: str = "chgnet", device: str = "cpu", size: int = 3,
                      full: bool = False, workers: int = 2, log: Callable[[str], None] = print,
                      progress: Callable[[int, int, dict | None], None] | None = None) -> dict:
    """Run (or resume) the demo campaign into ``out`` and write ``out/report.html``.

    Returns ``{"campaign": CampaignResult dict, "peaks_cm1": {system: {M1, M2, M3}},
    "skipped": {system: reason}, "report": path, "store": path}``.
    """
    from qdlab.report.html import write_report
    from qdlab.store.results import DONE, ResultStore

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = demo_spec(out, engine=engine, device=device, size=size, full=full, workers=workers)
    skipped = {}
    if size > 1 and not any(g.model_extra.get("size") == [str(size)] and g.ligands == [["MA", "BzO"]]
                            for g in spec.grid):
        tag = f"{size}x{size}x{size}"
        big = spec_from_dict(spec.model_dump() | {"grid": [{"kind": "perovskite", "composition": "CsPbBr3",
                                                             "lattice": 5.95, "size": [str(size)], "seed": [0],
                                                             "ligands": [["MA", "BzO"]], "coverage": [0.5]}]})
        plan = plan_campaign(big)
        sec = plan.seconds(pending_only=False)
        skipped[f"BzO/MA {tag}"] = (f"skipped on CPU: {sum(c.force_calls for c in plan.costs.values())} force calls ≈ "
                                    f"{sec / 60:.0f} core-min ≈ {sec / 60 / max(workers, 1):.0f} min on {workers} "
                                    f"workers; use full=True or a CUDA device")
        log(f"[BzO/MA {tag}] {skipped[f'BzO/MA {tag}']}")
    res: CampaignResult = run_campaign(spec, workers=workers, progress=progress, log=log)
    rs = ResultStore(spec.store, spec.files)
    peaks = {}
    for r in rs.rows(campaign="demo", workflow="peaks"):
        if r.status == DONE:
            peaks[f"{r.kvp.get('passivation')} {r.kvp.get('size')}"] = {
                m: r.results.get(f"{m}_cm1") for m in ("M1", "M2", "M3")}
    for name, p in sorted(peaks.items()):
        log(f"{name}: " + ", ".join(f"{m} {v:.1f}" for m, v in p.items() if v is not None) + " cm⁻¹")
    report = out / "report.html"
    notes = "".join(f"<li>{k}: {v}</li>" for k, v in skipped.items())
    write_report(rs, report, campaign="demo", title="qdlab demo: bare vs MA/BzO-capped CsPbBr3, Γ phonons",
                 extra_sections=[f"<h2>Skipped</h2><ul>{notes}</ul>"] if notes else None)
    log(f"report: {report}")
    return {"campaign": res.to_dict(), "peaks_cm1": peaks, "skipped": skipped, "report": str(report),
            "store": spec.store}
