"""The ``qdlab`` command line: a thin typer front end over the library."""

from __future__ import annotations

import os

# One OpenMP thread with passive waiting unless the user says otherwise: two busy-waiting
# processes sharing our 2 cores made CHGNet 30x slower (measured).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import typer  # noqa: E402

from qdlab import __version__  # noqa: E402
from qdlab.cli import binding as binding_cli  # noqa: E402
from qdlab.cli import build as build_cli  # noqa: E402
from qdlab.cli import campaign as campaign_cli  # noqa: E402
from qdlab.cli.analyze import analyze_app  # noqa: E402
from qdlab.cli import engines as engines_cli  # noqa: E402
from qdlab.cli.electronic import electronic_app  # noqa: E402
from qdlab.cli import experiment as experiment_cli  # noqa: E402
from qdlab.cli import ir as ir_cli  # noqa: E402
from qdlab.cli import learn as learn_cli  # noqa: E402
from qdlab.cli import ligands as ligands_cli  # noqa: E402
from qdlab.cli import md as md_cli  # noqa: E402
from qdlab.cli import phonons as phonons_cli  # noqa: E402
from qdlab.cli.common import JSON_OPT, AliasGroup, console, emit_json, guarded  # noqa: E402

app = typer.Typer(name="qdlab", help="Computational studies of ligand-capped semiconductor nanocrystals.",
                  no_args_is_help=True, pretty_exceptions_enable=False, cls=AliasGroup)
app.add_typer(build_cli.app, name="build")
app.add_typer(ligands_cli.app, name="ligands")
app.add_typer(experiment_cli.plate_app, name="plate")
app.add_typer(experiment_cli.pl_app, name="pl")
app.add_typer(engines_cli.app, name="engines")
app.command("relax")(engines_cli.relax_cmd)
app.command("single")(engines_cli.single_cmd)
app.add_typer(phonons_cli.app, name="phonons")
app.command("binding")(binding_cli.binding_cmd)
app.command("committee")(binding_cli.committee_cmd)
app.command("md")(md_cli.md_cmd)
app.add_typer(ir_cli.app, name="ir")
app.add_typer(analyze_app, name="analyze")
app.add_typer(electronic_app, name="electronic")
app.add_typer(learn_cli.dataset_app, name="dataset")
app.command("label")(learn_cli.label_cmd)
app.command("finetune")(learn_cli.finetune_cmd)
app.command("parity")(learn_cli.parity_cmd)
app.command("learn")(learn_cli.learn_cmd)
app.add_typer(campaign_cli.campaign_app, name="campaign")
app.add_typer(campaign_cli.export_app, name="export")
app.command("report")(campaign_cli.report_cmd)
app.command("import")(campaign_cli.import_cmd)
app.command("reproduce")(campaign_cli.reproduce_cmd)


def _version(value: bool) -> None:
    if value:
        print(f"qdlab {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Show the version and exit.")) -> None:
    """qdlab: build, compute, simulate and analyse nanocrystal models."""


@app.command("render")
@guarded
def render(structure: Path, output: Path = typer.Option(None, "-o", "--output", help="PNG file (default: beside the input)."),
           title: str = typer.Option(None, "--title")) -> None:
    """Render a structure file to a PNG picture (two views)."""
    from qdlab.cli.inputs import load_structure
    from qdlab.report.plots import render_structure

    atoms = load_structure(structure)
    out = output or structure.with_suffix(".png")
    render_structure(atoms, out, title=title)
    console.print(f"wrote {out}")


@app.command("rattle")
@guarded
def rattle_cmd(structure: Path, output: Path = typer.Option(..., "-o", "--output"),
               seed: int = typer.Option(0, "--seed"),
               count: int = typer.Option(1, "--count", help="Number of rattled copies (seeds seed, seed+1, ...)."),
               as_json: bool = JSON_OPT) -> None:
    """Rattle a model ∝ covalent radius (organic 10–15 %, inorganic 15–25 %) for training data."""
    from qdlab.build.rattle import rattle
    from qdlab.cli.inputs import load_structure
    from qdlab.errors import QdlabError
    from qdlab.store.files import write_atoms

    if count < 1:
        raise QdlabError("--count must be ≥ 1")
    atoms = load_structure(structure)
    frames = [rattle(atoms, seed=seed + k) for k in range(count)]
    write_atoms(output, frames)
    if as_json:
        emit_json({"output": str(output), "frames": count, "n_atoms": len(atoms)})
    else:
        console.print(f"wrote {count} rattled frame(s) to {output}")


@app.command("info")
@guarded
def info(structure: Path, as_json: bool = JSON_OPT,
         output: Path = typer.Option(None, "-o", "--output",
                                     help="Write the model with its (perceived) labels as extended XYZ.")) -> None:
    """Summarise a model file (formula, charge, element and ligand counts); a structure made
    elsewhere (no qdlab labels) is perceived: roles, ligands, depth layers, facets, charge."""
    from qdlab.build.perceive import describe
    from qdlab.cli.inputs import load_structure
    from qdlab.store.files import write_atoms

    atoms = load_structure(structure, check=False)
    s, labelled = describe(atoms)
    if output is not None:
        write_atoms(output, labelled)
    if as_json:
        emit_json(s)
    else:
        console.print(s)


@app.command("demo")
@guarded
def demo(out: Path = typer.Option(Path("demo_out"), "--output", "-o", help="Output folder."),
         full: bool = typer.Option(False, "--full", help="Also seed 000's 3×3×3 pair, 50 % MA + BzO, on CPU "
                                                         "(capped: 701 atoms, ≈95 core-min)."),
         workers: int = typer.Option(2, "--workers", help="Local Dask workers (one process, one thread each)."),
         device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto"),
         size: int = typer.Option(2, "--size", help="Cube edge of the bare/capped pair, unit cells."),
         coverage: float = typer.Option(0.25, "--coverage", help="Fraction of surface sites per ligand (MA, BzO)."),
         fmax: float = typer.Option(0.005, "--fmax", help="Relaxation threshold before the Hessian, eV/Å."),
         as_json: bool = JSON_OPT) -> None:
    """The main job: bare vs MA/BzO-capped CsPbBr3 NC of one size: relax, Γ-phonon DOS with CHGNet,
    M1/M2/M3 and the ligand shifts, report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from qdlab.campaign.demo import run_demo

    with Progress(TextColumn("[bold]demo tasks + displacement chunks"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("demo", total=None)
        result = run_demo(out, log=lambda m: console.print(m, highlight=False, markup=False, soft_wrap=True),
                          full=full, workers=workers, device=device, size=size, coverage=coverage, fmax=fmax,
                          progress=lambda d, t, s: bar.update(task, completed=d, total=t))
    if as_json:
        emit_json(result)
