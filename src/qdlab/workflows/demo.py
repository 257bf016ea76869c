"""The main job run by ``make demo`` / ``qdlab demo``.

Current stage: build a 3×3×3 CsPbBr3 nanocrystal capped with 50 % MA + 50 % BzO, write it
(extended XYZ with all labels), render a PNG and write a short report (Markdown + JSON).
Later stages add relaxation and the phonon DOS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from qdlab.build import PerovskiteRecipe, build, summary
from qdlab.report.plots import render_structure
from qdlab.store.files import write_atoms, write_text

DEMO_RECIPE = PerovskiteRecipe(composition="CsPbBr3", size="3", lattice=5.95, ligands=["MA:0.5", "BzO:0.5"], seed=0)


def run_demo(out: str | Path, log: Callable[[str], None] = print) -> dict:
    """Run the demo into folder ``out``; returns the report as a dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    atoms = build(DEMO_RECIPE)
    t_build = time.perf_counter() - t0
    s = summary(atoms)
    log(f"built {s['formula']} ({s['n_atoms']} atoms, charge {s['charge']}) in {t_build:.2f} s")
    structure = write_atoms(out / "nc_3x3x3_MA-BzO.extxyz", atoms)
    picture = render_structure(atoms, out / "nc_3x3x3_MA-BzO.png",
                               title=f"CsPbBr3 3×3×3, 50 % MA + 50 % BzO: {s['formula']}")
    log(f"wrote {structure} and {picture}")
    report = {"recipe": DEMO_RECIPE.model_dump(), "model": s, "build_seconds": round(t_build, 3),
              "files": {"structure": structure.name, "picture": picture.name}}
    lines = [
        "# qdlab demo report",
        "",
        f"Model: **{s['formula']}**, {s['n_atoms']} atoms, net charge {s['charge']} e.",
        "",
        "| element | count |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in s["counts"].items()],
        "",
        "| ligand | count |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in s["ligands"].items()],
        "",
        f"![structure]({picture.name})",
        "",
    ]
    write_text(out / "report.md", "\n".join(lines))
    write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    log(f"report: {out / 'report.md'}")
    return report
