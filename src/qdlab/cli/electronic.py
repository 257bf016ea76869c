"""``qdlab electronic bands|gap|fit`` and ``qdlab analyze linewidth``: band edges and linewidths.

Thin: parse, call :mod:`qdlab.electronic` / :mod:`qdlab.workflows.gap` /
:mod:`qdlab.analysis.exciton_phonon`, print. Energies in eV (keys end in ``_eV``/``_meV``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from qdlab.cli.common import JSON_OPT, console, emit_json, guarded
from qdlab.errors import QdlabError

electronic_app = typer.Typer(help="Band-edge electronic structure: bulk bands, gaps of structures and trajectories.",
                             no_args_is_help=True)

METHOD_OPT = typer.Option("tight-binding", "--method", help="Band-edge method: tight-binding | pseudopotential (bands: CsPbI3, seed 003).")
PARAMS_OPT = typer.Option(None, "--params", help="TB parameter set: CsPbI3-nestoklon, CsPbBr3-kashikar or a JSON/TOML file "
                          "(default: the set for the halide present).")
ETA_OPT = typer.Option(None, "--eta", help="Harrison exponent η of V ∝ (d0/d)^η (default: the set's).")
SOC_OPT = typer.Option(True, "--soc/--no-soc", help="Spin–orbit coupling.")


def _table(title: str, rows: list[tuple[str, str]]) -> None:
    t = Table(title=title, show_header=False)
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)


@electronic_app.command("bands")
@guarded
def bands_cmd(cell: str = typer.Argument(..., help="Periodic cell file (POSCAR, CIF, extxyz) or 'reference' "
                                         "for the parameter set's cubic cell."),
              method: str = METHOD_OPT, params: str = PARAMS_OPT, eta: float = ETA_OPT, soc: bool = SOC_OPT,
              out: Path = typer.Option(Path("bands_out"), "--output", "-o", help="Output folder (CSV, JSON, PNG)."),
              phase: str = typer.Option(None, "--phase", help="pseudopotential: Table S4 set (cubic | orthorhombic); "
                                        "CELL may be 'cubic' or 'orthorhombic'."),
              ecut: float = typer.Option(6.0, "--ecut", help="pseudopotential: plane-wave cutoff, Hartree."),
              kpoint: str = typer.Option(None, "--kpoint", help="pseudopotential: fractional k of the gap, e.g. 0.5,0.5,0.5."),
              as_json: bool = JSON_OPT) -> None:
    """Bulk band structure along Γ–X–M–R, the gap and effective masses at R (Bloch sums);
    with ``--method pseudopotential`` the gap and effective masses of the seed 003 plane-wave Hamiltonian."""
    from qdlab.electronic.tb.bulk import bulk_bands, plot_bands
    from qdlab.electronic.tb.params import default_params_for, load_params
    from qdlab.store.files import write_text

    if method == "pseudopotential":
        from qdlab.cli.excitons import pp_bands

        out.mkdir(parents=True, exist_ok=True)
        pp_bands(cell, phase=phase, ecut=ecut, kpoint=kpoint, output=out / "bands.json", as_json=as_json)
        return
    if method != "tight-binding":
        raise QdlabError(f"unknown band method {method!r} (available: tight-binding, pseudopotential)")
    atoms = None
    if cell != "reference":
        from qdlab.cli.inputs import load_structure

        atoms = load_structure(Path(cell), what="bulk cell")
        if not np.all(atoms.pbc):
            raise QdlabError(f"{cell}: bands need a 3D-periodic cell (pbc True); for a cluster use `electronic gap`")
    p = load_params(params) if params else (load_params("CsPbBr3-kashikar") if atoms is None
                                             else default_params_for(atoms.get_chemical_symbols()))
    p = p if eta is None else p.with_changes(eta=eta)
    b = bulk_bands(p, atoms, soc=soc)
    out.mkdir(parents=True, exist_ok=True)
    cols = np.column_stack([b.x, b.energies_eV])
    header = "k_path_1_per_A," + ",".join(f"band{i}_eV" for i in range(b.energies_eV.shape[1]))
    write_text(out / "bands.csv", header + "\n" + "\n".join(",".join(f"{v:.8g}" for v in r) for r in cols) + "\n")
    plot_bands(b, out / "bands.png")  # written atomically
    summary = b.summary() | {"files": [str(out / f) for f in ("bands.csv", "bands.json", "bands.png")]}
    write_text(out / "bands.json", json.dumps(summary, indent=2) + "\n")
    if as_json:
        emit_json(summary)
        return
    m = b.masses_me
    _table(f"{b.params} → {out}", [("gap at R", f"{b.gap_R_eV:.4f} eV"), ("gap on Γ–X–M–R", f"{b.gap_path_eV:.4f} eV"),
                                   ("m_e* (100/110/111)", " / ".join(f"{m['electron'][k]:.3f}" for k in ("100", "110", "111"))),
                                   ("m_h* (100/110/111)", " / ".join(f"{m['hole'][k]:.3f}" for k in ("100", "110", "111")))])


def _structure_summary(atoms, st) -> dict:
    from qdlab.electronic.tb.cluster import weights_by

    h = int(np.flatnonzero(st.occupied)[np.argmax(st.energies_eV[st.occupied])])
    lu = int(np.flatnonzero(~st.occupied)[np.argmin(st.energies_eV[~st.occupied])])
    w = st.atom_weights[[h, lu]]
    out = {"homo_eV": st.homo_eV, "lumo_eV": st.lumo_eV, "gap_eV": st.gap_eV, "energies_eV": st.energies_eV.tolist(),
           "ipr": {"homo": float(st.ipr()[h]), "lumo": float(st.ipr()[lu])},
           "weights_by_element": {k: {"homo": float(v[0]), "lumo": float(v[1])}
                                  for k, v in weights_by(w, atoms.get_chemical_symbols()).items()}}
    if "depth" in atoms.arrays:
        out["weights_by_depth"] = {str(k): {"homo": float(v[0]), "lumo": float(v[1])}
                                   for k, v in weights_by(w, atoms.arrays["depth"]).items()}
    return out | {"info": st.info}


@electronic_app.command("gap")
@guarded
def gap_cmd(structure: Path = typer.Argument(..., help="Structure (one frame) or trajectory (extxyz/traj)."),
            method: str = METHOD_OPT, params: str = PARAMS_OPT, eta: float = ETA_OPT, soc: bool = SOC_OPT,
            n_states: int = typer.Option(2, "--states", help="States each side of the gap."),
            skip: int = typer.Option(0, "--skip-frames", help="Discard the first N frames."),
            stride: int = typer.Option(1, "--stride", help="Every K-th frame."),
            dt_fs: float = typer.Option(None, "--dt-fs", help="Frame spacing (fs) when frames carry no time_fs."),
            linear: bool = typer.Option(False, "--linear", help="Linear Hellmann–Feynman model around frame 1."),
            workers: int = typer.Option(1, "--workers", help="Worker processes for a trajectory."),
            plot: Path = typer.Option(None, "--plot", help="PNG of the band-edge density on the structure (one frame)."),
            output: Path = typer.Option(None, "--output", "-o", help="Output: JSON for a structure, CSV gap trace for a "
                                        "trajectory (default: <input>_gap.json / .csv)."),
            as_json: bool = JSON_OPT) -> None:
    """HOMO, LUMO and gap of a structure (with band-edge weights), or the gap trace of a trajectory."""
    from qdlab.store.files import write_text
    from qdlab.workflows.gap import GapSettings, band_edge_engine, gap_trajectory, plan_frames, save_gap_trace

    settings = GapSettings(method=method, params=params, eta=eta, n_states=n_states, soc=soc, skip=skip,
                           stride=stride, dt_fs=dt_fs, linear=linear)
    plan = plan_frames(structure, settings)
    if len(plan.indices) == 1:
        from ase.io import read

        atoms = read(structure, index=plan.indices[0])
        st = band_edge_engine(settings).states(atoms, n_states)
        summary = _structure_summary(atoms, st)
        path = output or structure.with_name(structure.stem + "_gap.json")
        if plot:
            from qdlab.electronic.plots import plot_band_edge_density

            plot_band_edge_density(atoms, st, plot, title=f"{structure.name}: gap {st.gap_eV:.3f} eV")
        write_text(path, json.dumps(summary, indent=2, default=float) + "\n")
        if as_json:
            emit_json(summary | {"output": str(path)})
            return
        rows = [("gap", f"{st.gap_eV:.4f} eV"), ("HOMO / LUMO", f"{st.homo_eV:.4f} / {st.lumo_eV:.4f} eV"),
                ("IPR HOMO / LUMO", f"{summary['ipr']['homo']:.4f} / {summary['ipr']['lumo']:.4f}")]
        rows += [(f"weight {k}", f"HOMO {v['homo']:.3f}  LUMO {v['lumo']:.3f}") for k, v in summary["weights_by_element"].items()]
        _table(f"{structure} ({st.info['params']}, {st.info['solver']}, {st.info['time_s']:.2f} s) → {path}", rows)
        return
    path = output or structure.with_name(structure.stem + "_gap.csv")
    ckpt = path.with_name(path.name + ".ckpt.jsonl")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from qdlab.store.locks import output_lock

    with output_lock(path, what="gap run"), \
            Progress(TextColumn("[bold]gap frames"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                     console=console, disable=as_json) as bar:  # a second run into this output is refused
        task = bar.add_task("gap", total=len(plan.indices))
        trace = gap_trajectory(structure, settings, checkpoint=ckpt, workers=workers,
                               progress=lambda d, t: bar.update(task, completed=d, total=t))
        save_gap_trace(trace, path)
        ckpt.unlink(missing_ok=True)
    summary = {"output": str(path), "n_frames": len(trace.gap_eV), "mean_gap_eV": float(trace.gap_eV.mean()),
               "std_gap_meV": float(trace.gap_eV.std() * 1e3), "min_gap_eV": float(trace.gap_eV.min()),
               "max_gap_eV": float(trace.gap_eV.max()), "linear": linear}
    if as_json:
        emit_json(summary)
    else:
        _table(f"gap trace → {path}", [(k, f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in summary.items()])


@electronic_app.command("fit")
@guarded
def fit_cmd(frames: Path = typer.Argument(..., help="Structures (extxyz) with a reference gap in info[KEY] (eV)."),
            key: str = typer.Option("gap_eV", "--key", help="info key of the reference gap (eV)."),
            fit: list[str] = typer.Option(["eta"], "--fit", help="Parameter to fit: eta, shift:ELEMENT:ORBITAL, strain:ELEMENT:ORBITAL, onsite:ELEMENT:ORBITAL or bond:A-B:KEY "
                                          "(shift: of undercoordinated atoms only); repeatable."),
            params: str = PARAMS_OPT, soc: bool = SOC_OPT,
            absolute: bool = typer.Option(False, "--absolute", help="Fit absolute gaps (default: gap changes about the mean)."),
            holdout_every: int = typer.Option(0, "--holdout-every", help="Hold out every N-th structure (also info['holdout'])."),
            starts: int = typer.Option(1, "--starts", min=1, help="Fits from the set's values + N−1 seeded random starts; the best is kept."),
            output: Path = typer.Option(Path("fitted_params.json"), "--output", "-o", help="Fitted parameter set (JSON)."),
            as_json: bool = JSON_OPT) -> None:
    """Fit η, undercoordination shifts, on-site energies or bond integrals to reference gaps; report train/held-out errors."""
    from ase.io import read

    from qdlab.electronic.tb.fit import fit_params
    from qdlab.electronic.tb.params import default_params_for, load_params
    from qdlab.store.files import write_text

    structures = read(frames, index=":")
    missing = [i for i, a in enumerate(structures) if key not in a.info]
    if missing:
        raise QdlabError(f"{frames}: structure {missing[0]} has no info['{key}'] reference gap")
    ref = np.array([float(a.info[key]) for a in structures])
    held = np.array([bool(a.info.get("holdout", False)) for a in structures])
    if holdout_every > 0:
        held[::holdout_every] = True
    base = load_params(params) if params else default_params_for(structures[0].get_chemical_symbols())
    res = fit_params(structures, ref, base, fit, relative=not absolute, held_out=held, soc=soc, starts=starts)
    summary = res.summary()
    out = res.params.to_dict() | {"fit": summary | {"reference": str(frames), "key": key, "base": base.name}}
    out["name"] = f"{base.name}+fit"
    write_text(output, json.dumps(out, indent=2) + "\n")
    if as_json:
        emit_json(summary | {"output": str(output)})
        return
    rows = [(n, f"{v0:.4g} → {v:.4g}") for n, v0, v in zip(res.names, res.initial, res.values)]
    for part in ("train", "held_out"):
        f, i = summary[part]["fitted"], summary[part]["initial"]
        if f.get("n"):
            rows.append((f"{part} RMSE (n={f['n']})", f"{i['rmse_meV']:.1f} → {f['rmse_meV']:.1f} meV, R² {f['r2']}"))
    _table(f"fit → {output}", rows)


@electronic_app.command("table-s1")
@guarded
def table_s1_cmd(sizes: list[int] = typer.Option([1, 2], "--size", help="Cube edge n (repeatable); the paper: 3 4 5 6 7."),
                 engine: str = typer.Option("chgnet", "--engine", help="Force engine for relaxation and Hessian."),
                 core_shell: int = typer.Option(None, "--core-shell", help="Also an n×n×n CsPbBr3/CsCaBr3 (Ca:1 shell)."),
                 frozen_size: int = typer.Option(None, "--frozen-size", help="Size with a frozen-shell series (0.5–2 u.c.)."),
                 hessian: str = typer.Option("analytic", "--hessian", help="analytic (engine's get_hessian) or fd."),
                 fmax: float = typer.Option(0.01, "--fmax", help="Relaxation threshold, eV/Å."),
                 output: Path = typer.Option(Path("seed004_tableS1.json"), "--output", "-o", help="JSON table."),
                 as_json: bool = JSON_OPT) -> None:
    """Seed 004 Table S1, harmonic route: S(2/7/17 meV) and Γ_PL(300 K) vs size, core/shell, frozen shell."""
    from qdlab.store.files import write_text
    from qdlab.workflows.seed004 import PAPER_FROZEN_FWHM_MEV, rows_table, table_s1

    rows = table_s1(tuple(sizes), engine, core_shell=core_shell, frozen_size=frozen_size, fmax=fmax, hessian=hessian,
                    log=(lambda m: None) if as_json else (lambda m: console.print(m, highlight=False)))
    table = {"rows": rows_table(rows), "paper_frozen_shell_fwhm_meV": PAPER_FROZEN_FWHM_MEV,
             "route": "harmonic: TB gap gradient on the engine's Γ-point modes (SCIENCE §7)"}
    write_text(output, json.dumps(table, indent=2, default=float) + "\n")
    if as_json:
        emit_json(table | {"output": str(output)})
        return
    t = Table(title=f"seed 004 Table S1 (ours | paper) → {output}")
    for c in ("model", "atoms", "S_2meV", "S_7meV", "S_17meV", "Γ(300 K) meV"):
        t.add_column(c)
    for r in rows:
        p = r.paper
        cell = lambda k, v: f"{v:.1f} | {p[k]}" if k in p else f"{v:.1f}"  # noqa: E731
        t.add_row(r.label, str(r.n_atoms), cell("S_2meV", r.bands["2meV"]), cell("S_7meV", r.bands["7meV"]),
                  cell("S_17meV", r.bands["17meV"]), cell("gamma_300K_meV", r.gamma_300K_meV))
    console.print(t)
    for r in rows:
        if r.frozen_fwhm_meV:
            console.print(f"{r.label} frozen shell (u.c. → 300 K FWHM meV): free {r.gamma_300K_meV:.0f}, "
                          + ", ".join(f"{k:g}: {v:.0f}" for k, v in r.frozen_fwhm_meV.items())
                          + "  (paper 2.9 nm: free 230, 2 u.c. 50)")


def _bands_opt(specs: list[str] | None) -> dict | None:
    if not specs:
        return None
    out = {}
    for s in specs:
        try:
            name, rng = s.split("=")
            lo, hi = (float(x) for x in rng.split(":"))
        except ValueError:
            raise QdlabError(f"--band {s!r}: expected NAME=LO:HI in meV, e.g. 2meV=0:4") from None
        if not 0 <= lo < hi:
            raise QdlabError(f"--band {s!r}: need 0 <= LO < HI")
        out[name] = (lo, hi)
    return out


@guarded
def linewidth_cmd(trace: Path = typer.Argument(..., help="Gap trace: CSV with time_fs,gap_eV columns (the gap workflow's "
                                                "output) or DFT output with eigenvalues (vasprun.xml)."),
                  dt_fs: float = typer.Option(None, "--dt-fs", help="Frame spacing (fs) for DFT output without times."),
                  temperature: float = typer.Option(300.0, "--temperature", "-T", help="Temperature of the trajectory, K."),
                  band: list[str] = typer.Option(None, "--band", help="Band NAME=LO:HI (meV) for band-integrated S; "
                                                 "repeatable (default 2meV=0:4, 7meV=4:10, 17meV=10:24)."),
                  resolution: float = typer.Option(1.0, "--resolution-meV", help="Required spectral resolution h/T_total, meV."),
                  skip_fs: float = typer.Option(0.0, "--skip-fs", help="Discard the first fs (equilibration)."),
                  out: Path = typer.Option(Path("linewidth_out"), "--output", "-o", help="Output folder."),
                  as_json: bool = JSON_OPT) -> None:
    """Huang–Rhys S(ω), band-integrated S, Λ, Γ(T), dephasing D(t) → t₂*, Γ and the gap-histogram FWHM."""
    from qdlab.analysis.exciton_phonon import linewidth, plot_gamma_T, plot_linewidth
    from qdlab.store.files import write_text
    from qdlab.workflows.gap import import_gap_trace

    res = linewidth(import_gap_trace(trace, dt_fs), temperature, _bands_opt(band), resolution, skip_fs)
    summary = res.summary()
    out.mkdir(parents=True, exist_ok=True)
    s_csv = "energy_meV,S\n" + "\n".join(f"{e * 1e3:.6g},{s:.8g}" for e, s in zip(res.energy_eV, res.S)) + "\n"
    d_csv = "t_fs,C_eV2,g,D\n" + "\n".join(f"{a:.6g},{b:.8g},{c:.8g},{d:.8g}" for a, b, c, d in
                                           zip(res.t_fs, res.C_eV2, res.g, res.D)) + "\n"
    write_text(out / "huang_rhys.csv", s_csv)
    write_text(out / "dephasing.csv", d_csv)
    plot_linewidth(res, out / "linewidth.png")  # written atomically
    plot_gamma_T(res, out / "gamma_T.png")
    files = [str(out / f) for f in ("linewidth.json", "huang_rhys.csv", "dephasing.csv", "linewidth.png", "gamma_T.png")]
    summary = summary | {"files": files}
    write_text(out / "linewidth.json", json.dumps(summary, indent=2) + "\n")
    if as_json:
        emit_json(summary)
        return
    rows = [(k, f"{v:.4g}") for k, v in summary["huang_rhys_bands"].items()]
    rows += [(k, f"{summary[k]:.4g}") for k in ("reorganization_meV", "gamma_harmonic_meV", "t2_star_fs",
                                               "gamma_dephasing_meV", "fwhm_histogram_meV", "resolution_meV")]
    _table(f"linewidth of {trace} at {temperature:g} K → {out}", rows)


def _mount_pseudopotential() -> None:
    """``qdlab electronic states|excitons``: the pseudopotential nanocrystal commands (seed 003)."""
    from qdlab.cli.excitons import excitons_cmd, states_cmd

    electronic_app.command("states")(states_cmd)
    electronic_app.command("excitons")(excitons_cmd)


_mount_pseudopotential()
