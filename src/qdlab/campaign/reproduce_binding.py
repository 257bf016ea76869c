"""Seed 000 Fig. S6 (anionic-ligand binding energies) and Fig. 6 (M1 of PhS/MA, BzO/MA, PhP/MA vs bare),
each number with a model-committee spread, printed beside the paper's statements.

Published (seed 000, DFT PBE on a 2×2×3 MA-capped CsPbBr3 slab; the per-ligand values are only in
the figure, not in the text): E_bind(Br⁻) = −2.01 eV; PhP binds more strongly and PhS more weakly
than BzO, whose binding energy is the closest to the native Br. Fig. 6 (fine-tuned MatterSim,
3×3×3 … 7×7×7, 50 % coverage): every capped NC blueshifts M1 against the bare one and BzO/MA gives
the largest blueshift at every size.

Both run as library functions (plan → evaluate → assemble inside the binding and committee
workflows, every unit saved and resumed) rather than as a campaign: the campaign has no
``binding`` or ``committee`` step yet (see the issue-17 report for the step's settings).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from ase.io import read

from qdlab.analysis.uncertainty import committee_value, ordering
from qdlab.errors import QdlabError
from qdlab.store.files import write_atoms, write_text

PUBLISHED_FIGS6 = {"Br_binding_eV": -2.01, "order_strong_to_weak": ["PhP", "BzO", "PhS"],
                   "closest_to_Br": "BzO"}
PUBLISHED_FIG6 = {"largest_M1_blueshift": "BzO/MA", "all_capped_blueshift": True}
FIG6_SYSTEMS = {"bare": [], "PhS/MA": ["MA:0.5", "PhS:0.5"], "BzO/MA": ["MA:0.5", "BzO:0.5"],
                "PhP/MA": ["MA:0.5", "PhP:0.5"]}
DEFAULT_COMMITTEE = ("chgnet:0.2.0", "chgnet:r2scan")
#: the README's Fig. S6 / Fig. 6 numbers were measured from unrattled starting structures; the
#: targets state that setting explicitly (the relax workflow's default rattle is 0.02 Å) so that
#: rerunning them reproduces the published table
MEASURED_RATTLE_A = 0.0


def _engine(engine: str):
    from qdlab.workflows.committee import parse_engine

    return parse_engine(engine)


def reproduce_figs6(out: str | Path, *, engine: str = "chgnet:0.3.0", committee: Sequence[str] = DEFAULT_COMMITTEE,
                    size: str = "2x2x3", host_ligands: Sequence[str] = ("MA:1.0",), ligands=("PhP", "BzO", "PhS"),
                    quick: bool = False, log: Callable[[str], None] | None = None,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Binding energies of ``ligands`` on the MA-capped slab ± committee spread, beside the paper."""
    from qdlab.build import SlabRecipe, build
    from qdlab.report.uncertainty_plots import plot_binding
    from qdlab.workflows.binding import BindingSettings, binding_energies
    from qdlab.workflows.relax import RelaxSettings

    out = Path(out) / "seed000-figS6"
    host = build(SlabRecipe(size=size, ligands=list(host_ligands), seed=0))
    settings = BindingSettings(ligands=list(ligands), engine=_engine(engine),
                               committee=[_engine(c) for c in committee],
                               relaxation=RelaxSettings(fmax=0.1 if quick else 0.05, steps=30 if quick else 400,
                                                        rattle_A=MEASURED_RATTLE_A))
    res = binding_energies(host, settings, out, progress=progress)
    plot_binding(res, out / "binding.png")
    br = res.ion_binding["X"]
    rows = [[L, res.binding[L].text(".3f"), res.exchange[L].text(".3f"),
             " ".join(f"{m}={res.binding_eV[m][L]:.3f}" for m in res.members)] for L in res.ligands]
    rows.append(["Br⁻ (native)", br.text(".3f"), "0", f"paper: {PUBLISHED_FIGS6['Br_binding_eV']:.2f}"])
    o = res.ordering()
    closest = min(res.ligands, key=lambda L: abs(res.exchange[L].mean))
    per_member_closest = {m: min(res.ligands, key=lambda L: abs(res.exchange_eV[m][L])) for m in res.members}
    paper = PUBLISHED_FIGS6["order_strong_to_weak"]
    checks = [
        f"strongest → weakest: {' > '.join(o['order'])} (paper: {' > '.join(paper)}): "
        f"{'same' if o['order'] == paper else 'DIFFERENT'}; same order for every model: {o['robust']}; "
        f"neighbours separated beyond the spread: {o['separated']}",
        f"closest to the native Br: {closest} (paper: BzO); per model: {per_member_closest}",
        f"E_bind(Br⁻) = {br.text('.2f')} eV (paper −2.01 eV, DFT with a charged vacancy; ML potentials carry no "
        f"charge, so absolute ion binding energies are not comparable — the exchange energies are)",
    ]
    if quick:
        checks.append("note: --quick relaxes only 30 steps to fmax 0.1 eV/Å")
    summary = {"target": "seed000-figS6", "engine": engine, "committee": list(committee), "size": size,
               "host_ligands": list(host_ligands), "columns": ["ligand", "E_bind (eV)", "exchange vs Br (eV)",
                                                               "per model"],
               "rows": rows, "checks": checks, "published": PUBLISHED_FIGS6, "result": res.to_dict(),
               "plot": str(out / "binding.png"), "report": str(out / "summary.json")}
    write_text(out / "summary.json", json.dumps(summary, indent=1, default=str))
    if log:
        for c in checks:
            log(c)
    return summary


