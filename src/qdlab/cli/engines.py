"""``qdlab engines list``, ``qdlab single`` and ``qdlab relax``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from qdlab.cli.common import JSON_OPT, console, emit_json, guarded, settings_default

app = typer.Typer(help="Energy engines (ASE calculators).", no_args_is_help=True)

ENGINE_OPT = typer.Option("chgnet", "--engine", "-e", help="chgnet | sevenn | mattersim | classical | xtb | cp2k")
MODEL_OPT = typer.Option(None, "--model",
                         help="Pretrained model (0.3.0, 7net-0, GFN2-xTB) or a file: checkpoint / LJ parameter JSON|TOML.")
CKPT_OPT = typer.Option(None, "--checkpoint", help="Model checkpoint file (fine-tuned or MatterSim).")
DEVICE_OPT = typer.Option("cpu", "--device", help="cpu | cuda | auto")
THREADS_OPT = typer.Option(None, "--threads", help="Torch threads (default: leave as set by OMP_NUM_THREADS).")
D3_OPT = typer.Option(False, "--d3", help="Add D3(BJ) dispersion (dftd3 package).")


def engine_spec(engine: str, model: str | None = None, checkpoint: str | None = None, device: str = "cpu",
                threads: int | None = None, d3: bool = False):
    """The :class:`qdlab.engines.spec.EngineSpec` of the engine options (one object for the CLI,
    the campaign and the checkpoints)."""
    from qdlab.engines.spec import EngineSpec

    return EngineSpec(name=engine, model=model, checkpoint=checkpoint, device=device, threads=threads, d3=d3)


@app.command("list")
@guarded
def list_(as_json: bool = JSON_OPT) -> None:
    """Show the engines, their models and whether they are installed."""
    from qdlab.engines import list_engines

    rows = list_engines()
    if as_json:
        emit_json(rows)
        return
    table = Table(title="engines")
    for col in ("name", "kind", "models", "available", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["kind"], ", ".join(r["models"]), "yes" if r["available"] else "no", r["description"])
    Console().print(table)


def _relax_default(name: str):
    from qdlab.workflows.relax import RelaxSettings

    return settings_default(RelaxSettings, name)


FMAX_OPT = typer.Option(_relax_default("fmax"), "--fmax", help="Force convergence, eV/Å.")
RATTLE_OPT = typer.Option(_relax_default("rattle_A"), "--rattle",
                          help="Seeded Gaussian displacement before relaxing, Å (0: none; as the campaign's relax step).")
SEED_OPT = typer.Option(0, "--seed", help="Seed of the rattle.")


@guarded
def relax_cmd(structure: Path, output: Path = typer.Option(..., "-o", "--output", help="Relaxed structure (extxyz)."),
              engine: str = ENGINE_OPT, model: str = MODEL_OPT, checkpoint: str = CKPT_OPT, device: str = DEVICE_OPT,
              threads: int = THREADS_OPT, d3: bool = D3_OPT,
              optimizer: str = typer.Option(_relax_default("optimizer"), "--optimizer", help="lbfgs | fire | bfgs"),
              fmax: float = FMAX_OPT,
              steps: int = typer.Option(_relax_default("steps"), "--steps", help="Maximum optimizer steps."),
              rattle: float = RATTLE_OPT, seed: int = SEED_OPT,
              fix: str = typer.Option(None, "--fix", help="Freeze a selection, e.g. 'depth>=2', 'role=B'."),
              trajectory: Path = typer.Option(None, "--trajectory", help="ASE .traj written each step (restart point)."),
              restart: bool = typer.Option(True, "--restart/--no-restart", help="Resume from the trajectory and its saved optimizer state."),
              as_json: bool = JSON_OPT) -> None:
    """Relax a structure (L-BFGS by default) with any engine; resumable from its trajectory."""
    from qdlab.build.gate import check_option
    from qdlab.cli.inputs import load_engine, load_structure
    from qdlab.store.files import write_atoms
    from qdlab.workflows.relax import RelaxSettings, run_relax

    check_option("--fmax", fmax, gt=0, unit="eV/Å")  # one line naming the option, before any work
    check_option("--steps", steps, ge=0)
    settings = RelaxSettings(optimizer=optimizer, fmax=fmax, steps=steps, rattle_A=rattle, seed=seed, fix=fix)
    atoms = load_structure(structure, what="relax input")
    calc = load_engine(atoms, engine_spec(engine, model, checkpoint, device, threads, d3))
    traj = trajectory or output.with_suffix(".traj")

    def show(step: int, energy: float, fm: float) -> None:
        if not as_json:
            console.print(f"step {step:5d}  E = {energy:.6f} eV  fmax = {fm:.4f} eV/Å", highlight=False)

    from qdlab.store.locks import output_lock

    with output_lock(traj, what="relaxation trajectory"):  # a second relax into the same files is refused
        res = run_relax(atoms, calc, settings, trajectory=traj, restart=restart, callback=show)
        write_atoms(output, res.atoms)
    info = {"output": str(output), "trajectory": str(traj), "converged": res.converged, "steps": res.steps,
            "energy_eV": res.energy_eV, "fmax_eV_A": res.fmax_eV_A, "n_fixed": res.n_fixed,
            "restarted_from_step": res.restarted_from_step, "engine": engine, "rattle_A": rattle, "seed": seed}
    if as_json:
        emit_json(info)
    else:
        console.print(f"{'converged' if res.converged else 'NOT converged'} after {res.steps} steps: "
                      f"E = {res.energy_eV:.6f} eV, fmax = {res.fmax_eV_A:.4f} eV/Å → {output}")
    if not res.converged:
        raise typer.Exit(code=1)


@guarded
def single_cmd(structure: Path, engine: str = ENGINE_OPT, model: str = MODEL_OPT, checkpoint: str = CKPT_OPT,
               device: str = DEVICE_OPT, threads: int = THREADS_OPT, d3: bool = D3_OPT,
               as_json: bool = JSON_OPT) -> None:
    """Single point: energy (eV), max force (eV/Å) and timing of one engine call."""
    import time

    import numpy as np

    from qdlab.cli.inputs import load_engine, load_structure
    from qdlab.errors import QdlabError

    atoms = load_structure(structure)
    calc = load_engine(atoms, engine_spec(engine, model, checkpoint, device, threads, d3))
    atoms.calc = calc
    t0 = time.perf_counter()
    energy = float(atoms.get_potential_energy())
    forces = atoms.get_forces()
    seconds = time.perf_counter() - t0
    if not (np.isfinite(energy) and np.isfinite(forces).all()):
        raise QdlabError(f"engine {engine} returned non-finite energy or forces for {structure}")
    fmax = float(np.sqrt((forces ** 2).sum(1)).max())
    info = {"structure": str(structure), "engine": engine, "model": model or checkpoint, "d3": d3,
            "atoms": len(atoms), "formula": atoms.get_chemical_formula(mode="hill"), "energy_eV": energy,
            "energy_per_atom_eV": energy / len(atoms), "fmax_eV_A": fmax, "seconds": round(seconds, 4)}
    if as_json:
        emit_json(info)
        return
    console.print(f"{info['formula']} ({len(atoms)} atoms) with {engine}: E = {energy:.6f} eV, "
                  f"max |F| = {fmax:.4f} eV/Å ({seconds:.2f} s)", highlight=False)
