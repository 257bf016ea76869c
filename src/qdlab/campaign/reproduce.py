"""Reproduce published figures and tables with a campaign, printing our numbers beside the paper's.

Targets (SCIENCE.md §4–§6; the published numbers are quoted from the seed papers):

- ``seed000-fig5``: Γ-phonon M1/M2/M3 centres vs size for bare, MA, BzO and BzO/MA (50 %) CsPbBr3
  cubes (paper: 3×3×3 … 7×7×7, fine-tuned MatterSim). Published: M2 ≈ 100 and M3 ≈ 129 cm⁻¹;
  ligands redshift M2/M3 and blueshift M1, anionic (BzO, BzO/MA) more than cationic (MA); the
  shifts shrink with size.
- ``seed000-fig7``: Pb RMSF distributions of 3×3×3 CsPbBr3 capped with PhS/MA, BzO/MA, PhP/MA
  (50 %) from 40 ps NVT at 300 K (first 10 ps discarded). Published: BzO/MA has the lowest mean
  and the narrowest distribution.
- ``seed004-rmsf-depth``: RMSF of Br by depth in a bare 2.9 nm (5×5×5, a = 5.87 Å) CsPbBr3 NC at
  300 K. Published: surface Br ≈ 40 % more mobile than Br 1.5 unit cells deep.

Sizes can be reduced (``sizes=[1, 2]``) to what a laptop can do and ``quick`` shortens the
relaxations and MD; the trends are checked and printed either way, with the caveat that tiny
models and short runs are not the paper's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qdlab.campaign.run import run_campaign
from qdlab.campaign.spec import CampaignSpec, spec_from_dict
from qdlab.errors import QdlabError
from qdlab.store.results import DONE, ResultStore

PUBLISHED_FIG5 = {"M2_cm1": 100.0, "M3_cm1": 129.0}
ANIONIC = {"BzO", "BzO/MA", "PhS", "PhP", "MA/PhS", "MA/PhP"}


@dataclass(frozen=True)
class Target:
    """A reproducible figure/table: description, default sizes, spec builder, summariser."""

    description: str
    sizes: tuple[int, ...]
    spec: Callable[..., dict]
    summary: Callable[[list, dict], dict]


def _fig5_spec(sizes, engine, quick, passivations=None) -> dict:
    ligs = {"bare": [], "MA": ["MA"], "BzO": ["BzO"], "BzO/MA": ["MA", "BzO"]}
    chosen = passivations or list(ligs)
    unknown = set(chosen) - set(ligs)
    if unknown:
        raise QdlabError(f"seed000-fig5 passivations are {', '.join(ligs)}, not {', '.join(sorted(unknown))}")
    return {"name": "seed000-fig5",
            "grid": [{"kind": "perovskite", "composition": "CsPbBr3", "lattice": 5.95, "size": [str(s) for s in sizes],
                      "ligands": [ligs[p] for p in chosen], "coverage": [0.5], "seed": [0]}],
            "engines": [{"name": engine}],
            "steps": [{"workflow": "relax", "fmax": 0.05 if quick else 0.005, "steps": 40 if quick else 1500,
                       "rattle_A": 0.02},
                      {"workflow": "phonons", "delta": 0.01}, {"workflow": "peaks"}]}


def _fig7_spec(sizes, engine, quick, passivations=None) -> dict:
    ligs = {"MA/PhS": ["MA", "PhS"], "BzO/MA": ["MA", "BzO"], "MA/PhP": ["MA", "PhP"]}
    chosen = passivations or list(ligs)
    unknown = set(chosen) - set(ligs)
    if unknown:
        raise QdlabError(f"seed000-fig7 passivations are {', '.join(ligs)}, not {', '.join(sorted(unknown))}")
    md = ({"steps": 40, "interval": 4} if quick else {"steps": 40000, "interval": 50})
    return {"name": "seed000-fig7",
            "grid": [{"kind": "perovskite", "composition": "CsPbBr3", "lattice": 5.95, "size": [str(s) for s in sizes],
                      "ligands": [ligs[p] for p in chosen], "coverage": [0.5], "seed": [0]}],
            "engines": [{"name": engine}],
            "steps": [{"workflow": "relax", "fmax": 0.1 if quick else 0.01, "steps": 20 if quick else 1000},
                      {"workflow": "md", "temperature_K": 300.0, "timestep_fs": 1.0, "friction_ps": 20.0, **md},
                      {"workflow": "rmsf", "skip_ps": 0.0 if quick else 10.0}]}


def _depth_spec(sizes, engine, quick, passivations=None) -> dict:
    md = ({"steps": 60, "interval": 5} if quick else {"steps": 20000, "interval": 50})
    return {"name": "seed004-rmsf-depth",
            "grid": [{"kind": "perovskite", "composition": "CsPbBr3", "lattice": 5.87, "size": [str(s) for s in sizes],
                      "seed": [0]}],
            "engines": [{"name": engine}],
            "steps": [{"workflow": "relax", "fmax": 0.1 if quick else 0.01, "steps": 20 if quick else 1000},
                      {"workflow": "md", "temperature_K": 300.0, "timestep_fs": 1.0, "friction_ps": 20.0, **md},
                      {"workflow": "rmsf", "skip_ps": 0.0 if quick else 2.0}]}


def _rows(store: ResultStore, campaign: str, workflow: str) -> list:
    return [r for r in store.rows(campaign=campaign, workflow=workflow) if r.status == DONE]


def _fig5_summary(rows: list, ctx: dict) -> dict:
    table: dict[tuple[int, str], dict] = {}
    for r in rows:
        n = int(str(r.kvp.get("size")).split("x")[0])
        table[(n, r.kvp.get("passivation"))] = {m: r.results.get(f"{m}_cm1", math.nan) for m in ("M1", "M2", "M3")}
    sizes = sorted({n for n, _ in table})
    out_rows, checks = [], []
    for (n, p), v in sorted(table.items(), key=lambda kv: (kv[0][0], kv[0][1] != "bare", kv[0][1])):
        bare = table.get((n, "bare"))
        d = {m: (v[m] - bare[m]) if bare else math.nan for m in v}
        out_rows.append([f"{n}x{n}x{n}", f"{n * 0.595:.2f}", p, *(f"{v[m]:.1f}" for m in ("M1", "M2", "M3")),
                         *(f"{d[m]:+.1f}" if p != "bare" and np.isfinite(d[m]) else "–" for m in ("M1", "M2", "M3")),
                         "M2≈100, M3≈129" if p == "bare" else "M1 ↑, M2 ↓, M3 ↓"])
    for n in sizes:
        bare = table.get((n, "bare"))
        if not bare:
            continue
        for p in sorted({p for m, p in table if m == n and p != "bare"}):
            v = table[(n, p)]
            ok1, ok2, ok3 = v["M1"] > bare["M1"], v["M2"] < bare["M2"], v["M3"] < bare["M3"]
            checks.append(f"{n}x{n}x{n} {p}: M1 blueshift {'yes' if ok1 else 'NO'}, M2 redshift {'yes' if ok2 else 'NO'}, "
                          f"M3 redshift {'yes' if ok3 else 'NO'} (paper: yes, yes, yes)")
        an = [table[(n, p)] for p in ANIONIC if (n, p) in table]
        if an and (n, "MA") in table:
            shift = lambda v: abs(v["M2"] - bare["M2"]) + abs(v["M3"] - bare["M3"])  # noqa: E731
            bigger = np.mean([shift(v) for v in an]) > shift(table[(n, "MA")])
            checks.append(f"{n}x{n}x{n}: anionic M2/M3 redshift larger than MA: {'yes' if bigger else 'NO'} (paper: yes)")
    b = [n for n in sizes if (n, "bare") in table]
    if len(b) >= 2:
        capped = [p for p in {p for _, p in table} if p != "bare"]
        for p in sorted(capped):
            if (b[0], p) in table and (b[-1], p) in table:
                s0 = abs(table[(b[0], p)]["M3"] - table[(b[0], "bare")]["M3"])
                s1 = abs(table[(b[-1], p)]["M3"] - table[(b[-1], "bare")]["M3"])
                checks.append(f"{p}: M3 shift shrinks from n={b[0]} to n={b[-1]}: {'yes' if s1 < s0 else 'NO'} "
                              f"({s0:.1f} → {s1:.1f} cm⁻¹; paper: yes)")
    if min(sizes, default=3) < 3:
        checks.append("note: cubes below 3×3×3 hold mostly surface; the paper's models are 3×3×3 to 7×7×7")
    return {"columns": ["size", "edge (nm)", "passivation", "M1", "M2", "M3", "ΔM1", "ΔM2", "ΔM3", "published"],
            "rows": out_rows, "checks": checks, "published": PUBLISHED_FIG5,
            "data": {f"{n}|{p}": v for (n, p), v in table.items()}}


def _rmsf_values(store: ResultStore, r) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from qdlab.analysis.rmsf import NO_DEPTH, load_rmsf_table

    rho, sym, depth = load_rmsf_table(store.path(r.files["rmsf"]))
    return rho, sym, depth if depth is not None else np.full(len(rho), NO_DEPTH)


def _fig7_summary(rows: list, ctx: dict) -> dict:
    store = ctx["store"]
    stats = {}
    for r in rows:
        rho, sym, _ = _rmsf_values(store, r)
        pb = rho[sym == "Pb"]
        stats[(r.kvp.get("size"), r.kvp.get("passivation"))] = (float(pb.mean()), float(pb.std()), len(pb))
    out_rows, checks = [], []
    for (size, p), (m, s, n) in sorted(stats.items()):
        out_rows.append([size, p, n, f"{m:.4f}", f"{s:.4f}", "lowest, narrowest" if p == "BzO/MA" else "higher, broader"])
    for size in sorted({s for s, _ in stats}):
        sub = {p: v for (s, p), v in stats.items() if s == size}
        if "BzO/MA" in sub and len(sub) > 1:
            low = min(sub, key=lambda p: sub[p][0]) == "BzO/MA"
            narrow = min(sub, key=lambda p: sub[p][1]) == "BzO/MA"
            checks.append(f"{size}: BzO/MA lowest mean Pb RMSF: {'yes' if low else 'NO'}; narrowest: "
                          f"{'yes' if narrow else 'NO'} (paper: yes, yes)")
    if ctx.get("quick"):
        checks.append("note: --quick runs a few dozen MD steps; the paper averages 30 ps after 10 ps equilibration")
    return {"columns": ["size", "passivation", "Pb atoms", "mean RMSF (Å)", "std (Å)", "published"],
            "rows": out_rows, "checks": checks, "published": {"BzO/MA": "lowest mean, narrowest"},
            "data": {f"{s}|{p}": v for (s, p), v in stats.items()}}


def _depth_summary(rows: list, ctx: dict) -> dict:
    store = ctx["store"]
    out_rows, checks, data = [], [], {}
    for r in rows:
        rho, sym, depth = _rmsf_values(store, r)
        br = sym == "Br"
        levels = sorted(int(d) for d in np.unique(depth[br]) if d >= 0)
        means = {d: float(rho[br & (depth == d)].mean()) for d in levels}
        data[r.kvp.get("size")] = means
        for d in levels:
            out_rows.append([r.kvp.get("size"), f"{d / 2:.1f}", int((br & (depth == d)).sum()), f"{means[d]:.4f}",
                             f"{means[d] / means[levels[0]]:.2f}" if levels else "",
                             "surface ≈ 1.4 × (1.5 uc deep)" if d in (0, 3) else ""])
        deep = 3 if 3 in means else max(means)
        if deep != 0:
            ratio = means[0] / means[deep]
            checks.append(f"{r.kvp.get('size')}: surface / {deep / 2:.1f}-unit-cell-deep Br RMSF = {ratio:.2f} "
                          f"(paper: ≈ 1.4 at 1.5 unit cells)")
    return {"columns": ["size", "depth (unit cells)", "Br atoms", "mean RMSF (Å)", "÷ surface", "published"],
            "rows": out_rows, "checks": checks, "published": {"surface/deep(1.5 uc)": 1.4}, "data": data}


TARGETS: dict[str, Target] = {
    "seed000-fig5": Target("M1/M2/M3 centres vs size, bare vs MA/BzO/BzO-MA capped CsPbBr3 (Γ phonons)",
                           (3, 4, 5, 6, 7), _fig5_spec, _fig5_summary),
    "seed000-fig7": Target("Pb RMSF distributions of PhS/MA, BzO/MA, PhP/MA capped 3×3×3 CsPbBr3 (300 K MD)",
                           (3,), _fig7_spec, _fig7_summary),
    "seed004-rmsf-depth": Target("Br RMSF by depth in a bare 2.9 nm CsPbBr3 NC (300 K MD)", (5,), _depth_spec,
                                 _depth_summary),
}
_SUMMARY_STEP = {"seed000-fig5": "peaks", "seed000-fig7": "rmsf", "seed004-rmsf-depth": "rmsf"}


def _library_targets() -> dict[str, tuple[str, Callable[..., dict]]]:
    """Targets run by a library function instead of a campaign (no campaign step for them yet)."""
    from qdlab.campaign import reproduce_binding as rb
    from qdlab.campaign import seed003_excitons as s3
    from qdlab.campaign.seed001_ir import reproduce_seed001_ir
    from qdlab.campaign.seed004_table import reproduce_table_s1

    return {"seed001-ir": ("acetate IR bands of OAc-capped PbS (relax → Γ modes → harmonic IR with seed 001 charges) "
                           "beside seed 001's ranges; --size 2 is seed 001's Pb19S6(OAc)26",
                           lambda out, sizes, engine, quick, passivations, log, progress: reproduce_seed001_ir(
                               out, size=(sizes or (1,))[0], engine=engine, fmax=0.05 if quick else 0.01,
                               log=log or (lambda m: None))),
            "seed000-figS6": ("PhP/BzO/PhS binding energies on the MA-capped 2×2×3 CsPbBr3 slab ± committee spread",
                              lambda out, sizes, engine, quick, passivations, log, progress: rb.reproduce_figs6(
                                  out, engine=engine if ":" in engine else f"{engine}:0.3.0", quick=quick, log=log,
                                  progress=progress)),
            "seed000-fig6": ("M1 of PhS/MA, BzO/MA, PhP/MA vs bare (50 %) ± committee spread",
                             lambda out, sizes, engine, quick, passivations, log, progress: rb.reproduce_fig6(
                                 out, sizes=sizes or (1,), engine=engine if ":" in engine else f"{engine}:0.3.0",
                                 systems=(["bare", *passivations] if passivations else None), quick=quick, log=log)),
            s3.TARGET: ("CsPbI3 exciton fine structure (pseudopotential states + BSE) of classical-FF-relaxed cubic/"
                        "orthorhombic cubes and a cuboid; --sizes cube edges, --passivations shapes "
                        "(cubic,orthorhombic,cuboid), --spacing Bohr; the engine is always the seed's force field",
                        lambda out, sizes, engine, quick, passivations, log, progress, spacing_B=None:
                        s3.reproduce_seed003(out, s3.settings_for(sizes, quick, passivations, spacing_B), log=log,
                                             progress=progress)),
            "seed004-tableS1": ("seed 004 Table S1: S(2/7/17 meV) and Γ_PL(300 K) vs size, CsPbBr3/CsCaBr3 core/shell "
                                "(3×3×3) and frozen shells on the largest cube (harmonic route, TB gap gradient); "
                                "--sizes 1,2 by default, the paper's 3,4,5,6,7 on a cluster",
                                lambda out, sizes, engine, quick, passivations, log, progress: reproduce_table_s1(
                                    out, sizes=sizes, engine=engine, quick=quick, log=log or (lambda m: None)))}


def target_spec(target: str, out: str | Path, *, sizes=None, engine: str = "chgnet", quick: bool = False,
                workers: int = 2, scheduler: str | None = None, store: str | None = None,
                passivations: list[str] | None = None) -> CampaignSpec:
    """The campaign spec behind a target (store ``out/<target>.db`` unless ``store`` is given)."""
    if target not in TARGETS:
        raise QdlabError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    t = TARGETS[target]
    sizes = list(sizes or t.sizes)
    if not sizes or any(s < 1 for s in sizes):
        raise QdlabError("sizes must be positive cube edges in unit cells, e.g. --sizes 1,2")
    raw = t.spec(sizes, engine, quick, passivations)
    out = Path(out).resolve()
    raw |= {"store": store or str(out / f"{target}.db"), "files": str(out / f"{target}_files"),
            "execution": {"workers": workers, **({"scheduler": scheduler} if scheduler else {})}}
    return spec_from_dict(raw)


def reproduce(target: str, out: str | Path, *, sizes=None, engine: str = "chgnet", workers: int = 2,
              scheduler: str | None = None, store: str | None = None, quick: bool = False,
              passivations: list[str] | None = None, log=None, progress=None,
              spacing_B: float | None = None) -> dict:
    """Run (or resume) the campaign of ``target``, write ``out/<target>.html`` and return the table
    of our numbers beside the published ones plus the trend checks."""
    from qdlab.report.html import write_report

    library = _library_targets()
    if spacing_B is not None and target != "seed003-fine-structure":
        raise QdlabError("--spacing applies to seed003-fine-structure only")
    if target in library:
        extra = {"spacing_B": spacing_B} if spacing_B is not None else {}
        res = library[target][1](out, sizes, engine, quick, passivations, None,
                                 (lambda d, t: progress(d, t, None)) if progress else None, **extra)
        return {"target": target, "engine": engine, **res}
    spec = target_spec(target, out, sizes=sizes, engine=engine, quick=quick, workers=workers, scheduler=scheduler,
                       store=store, passivations=passivations)
    res = run_campaign(spec, workers=workers, scheduler=scheduler, progress=progress, log=log)
    rs = ResultStore(spec.store, spec.files)
    rows = _rows(rs, spec.name, _SUMMARY_STEP[target])
    summary = TARGETS[target].summary(rows, {"store": rs, "quick": quick})
    report = Path(out) / f"{target}.html"
    extra = ["<h2>Ours vs published</h2><table><thead><tr>"
             + "".join(f"<th>{c}</th>" for c in summary["columns"]) + "</tr></thead><tbody>"
             + "".join("<tr>" + "".join(f"<td>{x}</td>" for x in row) + "</tr>" for row in summary["rows"])
             + "</tbody></table><ul>" + "".join(f"<li>{c}</li>" for c in summary["checks"]) + "</ul>"]
    write_report(rs, report, campaign=spec.name, title=f"qdlab reproduce {target}", extra_sections=extra)
    return {"target": target, "engine": engine, "sizes": list(sizes or TARGETS[target].sizes), "report": str(report),
            "campaign": res.to_dict(), **summary}
