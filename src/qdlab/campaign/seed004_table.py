"""``seed004-tableS1``: Huang–Rhys factors and Γ_PL(300 K) vs size, core/shell and frozen shell (SCIENCE §7).

Harmonic route of :mod:`qdlab.workflows.seed004` (relax → Γ Hessian → tight-binding gap gradient →
S in the 2/7/17 meV bands, Λ, Γ(300 K)), one model at a time, each model's row cached in
``out/seed004-tableS1/rows/<model>.json`` (rerun to resume). Models: bare CsPbBr3 cubes of
``sizes`` (default the smallest, laptop-sized; the paper's are 3…7 = 1.8…4.2 nm), a
CsPbBr3/CsCaBr3 core/shell (Ca:1 shell: the paper's is 6×6×6 = 3.6 nm with a 4×4×4 core, 64 Pb and
152 Ca, used when 6 is among the sizes; otherwise 3×3×3, the smallest with a Pb core) and a
frozen-shell series on the largest bare cube. Ours beside the paper's, as measured, never tuned; the trend
checks are the paper's (smaller → larger Γ, shell → narrower, frozen shell → narrower).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from qdlab.errors import QdlabError

LATTICE_A = 5.87
DEFAULT_SIZES = (1, 2)


def _row_cached(path: Path, make: Callable[[], object]):
    """A :class:`~qdlab.workflows.seed004.CouplingRow` from its JSON cache, else made and cached (atomic)."""
    from qdlab.store.files import write_text
    from qdlab.workflows.seed004 import CouplingRow

    if path.is_file():
        d = json.loads(path.read_text())
        d["frozen_fwhm_meV"] = {float(k): v for k, v in d["frozen_fwhm_meV"].items()}
        return CouplingRow(**d)
    row = make()
    write_text(path, json.dumps(asdict(row), indent=1, default=float) + "\n")
    return row


def _models(sizes: tuple[int, ...], core_shell: int | None) -> list[tuple[str, int, str | None]]:
    """(label, n, shell) of every model; labels are sizes in nm (n·a) as in the paper's table."""
    models: list[tuple[str, int, str | None]] = [(f"{n * LATTICE_A / 10:.1f} nm", n, None) for n in sizes]
    if core_shell:
        models.append((f"core/shell {core_shell}x{core_shell}x{core_shell}", core_shell, "Ca:1"))
    return models


def _cell(ours: float, paper: dict, key: str) -> str:
    return f"{ours:.2f} | {paper[key]}" if key in paper else f"{ours:.2f} | —"


def _checks(bare: list, shell, frozen_row) -> list[str]:
    from qdlab.workflows.seed004 import PAPER_FROZEN_FWHM_MEV

    out = []
    if len(bare) >= 2:
        g = [r.gamma_300K_meV for r in bare]
        dec = all(a >= b for a, b in zip(g, g[1:]))
        out.append(f"Γ(300 K) vs size {', '.join(f'{x:.0f}' for x in g)} meV: {'decreases' if dec else 'does NOT decrease'}"
                   " with size (paper: 200 → 122 meV, 1.8 → 4.2 nm)")
    if shell is not None:
        same = [r for r in bare if r.n == shell.n]
        ref = f"bare {same[0].gamma_300K_meV:.0f} meV" if same else "no bare cube of the same size run"
        out.append(f"core/shell Γ(300 K) {shell.gamma_300K_meV:.0f} meV vs {ref} (paper, 3.6 nm: core/shell 89.9 vs "
                   "bare 126 meV)")
    if frozen_row is not None and frozen_row.frozen_fwhm_meV:
        f = [frozen_row.gamma_300K_meV, *frozen_row.frozen_fwhm_meV.values()]
        narrow = all(a >= b for a, b in zip(f, f[1:]))
        out.append(f"frozen shell on {frozen_row.label}: FWHM {' → '.join(f'{x:.0f}' for x in f)} meV "
                   f"({'narrows' if narrow else 'does NOT narrow'} as the frozen shell thickens; paper 2.9 nm: "
                   f"{PAPER_FROZEN_FWHM_MEV[0.0]:.0f} → {PAPER_FROZEN_FWHM_MEV[2.0]:.0f} meV at 2 u.c.)")
    return out


