"""``qdlab binding`` (ligand binding energies) and ``qdlab committee`` (phonon numbers ± model spread).

Register in :mod:`qdlab.cli.main` with::

    from qdlab.cli import binding as binding_cli
    app.command("binding")(binding_cli.binding_cmd)
    app.command("committee")(binding_cli.committee_cmd)
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qdlab.cli.common import JSON_OPT, console, emit_json, guarded
from qdlab.cli.engines import CKPT_OPT, D3_OPT, DEVICE_OPT, ENGINE_OPT, MODEL_OPT, RATTLE_OPT

COMMITTEE_OPT = typer.Option(None, "--committee", "-c",
                             help="Extra model(s) for single points / Hessians at the same geometry: "
                                  "name[:model][@checkpoint][+d3], e.g. chgnet:0.2.0 (repeatable).")


def _bar(label: str, disable: bool) -> Progress:
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, disable=disable)


def _host(structure: Path | None, slab: str | None, host_ligands: list[str] | None, seed: int):
    from qdlab.cli.inputs import load_structure
    from qdlab.errors import QdlabError

    if (structure is None) == (slab is None):
        raise QdlabError("give a host structure file or --slab SIZE (e.g. --slab 2x2x3 --host-ligand MA:1.0)")
    if structure is not None:
        return load_structure(structure, what="binding host")
    from qdlab.build import SlabRecipe, build

    return build(SlabRecipe(size=slab, ligands=host_ligands or [], seed=seed))


@guarded
def binding_cmd(structure: Path = typer.Argument(None, help="Host model built by qdlab (extxyz with labels)."),
                ligand: list[str] = typer.Option(..., "--ligand", "-l", help="Library ligand (repeatable)."),
                slab: str = typer.Option(None, "--slab", help="Build the host: periodic (001) slab, e.g. 2x2x3."),
                host_ligand: list[str] = typer.Option(None, "--host-ligand", help="Ligands of the built host, e.g. MA:1.0."),
                out: Path = typer.Option(Path("binding_out"), "--output", "-o", help="Output folder."),
                engine: str = ENGINE_OPT, model: str = MODEL_OPT, checkpoint: str = CKPT_OPT,
                device: str = DEVICE_OPT, d3: bool = D3_OPT, committee: list[str] = COMMITTEE_OPT,
                relax_first: bool = typer.Option(True, "--relax/--no-relax", help="Relax every structure first."),
                fmax: float = typer.Option(0.05, "--fmax", help="Relaxation threshold, eV/Å."),
                steps: int = typer.Option(300, "--steps", help="Maximum optimizer steps per structure."),
                rattle: float = RATTLE_OPT,
                fix: str = typer.Option(None, "--fix", help="Label selection kept fixed, e.g. 'depth>=3'."),
                site: int = typer.Option(None, "--site", help="Atom index of the native ion to replace."),
                seed: int = typer.Option(0, "--seed", help="Seed of ligand placement and of the rattle."),
                as_json: bool = JSON_OPT) -> None:
    """Ligand binding energies on a slab or NC: E(host−ion+L) − E(host−ion) − E(L), and the exchange
    energy against the native ion (Br⁻ for anions, Cs⁺ for cations), ± the committee spread."""
    from qdlab.report.uncertainty_plots import plot_binding
    from qdlab.workflows.binding import BindingSettings, binding_energies
    from qdlab.workflows.committee import EngineChoice, parse_engine
    from qdlab.workflows.relax import RelaxSettings

    settings = BindingSettings(
        ligands=ligand, engine=EngineChoice(name=engine, model=model, checkpoint=checkpoint, d3=d3, device=device),
        committee=[parse_engine(c).model_copy(update={"device": device}) for c in committee or []],
        relax=relax_first, relaxation=RelaxSettings(fmax=fmax, steps=steps, rattle_A=rattle, fix=fix), site=site,
        seed=seed)
    host = _host(structure, slab, host_ligand, seed)
    with _bar("binding", as_json) as bar:
        task = bar.add_task("binding", total=None)
        res = binding_energies(host, settings, out, progress=lambda d, t: bar.update(task, completed=d, total=t))
    png = plot_binding(res, out / "binding.png")
    if as_json:
        emit_json(res.to_dict() | {"plot": str(png), "json": str(out / "binding.json")})
        return
    t = Table(title=f"binding energies (eV), {len(res.members)} model(s): {', '.join(res.members)}")
    for c in ("ligand", "site", "E_bind", "exchange vs native ion"):
        t.add_column(c)
    for L in res.ligands:
        k = res.ligand_site[L]
        t.add_row(L, f"{k} ({res.ion[k]})", res.binding[L].text(".3f"), res.exchange[L].text(".3f"))
    for k, cv in res.ion_binding.items():
        t.add_row(f"native {res.ion[k]}", k, cv.text(".3f"), "0")
    console.print(t)
    o = res.ordering()
    console.print(f"strongest → weakest: {' > '.join(o['order'])} (same for every model: {o['robust']}; "
                  f"separated beyond the spread: {o['separated']})", highlight=False)
    console.print(f"wrote {out / 'binding.json'} and {png}", highlight=False)


@guarded
def committee_cmd(structures: list[Path] = typer.Argument(..., help="Relaxed structures; the first is the reference."),
                  member: list[str] = typer.Option(..., "--member", "-m",
                                                   help="Committee model name[:model][@checkpoint] (repeatable)."),
                  out: Path = typer.Option(Path("committee_out"), "--output", "-o", help="Output folder."),
                  method: str = typer.Option("auto", "--method", help="fd | analytic | auto (analytic where offered)."),
                  delta: float = typer.Option(0.01, "--delta", help="FD displacement, Å."),
                  sigma: float = typer.Option(3.0, "--sigma", help="DOS smearing, cm⁻¹."),
                  device: str = DEVICE_OPT,
                  as_json: bool = JSON_OPT) -> None:
    """Phonon frequencies and M1/M2/M3 centres ± the spread of a model committee at fixed geometries,
    and each system's peak shifts against the first, flagged when within the model uncertainty."""
    from qdlab.cli.inputs import load_structure
    from qdlab.errors import QdlabError
    from qdlab.report.uncertainty_plots import plot_committee_peaks
    from qdlab.workflows.committee import committee_phonons, parse_engine

    names = [p.stem for p in structures]
    if len(set(names)) != len(names):
        raise QdlabError("structure file names (stems) must differ: they name the systems")
    systems = {n: load_structure(p, what="committee input", min_atoms=2) for n, p in zip(names, structures)}
    members = [parse_engine(m).model_copy(update={"device": device}) for m in member]
    with _bar("committee Hessians", as_json) as bar:
        task = bar.add_task("h", total=None)
        cp = committee_phonons(systems, members, out / "units", method=method, delta=delta, sigma_cm1=sigma,
                               progress=lambda s, d, t: bar.update(task, completed=d, total=t, description=s))
    out.mkdir(parents=True, exist_ok=True)
    cp.save(out / "committee.json")
    png = plot_committee_peaks(cp, out / "committee_peaks.png")
    if as_json:
        emit_json(cp.to_dict() | {"plot": str(png), "json": str(out / "committee.json")})
        return
    peaks = list(dict.fromkeys(p for s in cp.systems for p in cp.peaks[s]))
    t = Table(title=f"peak centres (cm⁻¹), mean ± spread over {', '.join(cp.members)}")
    t.add_column("system")
    for p in peaks:
        t.add_column(p)
        t.add_column(f"Δ{p}")
    for s in cp.systems:
        row = [s]
        for p in peaks:
            row.append(cp.peaks[s][p].text() if p in cp.peaks[s] else "–")
            sh = cp.shifts.get(s, {}).get(p)
            row.append(sh.text() if sh else "–")
        t.add_row(*row)
    console.print(t)
    console.print(f"wrote {out / 'committee.json'} and {png}", highlight=False)
