"""A self-contained HTML report of a results store: tables and plots embedded as base64 PNG.

Sections (each when the store has the rows for it): task overview per campaign/step/status; phonon
mode centres M1/M2/M3 against size per passivation (seed 000 Fig. 5) with the table behind it;
DOS overlays per size (Fig. 4); relaxations; MD and RMSF distributions (Fig. 7); parity plots of
an engine against reference labels (Fig. 2); failed tasks with their errors; provenance.

The page carries a small script that, once loaded, checks that every figure decoded
(``naturalWidth > 0``) and that no script or resource error occurred, and writes the verdict into
``<div id="qdlab-check" data-status="ok|failed" data-images=N data-broken=K>`` — what a headless
browser test reads back (``chromium --headless --dump-dom``).
"""

from __future__ import annotations

import base64
import html
import os
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from qdlab import __version__
from qdlab.analysis.dos import load_dos_csv
from qdlab.analysis.parity import load_parity_arrays
from qdlab.analysis.rmsf import load_rmsf_table
from qdlab.report.campaign_plots import plot_dos_by_size, plot_peaks_vs_size, plot_rmsf_distributions
from qdlab.report.parity_plots import plot_parity
from qdlab.store.files import write_text
from qdlab.store.results import DONE, FAILED, ResultStore, TaskRow, redact

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
     color:#222;padding:0 1em}
