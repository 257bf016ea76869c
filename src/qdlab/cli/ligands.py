"""``qdlab ligands list|show|add``: the ligand library."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from qdlab.build.ligands import get_ligand, library, ligand_atoms, make_ligand, save_user_ligand
from qdlab.cli.common import JSON_OPT, emit_json, guarded
from qdlab.store.files import write_atoms

app = typer.Typer(help="The ligand library (built-in table of seed 000/001/002 plus user ligands).",
                  no_args_is_help=True)


@app.command("list")
@guarded
def list_(as_json: bool = JSON_OPT) -> None:
    """Show every known ligand: name, site, charge, SMILES and binding motif."""
    ligs = list(library().values())
    if as_json:
        emit_json([lig.to_dict() for lig in ligs])
        return
    table = Table(title=f"{len(ligs)} ligands")
    for col in ("name", "full name", "site", "charge", "SMILES (bound form)", "motif (SMARTS)", "source"):
        table.add_column(col)
    for lig in ligs:
        table.add_row(lig.name, lig.full_name, lig.site, f"{lig.charge:+d}", lig.smiles, lig.motif, lig.source)
    Console().print(table)


@app.command("show")
@guarded
def show(name: str, seed: int = typer.Option(0, "--seed"),
         output: Path = typer.Option(None, "-o", "--output", help="Write the 3D ligand (local frame) to a file."),
         as_json: bool = JSON_OPT) -> None:
    """Build one ligand in 3D (RDKit ETKDG + MMFF, seeded) and describe it."""
    lig = get_ligand(name)
    atoms = ligand_atoms(lig, seed)
    info = lig.to_dict() | {"formula": atoms.get_chemical_formula(mode="hill"), "n_atoms": len(atoms)}
    if output is not None:
        write_atoms(output, atoms)
        info["output"] = str(output)
    if as_json:
        emit_json(info)
    else:
        Console().print(info)


@app.command("add")
@guarded
def add(name: str, smiles: str,
        motif: str = typer.Option(..., "--motif", help="SMARTS of the binding atoms; atom-mapped atoms bind, e.g. '[O-:1]C=[O:2]'."),
        site: str = typer.Option(..., "--site", help="A (replaces an A cation) or X (replaces an anion)."),
        full_name: str = typer.Option("", "--full-name"),
        as_json: bool = JSON_OPT) -> None:
    """Validate a ligand (SMILES + motif) and save it in the user library."""
    lig = make_ligand(name, smiles, motif, site, full_name)
    path = save_user_ligand(lig)
    if as_json:
        emit_json(lig.to_dict() | {"library": str(path)})
    else:
        Console().print(f"added {lig.name} (charge {lig.charge:+d}, site {lig.site}) to {path}")
