"""``qdlab build perovskite|pbs|slab``: build labelled nanocrystal models."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qdlab.build import PbSRecipe, PerovskiteRecipe, SlabRecipe, build, summary
from qdlab.build.ligands import load_ligand_file, register_ligand
from qdlab.cli.common import JSON_OPT, console, emit_json, guarded
from qdlab.errors import QdlabError
from qdlab.store.files import write_atoms

app = typer.Typer(help="Build nanocrystal models (perovskite cubes/cuboids, core/shell, slabs, PbS).",
                  no_args_is_help=True)

OUT_OPT = typer.Option(Path("nc.extxyz"), "-o", "--output", help="Output file (extended XYZ keeps all labels).")
SEED_OPT = typer.Option(0, "--seed", help="Seed for every random choice (same recipe + seed ⇒ same model).")
LIG_OPT = typer.Option([], "--ligand", "-l", help="NAME:COVERAGE (fraction of sites, 0–1) or NAME:COUNT; repeatable.")
LIGFILE_OPT = typer.Option(None, "--ligand-file", help="TOML/JSON file with extra ligand definitions.")
VAC_OPT = typer.Option(15.0, "--vacuum", help="Vacuum on every side, Å.")
MIND_OPT = typer.Option(1.8, "--min-distance", help="Closest allowed ligand–core/ligand–ligand distance, Å.")


def _run(recipe, output: Path, as_json: bool, ligand_file: Path | None) -> None:
    if ligand_file is not None:
        for lig in load_ligand_file(ligand_file):
            register_ligand(lig)
    bar = Progress(TextColumn("placing ligands"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), console=console, transient=True, disable=as_json)
    task = None

    def progress(done: int, total: int) -> None:  # the bar appears only once ligands are placed
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("ligands", total=total)
        bar.update(task, completed=done)

    try:
        atoms = build(recipe, progress=progress)
    finally:
        if task is not None:
            bar.stop()
    write_atoms(output, atoms)
    info = summary(atoms) | {"output": str(output)}
    if as_json:
        emit_json(info)
        return
    table = Table(title=f"{info['formula']} → {output}", show_header=False)
    table.add_row("atoms", str(info["n_atoms"]))
    table.add_row("net charge (e)", str(info["charge"]))
    if info["extra_electrons"]:
        table.add_row("extra electrons", str(info["extra_electrons"]))
    table.add_row("elements", ", ".join(f"{k} {v}" for k, v in info["counts"].items()))
    if info["ligands"]:
        table.add_row("ligands", ", ".join(f"{k} {v}" for k, v in info["ligands"].items()))
    console.print(table)


@app.command("perovskite")
@guarded
def perovskite(
    composition: str = typer.Option("CsPbBr3", "--composition", "-c", help="ABX3 formula, e.g. CsPbBr3, CsPbI3."),
    size: str = typer.Option("3", "--size", "-n", help="n (cube) or nx x ny x nz (cuboid), unit cells."),
    lattice: float = typer.Option(None, "--lattice", "-a", help="Cubic lattice constant, Å (default per composition)."),
    phase: str = typer.Option("cubic", "--phase", help="cubic | orthorhombic (Glazer tilts on the cubic cut)."),
    glazer: str = typer.Option("a-a-c+", "--glazer", help="Glazer tilt pattern for --phase orthorhombic."),
    tilt: str = typer.Option("10,10,10", "--tilt", help="Tilt angles about x,y,z in degrees."),
    neutrality: str = typer.Option("remove-a", "--neutrality",
                                   help="remove-a | surface-charge | electrons (the last two remove only the 8 corner A)."),
    ligand: list[str] = LIG_OPT,
    shell: str = typer.Option(None, "--shell", help="Core/shell: ELEMENT:LAYERS replaces B in the outer layers, e.g. Ca:1."),
    balance: str = typer.Option("remove-a", "--balance", help="Neutral X-site ligands: remove-a (stay neutral) | keep."),
    seed: int = SEED_OPT,
    vacuum: float = VAC_OPT,
    min_distance: float = MIND_OPT,
    ligand_file: Path = LIGFILE_OPT,
    output: Path = OUT_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Perovskite ABX3 cube or cuboid, A–X terminated, optionally core/shell and ligand-capped."""
    try:
        tilt_deg = tuple(float(t) for t in tilt.split(","))
    except ValueError:
        raise QdlabError(f"--tilt {tilt!r} must be three comma-separated angles in degrees") from None
    recipe = PerovskiteRecipe(composition=composition, size=size, lattice=lattice, phase=phase, glazer=glazer,
                              tilt_deg=tilt_deg, neutrality=neutrality, ligands=list(ligand), shell=shell,
                              balance=balance, seed=seed, vacuum=vacuum, min_distance=min_distance)
    _run(recipe, output, as_json, ligand_file)


@app.command("pbs")
@guarded
def pbs(
    size: int = typer.Option(2, "--size", "-n", help="Octahedron radius m in units of a/2: 1 Pb6S, 2 Pb19S6, 3 Pb44S19, 4 Pb85S44."),
    ligand: str = typer.Option("OAc", "--ligand", "-l", help="Carboxylate added to neutrality (OAc, OA, ...); 'none' for bare."),
    metal: str = typer.Option("Pb", "--metal"),
    anion: str = typer.Option("S", "--anion"),
    lattice: float = typer.Option(5.936, "--lattice", "-a", help="Rock-salt lattice constant, Å."),
    seed: int = SEED_OPT,
    vacuum: float = VAC_OPT,
    min_distance: float = MIND_OPT,
    ligand_file: Path = LIGFILE_OPT,
    output: Path = OUT_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Rock-salt PbS octahedron with Pb-terminated (111) facets, carboxylate-capped to neutrality."""
    recipe = PbSRecipe(size=size, ligand=None if ligand.lower() == "none" else ligand, metal=metal, anion=anion,
                       lattice=lattice, seed=seed, vacuum=vacuum, min_distance=min_distance)
    _run(recipe, output, as_json, ligand_file)


@app.command("slab")
@guarded
def slab(
    composition: str = typer.Option("CsPbBr3", "--composition", "-c"),
    size: str = typer.Option("2x2x3", "--size", "-n", help="nx x ny lateral cells x nz octahedral layers."),
    lattice: float = typer.Option(None, "--lattice", "-a", help="Cubic lattice constant, Å."),
    ligand: list[str] = LIG_OPT,
    sides: str = typer.Option("top", "--sides", help="Ligands on the top face or on both faces."),
    seed: int = SEED_OPT,
    vacuum: float = VAC_OPT,
    min_distance: float = MIND_OPT,
    ligand_file: Path = LIGFILE_OPT,
    output: Path = OUT_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Periodic A–X terminated (001) slab (for ligand binding energies)."""
    recipe = SlabRecipe(composition=composition, size=size, lattice=lattice, ligands=list(ligand), sides=sides,
                        seed=seed, vacuum=vacuum, min_distance=min_distance)
    _run(recipe, output, as_json, ligand_file)
