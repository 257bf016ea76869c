"""Pseudopotential commands of the ``qdlab electronic`` group.

``bands CELL --method pseudopotential`` (bulk gap and effective masses), ``states STRUCTURE``
(nanocrystal states near the gap, checkpointed) and ``excitons STRUCTURE`` (BSE fine structure,
spectrum and level plot; ``--eps`` reruns from stored kernels).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from qdlab.cli.common import JSON_OPT, console, emit_json, guarded
from qdlab.cli.inputs import load_structure
from qdlab.errors import QdlabError


def pp_bands(cell: str, *, phase: str | None = None, ecut: float = 6.0, kpoint: str | None = None,
             dk: float = 0.01, output: Path | None = None, as_json: bool = False) -> None:
    """Bulk band gap and effective masses at the band edge (plane waves, spinors)."""
    from qdlab.electronic.pseudopotential.bulk import cubic_cell, effective_masses, orthorhombic_cell
    from qdlab.store.files import write_text

    if ecut <= 0 or dk <= 0:
        raise QdlabError("--ecut and --dk must be positive")
    builtin = {"cubic": (cubic_cell, (0.5, 0.5, 0.5)), "orthorhombic": (orthorhombic_cell, (0.0, 0.0, 0.0))}
    if cell in builtin:
        atoms, k0 = builtin[cell][0](), builtin[cell][1]
        phase = phase or cell
    else:
        atoms, k0 = load_structure(Path(cell), what="bulk cell"), (0.0, 0.0, 0.0)
        if not atoms.pbc.all():
            raise QdlabError(f"{cell} is not periodic in three directions")
    if phase not in ("cubic", "orthorhombic"):
        raise QdlabError("--phase must be cubic or orthorhombic")
    if kpoint:
        try:
            k0 = tuple(float(x) for x in kpoint.split(","))
            assert len(k0) == 3
        except (ValueError, AssertionError):
            raise QdlabError(f"--kpoint {kpoint!r} must be three comma-separated numbers") from None
    res = effective_masses(atoms, phase, k0, ecut_Ha=ecut, dk_B=dk)
    if output is not None:
        write_text(output, json.dumps(res.to_dict(), indent=2))
    if as_json:
        emit_json(res.to_dict())
        return
    console.print(f"{phase} {atoms.get_chemical_formula()}: gap {res.gap_eV:.3f} eV at k={k0}, "
                  f"m_h {res.m_h:.3f}, m_e {res.m_e:.3f} m_e (E_cut {ecut:g} Ha, {res.n_pw} plane waves)")


def _settings(spacing, vacuum, n_below, n_above, ref, max_memory, phase, device="cpu", precision="double", block=None,
              checkpoint_s=600.0, max_calls=None):
    from qdlab.electronic.pseudopotential.engine import StatesSettings

    if precision not in ("double", "single"):
        raise QdlabError(f"--precision must be double or single, not {precision!r}")
    return StatesSettings(spacing_B=spacing, vacuum_B=vacuum, n_below=n_below, n_above=n_above, ref_eV=ref,
                          max_memory_GB=max_memory, phase=phase, device=device, precision=precision, block=block,
                          checkpoint_s=checkpoint_s, max_calls=max_calls)


SPACING = typer.Option(0.5, "--spacing", help="grid spacing, Bohr")
VACUUM = typer.Option(8.0, "--vacuum", help="vacuum on every side, Bohr")
REF = typer.Option(-5.1, "--ref", help="reference energy inside the gap, eV")
MAXMEM = typer.Option(16.0, "--max-memory", help="refuse when the estimate exceeds this, GB")
PHASE = typer.Option(None, "--phase", help="one Table S4 set for all atoms instead of the per-atom mixing")
DEVICE = typer.Option("cpu", "--device", help="torch device of H·X and, on cuda, of the solver's block algebra "
                      "(cpu, cuda) or 'numpy' (reference path)")
PRECISION = typer.Option("double", "--precision", help="H·X in double or single (≈1e-6 relative) precision")
BLOCK = typer.Option(None, "--block", min=1, help="states asked of one solver call (memory ∝ block; more centres "
                     "cover the rest; default: all at once)")
MAX_CALLS = typer.Option(None, "--max-calls", min=1, help="solver calls before the search gives up (default 4 + 2 "
                         "per block of states); a rerun with more continues a search that ran out")
CKPT_EVERY = typer.Option(600.0, "--checkpoint-every", min=0, help="seconds between saves of the solver's state "
                          "(<output>.partial.npz; a killed run resumes from it)")


@guarded
def states_cmd(structure: Path = typer.Argument(..., help="finite structure (xyz, extxyz, …)"),
               spacing: float = SPACING, vacuum: float = VACUUM,
               n_below: int = typer.Option(8, "--holes", help="occupied spinor states"),
               n_above: int = typer.Option(8, "--electrons", help="empty spinor states"),
               ref: float = REF, max_memory: float = MAXMEM, phase: str = PHASE, device: str = DEVICE,
               precision: str = PRECISION, block: int = BLOCK, checkpoint_every: float = CKPT_EVERY,
               max_calls: int = MAX_CALLS,
               output: Path = typer.Option(Path("states.npz"), "--output", "-o", help="states checkpoint (npz)"),
               as_json: bool = JSON_OPT) -> None:
    """Spinor states near the gap of a nanocrystal on a real-space grid (checkpointed, reused)."""
    from qdlab.electronic.pseudopotential.engine import nanocrystal_states

    atoms = load_structure(structure)
    s = _settings(spacing, vacuum, n_below, n_above, ref, max_memory, phase, device, precision, block, checkpoint_every,
                  max_calls)
    with console.status(f"states near the gap (folded-spectrum {s.solver})…"):
        gs = nanocrystal_states(atoms, s, checkpoint=output)
    st = gs.states
    out = {"energies_eV": st.energies_eV.tolist(), "occupied": st.occupied.tolist(), "gap_eV": st.gap_eV,
           "checkpoint": str(output), "grid": st.info["grid"], "seconds": st.info["seconds"]}
    if as_json:
        emit_json(out)
        return
    console.print(f"gap {st.gap_eV:.3f} eV (HOMO {st.homo_eV:.3f}, LUMO {st.lumo_eV:.3f} eV), grid {st.info['grid']} "
                  f"→ {output}")


@guarded
def excitons_cmd(structure: Path = typer.Argument(..., help="finite structure (xyz, extxyz, …)"),
                 spacing: float = SPACING, vacuum: float = VACUUM, ref: float = REF, max_memory: float = MAXMEM,
                 phase: str = PHASE, device: str = DEVICE, precision: str = PRECISION, block: int = BLOCK,
                 checkpoint_every: float = CKPT_EVERY, max_calls: int = MAX_CALLS,
                 n_electrons: int = typer.Option(None, "--electrons",
                                                 help="electron spinor states in the BSE (default: all computed, ≤ 60)"),
                 n_holes: int = typer.Option(None, "--holes", help="hole spinor states in the BSE (default ≤ 60)"),
                 n_states: int = typer.Option(8, "--states", help="spinor states computed on each side of the gap"),
                 eps: float = typer.Option(None, "--eps", help="dielectric constant (default 4.9, CsPbI3 ε∞)"),
                 eps_xyz: tuple[float, float, float] = typer.Option(
                     None, "--eps-xyz", help="anisotropic ε_x ε_y ε_z (seed's split kernel)"),
                 coulomb: str = typer.Option("truncated", "--coulomb", help="cluster kernel: truncated | split"),
                 series: str = typer.Option(None, "--basis-series",
                                            help="also solve on the lowest k electron + highest k hole states for "
                                                 "each k, e.g. 8,16,32 (subsets of the one kernel: convergence "
                                                 "in the BSE basis)"),
                 output: Path = typer.Option(Path("excitons"), "--output", "-o", help="work folder (checkpoints, plot)"),
                 as_json: bool = JSON_OPT) -> None:
    """Exciton fine structure (BSE, TDA): energies, ⟨S²⟩, bright–dark splitting, spectrum plot."""
    from qdlab.electronic.bse import EPS_CSPBI3
    from qdlab.report.exciton_plots import plot_excitons
    from qdlab.workflows.excitons import (ExcitonSettings, ExcitonUnit, basis_series, evaluate_exciton_unit,
                                          solve_screened, stored_kernel)
    from qdlab.store.files import write_text

    sizes = _sizes(series)
    atoms = load_structure(structure)
    st = _settings(spacing, vacuum, max(n_states, n_holes or 0), max(n_states, n_electrons or 0), ref, max_memory,
                   phase, device, precision, block, checkpoint_every, max_calls)
    try:
        settings = ExcitonSettings(states=st, n_electrons=n_electrons, n_holes=n_holes, eps=eps or EPS_CSPBI3,
                                   eps_xyz=eps_xyz, coulomb=coulomb, max_memory_GB=max_memory)
    except ValueError as exc:
        raise QdlabError(f"bad BSE settings: {exc.errors()[0]['msg'] if hasattr(exc, 'errors') else exc}") from exc
    name = structure.stem
    with console.status("states, BSE kernel, excitons…"):
        row = evaluate_exciton_unit(ExcitonUnit(name, atoms), settings, output)
    kernel, eps_used = stored_kernel(output, name), None if eps_xyz else settings.eps   # loaded once: plot and series
    plot = plot_excitons(solve_screened(kernel, eps_used), output / f"{name}.excitons.png")
    row["plot"] = str(plot)
    if sizes:
        row["basis_series"] = basis_series(kernel, sizes, eps_used)
        write_text(output / f"{name}.basis_series.json", json.dumps(row["basis_series"], indent=1, default=float))
    if as_json:
        emit_json(row)
        return
    eps_txt = f"ε_xyz = {tuple(eps_xyz)}, split kernel" if eps_xyz else f"ε = {settings.eps:g}, {settings.coulomb} kernel"
    t = Table(title=f"{row['formula']}: excitons ({eps_txt}) → {plot}")
    for c in ("E (eV)", "E−E₁ (meV)", "⟨S²⟩", "f_x", "f_y", "f_z"):
        t.add_column(c)
    for e, s2, f in zip(row["energies_eV"], row["s2"], row["oscillator_xyz"]):
        t.add_row(f"{e:.4f}", f"{(e - row['energies_eV'][0]) * 1e3:.2f}", f"{s2:.2f}", *[f"{x:.2e}" for x in f])
    console.print(t)
    console.print(f"gap {row['gap_eV']:.3f} eV, optical gap {row['optical_gap_eV']:.3f} eV, "
                  f"binding {row['binding_eV']:.3f} eV, bright–dark {row.get('bright_dark_meV', float('nan')):.2f} meV")
    if sizes:
        console.print(_series_table(row["basis_series"]))


def _sizes(text: str | None) -> list[int]:
    """``--basis-series`` "8,16,32" → [8, 16, 32] (one-line error on anything else)."""
    if not text:
        return []
    try:
        return [int(k) for k in text.split(",")]
    except ValueError as exc:
        raise QdlabError(f"--basis-series takes comma-separated state counts (e.g. 8,16,32), not {text!r}") from exc


def _series_table(rows: list[dict]) -> Table:
    t = Table(title="BSE basis series (k electron + k hole states, one kernel)")
    for c in ("k", "optical gap (eV)", "lowest ⟨S²⟩", "bright − dark (meV)", "bright splittings (meV)", "cuts a multiplet"):
        t.add_column(c)
    for r in rows:
        split = " / ".join(f"{x:.2f}" for x in r.get("bright_splittings_meV", [])[1:]) or "–"
        t.add_row(str(r["k"]), f"{r['optical_gap_eV']:.4f}", f"{r['lowest_s2']:.2f}",
                  f"{r.get('bright_dark_meV', float('nan')):.1f}", split, "yes" if r["cuts_multiplet"] else "no")
    return t