def _relaxed(name: str, ligands: list[str], size: int, engine, folder: Path, fmax: float, steps: int):
    from qdlab.build import PerovskiteRecipe, build
    from qdlab.workflows.relax import RelaxSettings, run_relax

    path = folder / f"{name}.extxyz"
    if path.exists():
        return read(path)
    atoms = build(PerovskiteRecipe(size=str(size), ligands=ligands, lattice=5.95, seed=0))
    res = run_relax(atoms, engine.calculator(), RelaxSettings(fmax=fmax, steps=steps, rattle_A=MEASURED_RATTLE_A),
                    trajectory=folder / f"{name}.traj")
    final = res.atoms
    final.constraints = []
    write_atoms(path, final)
    return final


def reproduce_fig6(out: str | Path, *, sizes: Sequence[int] = (1,), engine: str = "chgnet:0.3.0",
                   committee: Sequence[str] = DEFAULT_COMMITTEE, systems: Sequence[str] | None = None,
                   method: str = "auto", quick: bool = False, log: Callable[[str], None] | None = None,
                   progress: Callable[[str, int, int], None] | None = None) -> dict:
    """M1 of bare and PhS/MA, BzO/MA, PhP/MA (50 %) cubes ± committee spread; relaxed once with
    ``engine`` (L-BFGS to 0.03 eV/Å, seed 000's DFT criterion: capped cubes stall near 0.03 with
    float32 CHGNet forces), Hessians with ``engine`` and every ``committee`` member there."""
    from qdlab.report.uncertainty_plots import plot_committee_peaks
    from qdlab.workflows.committee import committee_phonons

    names = list(systems or FIG6_SYSTEMS)
    if "bare" not in names or set(names) - set(FIG6_SYSTEMS):
        raise QdlabError(f"seed000-fig6 systems are {', '.join(FIG6_SYSTEMS)} (bare required)")
    names = ["bare"] + [n for n in names if n != "bare"]
    members = [_engine(engine), *(_engine(c) for c in committee)]
    base = Path(out) / "seed000-fig6"
    rows, checks, data = [], [], {}
    for n in sizes:
        folder = base / f"{n}x{n}x{n}"
        structs = {s: _relaxed(s.replace("/", "-"), FIG6_SYSTEMS[s], n, members[0], folder / "relaxed",
                               0.05 if quick else 0.03, 50 if quick else 800) for s in names}
        cp = committee_phonons(structs, members, folder / "units", method=method, progress=progress)
        cp.save(folder / "committee.json")
        plot_committee_peaks(cp, folder / "committee_peaks.png")
        data[n] = cp.to_dict()
        for s in names:
            m1 = cp.peaks[s].get("M1")
            sh = cp.shifts.get(s, {}).get("M1")
            rows.append([f"{n}x{n}x{n}", s, m1.text() if m1 else "–", sh.text() if sh else "–",
                         str(sum(cp.n_imaginary[s].values()))])
        capped = [s for s in names if s != "bare" and "M1" in cp.shifts.get(s, {})]
        if capped:
            blue = {s: cp.shifts[s]["M1"] for s in capped}
            checks.append(f"{n}x{n}x{n}: M1 blueshift vs bare: " + ", ".join(
                f"{s} {'yes' if b.difference.mean > 0 else 'NO'}{' (within model uncertainty)' if b.within_uncertainty else ''}"
                for s, b in blue.items()) + " (paper: yes for all)")
            vals = {s: committee_value(b.difference.values, b.difference.members, s) for s, b in blue.items()}
            o = ordering(vals, descending=True)
            checks.append(f"{n}x{n}x{n}: largest M1 blueshift {o['order'][0]} (paper: BzO/MA); order "
                          f"{' > '.join(o['order'])}; same for every model: {o['robust']}; survives the spread: "
                          f"{o['separated']}")
    if min(sizes) < 3:
        checks.append("note: the paper's cubes are 3×3×3 to 7×7×7 with a fine-tuned model; below 3×3×3 almost "
                      "every atom is on the surface")
    summary = {"target": "seed000-fig6", "engine": engine, "committee": list(committee), "sizes": list(sizes),
               "columns": ["size", "system", "M1 (cm⁻¹)", "ΔM1 vs bare (cm⁻¹)", "imaginary modes (all models)"],
               "rows": rows, "checks": checks, "published": PUBLISHED_FIG6, "data": data,
               "report": str(base / "summary.json")}
    write_text(base / "summary.json", json.dumps(summary, indent=1, default=str))
    if log:
        for c in checks:
            log(c)
    return summary