def reproduce_table_s1(out: str | Path, *, sizes=None, engine: str = "chgnet", quick: bool = False,
                       core_shell: int | None = None, frozen: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0),
                       log: Callable[[str], None] = lambda m: None) -> dict:
    """Run (or resume) the harmonic Table S1 series; returns columns/rows/checks with ours | paper.

    ``core_shell``: edge n of the core/shell model; None: 6 (the paper's) when 6 is among the sizes,
    else 3; 0: no core/shell model."""
    from qdlab.build import PerovskiteRecipe, build
    from qdlab.engines.registry import get_calculator
    from qdlab.store.files import write_text
    from qdlab.workflows.seed004 import PAPER_FROZEN_FWHM_MEV, PAPER_TABLE_S1, _sized, coupling_row

    sizes = tuple(sorted(set(sizes or DEFAULT_SIZES)))
    if any(n < 1 for n in sizes):
        raise QdlabError("sizes must be positive cube edges in unit cells, e.g. --sizes 1,2")
    if core_shell is None:
        core_shell = 6 if 6 in sizes else 3
    if 0 < core_shell < 3 or core_shell < 0:
        raise QdlabError("the core/shell model needs n ≥ 3 (a Ca:1 shell on n ≤ 2 leaves no Pb core)")
    o = Path(out) / "seed004-tableS1"
    calc = get_calculator(engine)
    opts = {"fmax": 0.05 if quick else 0.01, "relax_steps": 200 if quick else 1000}
    rows = []
    for label, n, shell in _models(sizes, core_shell):
        fr = frozen if (shell is None and n == sizes[-1]) else ()
        paper = PAPER_TABLE_S1["core/shell"] if shell else PAPER_TABLE_S1.get(label, {})

        def make(label=label, n=n, shell=shell, fr=fr, paper=paper):
            atoms = build(PerovskiteRecipe(size=str(n), composition="CsPbBr3", lattice=LATTICE_A, shell=shell, seed=0))
            return _sized(coupling_row(atoms, calc, label, frozen=fr, paper=paper, log=log, **opts), n, LATTICE_A)

        rows.append(_row_cached(o / "rows" / f"{label.replace(' ', '_').replace('/', '-')}_{engine}.json", make))
    table = [[r.label, r.n_atoms, _cell(r.bands["2meV"], r.paper, "S_2meV"), _cell(r.bands["7meV"], r.paper, "S_7meV"),
              _cell(r.bands["17meV"], r.paper, "S_17meV"), _cell(r.gamma_300K_meV, r.paper, "gamma_300K_meV")]
             for r in rows]
    frozen_row = next((r for r in rows if r.frozen_fwhm_meV), None)
    if frozen_row is not None:
        for x, v in frozen_row.frozen_fwhm_meV.items():
            paper = PAPER_FROZEN_FWHM_MEV.get(x)
            table.append([f"{frozen_row.label} frozen {x:g} u.c.", frozen_row.n_atoms, "", "", "",
                          f"{v:.2f} | {paper if paper is not None else '—'}"])
    bare = [r for r in rows if not r.label.startswith("core/shell")]
    shell_row = next((r for r in rows if r.label.startswith("core/shell")), None)
    summary = {"columns": ["model", "atoms", "S_2meV ours | paper", "S_7meV ours | paper", "S_17meV ours | paper",
                           "Γ(300 K) or FWHM meV ours | paper"],
               "rows": table, "checks": _checks(bare, shell_row, frozen_row),
               "route": "harmonic: TB gap gradient on the engine's Γ modes (the paper: 10 K / 300 K CP2K AIMD)",
               "models": [asdict(r) for r in rows], "sizes": list(sizes), "quick": quick}
    report = write_text(o / "summary.json", json.dumps(summary, indent=1, default=float) + "\n")
    return summary | {"report": str(report)}