h1{font-size:1.6em} h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right} th{background:#f3f3f3}
td.l,th.l{text-align:left} .failed{color:#b00} .ok{color:#070}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:.85em;color:#555}
#qdlab-check{font-size:.8em;color:#666}
"""

_CHECK_JS = """
(function(){
  var errors = [];
  window.addEventListener('error', function(e){
    errors.push(e && e.target && e.target.tagName ? ('resource ' + e.target.tagName) : String(e.message));
  }, true);
  window.addEventListener('load', function(){
    var imgs = Array.prototype.slice.call(document.images);
    var broken = imgs.filter(function(i){ return !(i.complete && i.naturalWidth > 0); });
    var el = document.getElementById('qdlab-check');
    el.setAttribute('data-images', String(imgs.length));
    el.setAttribute('data-broken', String(broken.length));
    el.setAttribute('data-errors', String(errors.length));
    el.setAttribute('data-status', (broken.length === 0 && errors.length === 0) ? 'ok' : 'failed');
    el.textContent = 'figures shown: ' + (imgs.length - broken.length) + ' of ' + imgs.length +
                     (errors.length ? '; errors: ' + errors.join(', ') : '');
  });
})();
"""


def _e(x) -> str:
    return html.escape(str(x))


def _fmt(v, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if not np.isfinite(v) else f"{v:.{digits}f}"
    return _e(v)


def _table(columns: list[str], rows: list[list], left: int = 1, classes: list[str] | None = None) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{_e(c)}</th>' for i, c in enumerate(columns))
    body = []
    for k, r in enumerate(rows):
        cls = f' class="{classes[k]}"' if classes else ""
        body.append(f"<tr{cls}>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r))
                    + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure_html(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _size_nm(row: TaskRow) -> float:
    """Edge length n·a (nm) of a perovskite cube's row (nx for cuboids), NaN otherwise."""
    recipe = row.data.get("recipe", {})
    if recipe.get("kind", "perovskite") != "perovskite":
        return float("nan")
    from qdlab.build.perovskite import DEFAULT_LATTICE, parse_size

    a = recipe.get("lattice") or DEFAULT_LATTICE.get(recipe.get("composition", ""), float("nan"))
    return parse_size(str(recipe.get("size", "3")))[0] * float(a) / 10.0


def _label(row: TaskRow) -> str:
    return f"{row.kvp.get('passivation', '?')} {row.kvp.get('size', '')}"


def collect(store: ResultStore, campaign: str | None = None) -> list[TaskRow]:
    """Rows of the store (of one campaign), one per task (a finished row preferred)."""
    rows: dict[str, TaskRow] = {}
    for r in store.rows(**({"campaign": campaign} if campaign else {})):
        if r.key not in rows or r.status == DONE:
            rows[r.key] = r
    return list(rows.values())


def peak_points(rows: list[TaskRow]) -> dict[tuple, list[dict]]:
    """M1/M2/M3 points per (composition, engine): peaks steps, else the phonon steps' own peaks."""
    src = [r for r in rows if r.status == DONE and r.kvp.get("workflow") == "peaks"]
    if not src:
        src = [r for r in rows if r.status == DONE and r.kvp.get("workflow") == "phonons"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in src:
        res = r.results
        groups[(r.kvp.get("composition"), r.kvp.get("engine"))].append(
            {"size_nm": _size_nm(r), "size": r.kvp.get("size"), "passivation": r.kvp.get("passivation", "?"),
             "seed": r.kvp.get("seed", 0), **{f"{m}_cm1": float(res.get(f"{m}_cm1", np.nan)) for m in ("M1", "M2", "M3")}})
    return groups


class _Figures:
    """Numbered PNG paths in a temporary folder (the report embeds them)."""

    def __init__(self, folder: Path):
        self.folder, self.n = folder, 0

    def __call__(self, name: str) -> Path:
        self.n += 1
        return self.folder / f"{self.n:03d}_{name}.png"


def _sys_cells(r: TaskRow) -> list:
    return [_e(r.kvp.get("composition")), _e(r.kvp.get("size")), _e(r.kvp.get("passivation")), _e(r.kvp.get("engine"))]


def _done(rows: list[TaskRow], workflow: str, file: str | None = None) -> list[TaskRow]:
    return [r for r in rows if r.status == DONE and r.kvp.get("workflow") == workflow and (file is None or r.files.get(file))]


def _section_tasks(rows: list[TaskRow]) -> str:
    counts = Counter((r.kvp.get("campaign"), r.kvp.get("step"), r.status) for r in rows)
    camp_steps = sorted({(c, s) for c, s, _ in counts})
    return "<h2>Tasks</h2>" + _table(["campaign", "step", "done", "failed"],
                                     [[_e(c), _e(s), counts[(c, s, DONE)], counts[(c, s, FAILED)]]
                                      for c, s in camp_steps], left=2)


def _section_peaks(rows: list[TaskRow], fig: _Figures) -> str | None:
    groups = peak_points(rows)
    if not groups:
        return None
    parts = ["<h2>Phonon mode centres vs size (seed 000 Fig. 5)</h2>"]
    for (comp, eng), pts in groups.items():
        if any(np.isfinite(p["size_nm"]) for p in pts):
            path = plot_peaks_vs_size(pts, fig("peaks"), title=f"{comp}, {eng}: M1/M2/M3 vs size")
            parts.append(figure_html(path, f"{comp} ({eng}): intensity-weighted M1 (circles), M2 (squares), "
                                    f"M3 (triangles) per passivation"))
        table = sorted(pts, key=lambda p: (p["passivation"], p["size_nm"], p["seed"]))
        parts.append(_table(["composition", "engine", "passivation", "size", "edge (nm)", "M1 (cm⁻¹)",
                             "M2 (cm⁻¹)", "M3 (cm⁻¹)"],
                            [[_e(comp), _e(eng), _e(p["passivation"]), _e(p["size"]), _fmt(p["size_nm"], 2),
                              _fmt(p["M1_cm1"]), _fmt(p["M2_cm1"]), _fmt(p["M3_cm1"])] for p in table], left=4))
    return "".join(parts)


def _section_dos(rows: list[TaskRow], store: ResultStore, fig: _Figures) -> str | None:
    ph = _done(rows, "phonons", "dos")
    if not ph:
        return None
    parts = ["<h2>Γ-point phonon DOS per size (seed 000 Fig. 4)</h2>"]
    by_size: dict[tuple, dict] = defaultdict(dict)
    for r in sorted(ph, key=lambda r: (str(r.kvp.get("passivation")), r.kvp.get("seed", 0))):
        p = store.path(r.files["dos"])
        if not p.is_file():
            continue
        d = load_dos_csv(p.parent)
        by_size[(r.kvp.get("composition"), r.kvp.get("engine"), r.kvp.get("size"))].setdefault(
            r.kvp.get("passivation", "?"), (d.grid_cm1, d.total))
    for (comp, eng, size), curves in list(by_size.items())[:12]:
        path = plot_dos_by_size(curves, fig("dos"), title=f"{comp} {size} ({eng})")
        parts.append(figure_html(path, f"{comp} {size}: total DOS per mode, σ as computed"))
    ph_rows = [_sys_cells(r) + [r.kvp.get("n_atoms", ""), r.results.get("n_modes", ""),
                                r.results.get("n_imaginary", ""), _fmt(r.results.get("lowest_cm1")),
                                _fmt(r.kvp.get("seconds"))] for r in ph]
    parts.append(_table(["composition", "size", "passivation", "engine", "atoms", "modes", "imaginary",
                         "lowest (cm⁻¹)", "seconds"], ph_rows, left=4))
    return "".join(parts)


def _table_section(rows: list[TaskRow], workflow: str, heading: str, columns: list[str], cells) -> str | None:
    """A heading and one table row per finished ``workflow`` task: the system's labels + ``cells(row)``."""
    done = _done(rows, workflow)
    if not done:
        return None
    return f"<h2>{heading}</h2>" + _table(["composition", "size", "passivation", "engine"] + columns,
                                         [_sys_cells(r) + cells(r) for r in done], left=4)


def _section_relax(rows: list[TaskRow]) -> str | None:
    return _table_section(rows, "relax", "Relaxations",
                          ["seed", "atoms", "E (eV/atom)", "fmax (eV/Å)", "steps", "converged"],
                          lambda r: [r.kvp.get("seed", ""), r.kvp.get("n_atoms", ""),
                                     _fmt(r.results.get("energy_per_atom_eV"), 4), _fmt(r.results.get("fmax_eV_A"), 4),
                                     r.results.get("relax_steps", ""), r.results.get("converged", "")])


def _rmsf_element(composition: str, symbols: np.ndarray) -> str:
    """The B-site element of a perovskite (the RMSF shown per system), else Pb or the first element."""
    try:
        from qdlab.build.model import parse_perovskite

        return parse_perovskite(composition).B
    except Exception:
        return "Pb" if "Pb" in symbols else str(symbols[0])


def _rmsf_groups(rm: list[TaskRow], store: ResultStore) -> tuple[dict[tuple, dict], dict[tuple, str]]:
    """Per (composition, engine): each system's RMSF of the B-site element, and that element."""
    per_group: dict[tuple, dict] = defaultdict(dict)
    elements: dict[tuple, str] = {}
    for r in sorted(rm, key=lambda r: (str(r.kvp.get("size")), str(r.kvp.get("passivation")))):
        p = store.path(r.files["rmsf"])
        if not p.is_file() or p.suffix != ".csv":  # missing, or written before rmsf.csv
            continue
        rho, sym, _ = load_rmsf_table(p)
        g = (str(r.kvp.get("composition")), r.kvp.get("engine"))
        elements[g] = _rmsf_element(g[0], sym)
        per_group[g][_label(r)] = rho[sym == elements[g]]
    return per_group, elements


def _section_rmsf(rows: list[TaskRow], store: ResultStore, fig: _Figures) -> str | None:
    rm = _done(rows, "rmsf", "rmsf")
    if not rm:
        return None
    parts = ["<h2>RMSF after MD (seed 000 Fig. 7, seed 004)</h2>"]
    per_group, elements = _rmsf_groups(rm, store)
    for g, systems in per_group.items():
        if systems:
            path = plot_rmsf_distributions(systems, fig("rmsf"), element=elements[g],
                                           title=f"{g[0]} ({g[1]}): {elements[g]} RMSF per system")
            parts.append(figure_html(path, f"{elements[g]} RMSF distributions per system (box: quartiles; "
                                    f"diamond: mean ± std)"))
    els = sorted({k.split("_")[1] for r in rm for k in r.results if k.startswith("rmsf_") and k.endswith("_mean_A")})
    parts.append(_table(["composition", "size", "passivation", "engine", "frames"] + [f"{e} (Å)" for e in els],
                        [_sys_cells(r) + [r.results.get("n_frames", "")]
                         + [_fmt(r.results.get(f"rmsf_{e}_mean_A"), 3) for e in els] for r in rm], left=4))
    return "".join(parts)


def _section_md(rows: list[TaskRow]) -> str | None:
    return _table_section(rows, "md", "Molecular dynamics", ["frames", "⟨T⟩ (K)", "σ_T (K)", "steps/s"],
                          lambda r: [r.results.get("n_frames", ""), _fmt(r.results.get("mean_temperature_K")),
                                     _fmt(r.results.get("std_temperature_K")),
                                     _fmt(r.results.get("steps_per_second"), 2)])


def _section_parity(rows: list[TaskRow], store: ResultStore, fig: _Figures) -> str | None:
    par = _done(rows, "parity", "parity")
    if not par:
        return None
    parts = ["<h2>Parity against reference labels (seed 000 Fig. 2)</h2>"]
    for r in par:
        p = store.path(r.files["parity"])
        if not p.is_file():
            continue
        res = load_parity_arrays(p, label=str(r.kvp.get("engine")))
        path = plot_parity([res], fig("parity"), title=f"{r.kvp.get('step')}: {r.kvp.get('engine')} vs reference")
        parts.append(figure_html(path, f"{r.kvp.get('step')}: {r.kvp.get('engine')} against "
                                f"{r.data.get('results', {}).get('reference', 'reference')}"))
    return "".join(parts)


def _section_failures(rows: list[TaskRow]) -> str | None:
    bad = [r for r in rows if r.status == FAILED]
    if not bad:
        return None
    return "<h2>Failed tasks</h2>" + _table(
        ["campaign", "step", "composition", "size", "passivation", "engine", "error"],
        [[_e(r.kvp.get("campaign")), _e(r.kvp.get("step"))] + _sys_cells(r)
         + [f'<span class="failed">{_e(r.data.get("error"))}</span>'] for r in bad], left=7)


def _section_provenance(rows: list[TaskRow]) -> str | None:
    prov: Counter = Counter()
    hashes = set()
    for r in rows:
        p = r.data.get("provenance", {})
        prov[tuple(sorted(p.get("versions", {}).items()))] += 1
        if p.get("engine_model_hash"):
            hashes.add((r.kvp.get("engine"), p["engine_model_hash"]))
    if not prov:
        return None
    versions = prov.most_common(1)[0][0]
    return ("<h2>Provenance</h2>" + _table(["package", "version"], [[_e(k), _e(v)] for k, v in versions])
            + _table(["engine", "model hash"], [[_e(e), _e(h)] for e, h in sorted(hashes, key=str)], left=2))


def write_report(store: ResultStore, output: str | os.PathLike, *, campaign: str | None = None,
                 title: str | None = None, extra_sections: list[str] | None = None) -> dict:
    """Write the HTML report of ``store`` to ``output``; returns counts (rows, figures, sections)."""
    rows = collect(store, campaign)
    with tempfile.TemporaryDirectory() as tmpdir:
        fig = _Figures(Path(tmpdir))
        sections = [_section_tasks(rows), _section_peaks(rows, fig), _section_dos(rows, store, fig),
                    _section_relax(rows), _section_rmsf(rows, store, fig), _section_md(rows),
                    _section_parity(rows, store, fig), _section_failures(rows), _section_provenance(rows)]
        sections = [x for x in sections if x] + (extra_sections or [])
        head = title or f"qdlab report: {campaign or 'all campaigns'}"
        page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(head)}</title>"
                f"<style>{_CSS}</style></head><body><h1>{_e(head)}</h1>"
                f"<p>Store <code>{_e(redact(store.url))}</code>: {len(rows)} task rows. Generated by qdlab "
                f"{_e(__version__)} on {time.strftime('%Y-%m-%d %H:%M')}.</p>"
                f"<div id=\"qdlab-check\" data-status=\"pending\"></div>"
                + "".join(f"<section>{s}</section>" for s in sections)
                + f"<script>{_CHECK_JS}</script></body></html>\n")
        write_text(output, page)
    os.chmod(output, 0o644)  # a page to share (atomic writes create 0600 files)
    return {"output": str(output), "n_rows": len(rows), "n_figures": fig.n, "n_sections": len(sections)}
