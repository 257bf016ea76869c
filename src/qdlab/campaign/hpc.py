"""HPC round trip: DFT input folders out (VASP, CP2K) and finished relaxations back in.

Export (seed 000's DFT settings by default): PBE, plane-wave cutoff 400 eV, Γ point only,
EDIFF 1e-4 eV, EDIFFG −0.03 eV/Å (forces), PREC Normal, ALGO Fast, NELM 60, 15 Å of vacuum on
every side, IBRION 2 (conjugate-gradient relaxation). VASP inputs are written with ASE's
:class:`~ase.calculators.vasp.Vasp` (INCAR, KPOINTS, POSCAR sorted by element, ``ase-sort.dat``);
POTCAR files cannot be shipped: they are written only when ``VASP_PP_PATH`` is set, otherwise each
folder gets a ``POTCAR_MISSING.txt`` note (and the README says so). CP2K inputs follow
:mod:`qdlab.engines.cp2k`: PBE, GTH pseudopotentials, DZVP-MOLOPT-SR-GTH, non-periodic
Martyna–Tuckerman Poisson solver (the box is enlarged to at least twice the cluster), BFGS
geometry optimisation to the same force threshold. A SLURM array script runs every folder.

Import: ``vasprun.xml`` and ``OUTCAR`` (through :func:`ase.io.read`), and CP2K geometry
optimisations (``<project>-pos-1.xyz`` + ``<project>-frc-1.xyz``, energies in Hartree and forces
in Hartree/Bohr converted with :mod:`ase.units`) become frames with reference energies (eV) and
forces (eV/Å), written to extended XYZ or an ASE database with provenance (``source``,
``engine``, ``frame_key``, ``status``) in the layout of the fine-tuning datasets.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from qdlab.build.box import vacuum_box
from qdlab.errors import QdlabError
from qdlab.store.db import frame_key
from qdlab.store.files import write_text

#: seed 000's VASP settings (INCAR keys in ASE's lower-case spelling)
VASP_DEFAULTS: dict = {"xc": "PBE", "encut": 400, "ediff": 1e-4, "ediffg": -0.03, "prec": "Normal",
                       "algo": "Fast", "nelm": 60, "ibrion": 2, "isif": 2, "nsw": 200, "ispin": 1,
                       "ismear": 0, "sigma": 0.05, "lreal": "Auto", "lwave": False, "lcharg": False}
#: CP2K settings (qdlab.engines.cp2k) for a geometry optimisation to the same thresholds
CP2K_DEFAULTS: dict = {"xc": "PBE", "cutoff_ry": 300.0, "rel_cutoff_ry": 50.0, "basis_set": "DZVP-MOLOPT-SR-GTH",
                       "potential": "GTH-PBE", "max_scf": 60, "eps_scf": 1e-6, "max_force_eV_A": 0.03,
                       "steps": 200, "charge": None}
VACUUM_A = 15.0
POTCAR_NOTE = ("POTCAR files are licensed with VASP and cannot be shipped with qdlab. Concatenate the PBE "
               "PAW potentials for the elements in the order of the POSCAR's element line ({elements}) "
               "into POTCAR, e.g. `cat $PP/potpaw_PBE/{{{elements_csv}}}/POTCAR > POTCAR`, or set VASP_PP_PATH "
               "and rerun `qdlab export vasp` to have them written.")


def parse_settings(pairs: Sequence[str]) -> dict:
    """``["encut=500", "lreal=False"]`` → ``{"encut": 500, "lreal": False}`` (numbers and booleans parsed)."""
    out: dict = {}
    for p in pairs:
        if "=" not in p:
            raise QdlabError(f"--set {p!r}: expected KEY=VALUE")
        k, v = p.split("=", 1)
        k = k.strip().lower()
        v = v.strip()
        low = v.lower()
        if low in ("true", ".true.", "t"):
            val: object = True
        elif low in ("false", ".false.", "f"):
            val = False
        else:
            try:
                val = int(v)
            except ValueError:
                try:
                    val = float(v)
                except ValueError:
                    val = v
        out[k] = val
    return out


def _models(paths: Sequence[str | os.PathLike]) -> list[tuple[str, Atoms]]:
    """(name, atoms) of structure files, or of the finished relaxations in a results store."""
    from ase.io import read

    out: list[tuple[str, Atoms]] = []
    for p in paths:
        text = str(p)
        if "://" in text or Path(text).suffix in (".db", ".sqlite", ".sqlite3"):
            from qdlab.store.results import DONE, ResultStore

            rs = ResultStore(text)
            rs.check()
            for row in rs.rows(status=DONE, workflow="relax"):
                f = row.files.get("structure")
                if f and rs.path(f).is_file():
                    atoms = read(rs.path(f), format="extxyz")
                else:
                    atoms = rs.get(row.key).atoms
                lab = row.kvp
                out.append((f"{lab.get('composition')}_{lab.get('size')}_{str(lab.get('passivation')).replace('/', '-')}"
                            f"_s{lab.get('seed', 0)}_{row.key[:8]}", atoms))
            continue
        path = Path(text)
        if not path.is_file():
            raise QdlabError(f"model file {path} not found")
        try:
            atoms = read(path)
        except Exception as exc:
            raise QdlabError(f"cannot read {path}: {' '.join(str(exc).split())}") from None
        out.append((path.stem, atoms))
    if not out:
        raise QdlabError("no models to export (give structure files or a store with finished relax steps)")
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        out = [(f"{n}_{i:03d}", a) for i, (n, a) in enumerate(out)]
    return out


def boxed(atoms: Atoms, vacuum: float = VACUUM_A, min_ratio: float = 0.0) -> Atoms:
    """A copy of a cluster centred in an orthorhombic box with ``vacuum`` Å on every side (at least
    ``min_ratio`` × the cluster's extent per axis: 2 for the Martyna–Tuckerman solver)."""
    return vacuum_box(atoms, vacuum, min_ratio=min_ratio)


def net_charge(atoms: Atoms) -> int:
    """Net charge (e) of a model: builder charges minus its extra electrons."""
    q = float(atoms.get_initial_charges().sum()) if "initial_charges" in atoms.arrays else 0.0
    return int(round(q)) - int(atoms.info.get("extra_electrons", 0) or 0)


def write_vasp_folder(atoms: Atoms, folder: str | os.PathLike, settings: dict | None = None) -> dict:
    """INCAR, KPOINTS (Γ), POSCAR (+ POTCAR with VASP_PP_PATH) for a relaxation of ``atoms``."""
    from ase.calculators.vasp import Vasp

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    params = VASP_DEFAULTS | (settings or {})
    calc = Vasp(directory=str(folder), gamma=True, kpts=(1, 1, 1), **params)
    a = boxed(atoms)
    a.pbc = True  # VASP is periodic: the vacuum separates the images
    notes = []
    if os.environ.get("VASP_PP_PATH"):
        calc.initialize(a)
        calc.write_input(a, directory=str(folder))
        potcar = True
    else:
        from ase.io.vasp import write_vasp

        calc.atoms = a
        calc.sort, calc.resort = calc._make_sort(a)
        calc._set_spinpol(a)
        sorted_atoms = a[calc.sort]
        write_vasp(folder / "POSCAR", sorted_atoms, direct=False)
        calc.write_incar(a, directory=str(folder))
        calc.write_kpoints(a, directory=str(folder))
        calc.write_sort_file(directory=str(folder))
        elements = list(dict.fromkeys(sorted_atoms.get_chemical_symbols()))
        note = POTCAR_NOTE.format(elements=" ".join(elements), elements_csv=",".join(elements))
        os.chmod(write_text(folder / "POTCAR_MISSING.txt", note + "\n"), 0o644)
        notes.append("POTCAR not written (VASP_PP_PATH is not set): see POTCAR_MISSING.txt in each folder")
        potcar = False
    q = net_charge(atoms)
    if q:
        notes.append(f"{folder.name}: net charge {q:+d} e — set NELECT (default valence electrons {-q:+d})")
    return {"folder": str(folder), "potcar": potcar, "notes": notes, "n_atoms": len(a)}


def cp2k_input(atoms: Atoms, project: str = "qdlab", settings: dict | None = None) -> str:
    """CP2K input text for a PBE geometry optimisation of a cluster (non-periodic, MT Poisson)."""
    s = CP2K_DEFAULTS | (settings or {})
    a = atoms
    charge = s["charge"] if s["charge"] is not None else net_charge(a)
    periodic = a.pbc.any()
    cell = a.cell.array
    max_force = s["max_force_eV_A"] / (units.Hartree / units.Bohr)  # Hartree/Bohr
    coords = "\n".join(f"      {sym:<2s} {x:16.10f} {y:16.10f} {z:16.10f}"
                       for sym, (x, y, z) in zip(a.get_chemical_symbols(), a.positions))
    kinds = "\n".join(f"    &KIND {el}\n      BASIS_SET {s['basis_set']}\n      POTENTIAL {s['potential']}\n    &END KIND"
                      for el in dict.fromkeys(a.get_chemical_symbols()))
    poisson = ("      PERIODIC XYZ\n      POISSON_SOLVER PERIODIC" if periodic else
               "      PERIODIC NONE\n      POISSON_SOLVER MT")
    return f"""&GLOBAL
  PROJECT {project}
  RUN_TYPE GEO_OPT
  PRINT_LEVEL LOW
&END GLOBAL
&MOTION
  &GEO_OPT
    OPTIMIZER BFGS
    MAX_ITER {int(s['steps'])}
    MAX_FORCE {max_force:.6e}
  &END GEO_OPT
  &PRINT
    &TRAJECTORY
      FORMAT XYZ
    &END TRAJECTORY
    &FORCES ON
      FORMAT XYZ
    &END FORCES
  &END PRINT
&END MOTION
&FORCE_EVAL
  METHOD Quickstep
  &DFT
    BASIS_SET_FILE_NAME BASIS_MOLOPT
    POTENTIAL_FILE_NAME GTH_POTENTIALS
    CHARGE {charge}
    &MGRID
      CUTOFF {s['cutoff_ry']}
      REL_CUTOFF {s['rel_cutoff_ry']}
    &END MGRID
    &POISSON
{poisson}
    &END POISSON
    &SCF
      SCF_GUESS ATOMIC
      EPS_SCF {s['eps_scf']:.1e}
      MAX_SCF {int(s['max_scf'])}
      &OT ON
        MINIMIZER DIIS
        PRECONDITIONER FULL_SINGLE_INVERSE
      &END OT
      &OUTER_SCF
        MAX_SCF 10
        EPS_SCF {s['eps_scf']:.1e}
      &END OUTER_SCF
    &END SCF
    &XC
      &XC_FUNCTIONAL {s['xc']}
      &END XC_FUNCTIONAL
    &END XC
  &END DFT
  &SUBSYS
    &CELL
      A {cell[0, 0]:.8f} {cell[0, 1]:.8f} {cell[0, 2]:.8f}
      B {cell[1, 0]:.8f} {cell[1, 1]:.8f} {cell[1, 2]:.8f}
      C {cell[2, 0]:.8f} {cell[2, 1]:.8f} {cell[2, 2]:.8f}
      PERIODIC {'XYZ' if periodic else 'NONE'}
    &END CELL
    &COORD
{coords}
    &END COORD
{kinds}
  &END SUBSYS
&END FORCE_EVAL
"""


def write_cp2k_folder(atoms: Atoms, folder: str | os.PathLike, settings: dict | None = None) -> dict:
    """``cp2k.inp`` for a geometry optimisation of ``atoms`` in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    a = boxed(atoms, min_ratio=2.0)
    os.chmod(write_text(folder / "cp2k.inp", cp2k_input(a, "qdlab", settings)), 0o644)
    return {"folder": str(folder), "notes": [], "n_atoms": len(a)}


def slurm_array_script(code: str, folders: Sequence[str], *, partition: str | None = None, nodes: int = 1,
                       ntasks: int = 32, walltime: str = "24:00:00", account: str | None = None,
                       command: str | None = None) -> str:
    """A SLURM job array running one DFT relaxation per folder (``sbatch submit.slurm``)."""
    run = command or ("srun vasp_gam" if code == "vasp" else "srun cp2k.psmp -i cp2k.inp -o cp2k.out")
    lines = ["#!/usr/bin/env bash", f"#SBATCH --job-name=qdlab-{code}", f"#SBATCH --array=0-{len(folders) - 1}",
             f"#SBATCH --nodes={nodes}", f"#SBATCH --ntasks={ntasks}", f"#SBATCH --time={walltime}",
             "#SBATCH --output=%x-%A_%a.out"]
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if account:
        lines.append(f"#SBATCH --account={account}")
    names = " ".join(shlex.quote(Path(f).name) for f in folders)
    lines += ["set -euo pipefail", 'cd "$(dirname "$0")"', f"FOLDERS=({names})",
              'cd "${FOLDERS[$SLURM_ARRAY_TASK_ID]}"', "export OMP_NUM_THREADS=1"]
    if code == "vasp":
        lines.append('test -s POTCAR || { echo "POTCAR missing in $PWD: see POTCAR_MISSING.txt" >&2; exit 1; }')
    lines.append(run)
    return "\n".join(lines) + "\n"


def export_models(code: str, models: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                  overrides: dict | None = None, partition: str | None = None, nodes: int = 1, ntasks: int = 32,
                  walltime: str = "24:00:00", account: str | None = None, command: str | None = None) -> dict:
    """Write one ready-to-run input folder per model under ``out`` plus ``submit.slurm`` and a
    README with the settings; returns the folders, the script and notes."""
    if code not in ("vasp", "cp2k"):
        raise QdlabError(f"export writes vasp or cp2k inputs, not {code!r}")
    overrides = overrides or {}
    if code == "cp2k":
        unknown = set(overrides) - set(CP2K_DEFAULTS)
        if unknown:
            raise QdlabError(f"unknown CP2K setting(s) {', '.join(sorted(unknown))}; known: {', '.join(CP2K_DEFAULTS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folders, notes = [], []
    for name, atoms in _models(models):
        folder = out / re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
        info = (write_vasp_folder if code == "vasp" else write_cp2k_folder)(atoms, folder, overrides)
        folders.append(info["folder"])
        for n in info["notes"]:
            if n not in notes:
                notes.append(n)
    script = write_text(out / "submit.slurm", slurm_array_script(code, folders, partition=partition, nodes=nodes,
                                                                  ntasks=ntasks, walltime=walltime, account=account,
                                                                  command=command))
    os.chmod(script, 0o755)
    settings = (VASP_DEFAULTS if code == "vasp" else CP2K_DEFAULTS) | overrides
    readme = [f"# {code.upper()} inputs written by qdlab", "",
              f"{len(folders)} model(s), one folder each; `sbatch submit.slurm` runs them as a SLURM array.", "",
              "Settings (seed 000: PBE, Γ only, 15 Å vacuum, relaxation):", "",
              *[f"- {k} = {v}" for k, v in settings.items()], ""]
    if notes:
        readme += ["Notes:", "", *[f"- {n}" for n in notes], ""]
    readme += ["Bring the finished relaxations back with `qdlab import <folders> -o dataset.extxyz`.", ""]
    os.chmod(write_text(out / "README.md", "\n".join(readme)), 0o644)
    return {"code": code, "folders": folders, "batch_script": str(script), "notes": notes, "settings": settings}


# -- import ------------------------------------------------------------------------------------
def _parse_cp2k_xyz(path: Path) -> list[tuple[list[str], np.ndarray, float | None]]:
    """(symbols, coordinates, energy in Hartree or None) per frame of a CP2K XYZ trajectory."""
    lines = path.read_text().splitlines()
    frames, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        n = int(lines[i].split()[0])
        m = re.search(r"E\s*=\s*([-+0-9.eE]+)", lines[i + 1])
        body = [ln.split() for ln in lines[i + 2:i + 2 + n]]
        if len(body) < n:  # a frame cut off by the end of the run
            break
        frames.append(([b[0] for b in body], np.array([[float(x) for x in b[1:4]] for b in body]),
                       float(m.group(1)) if m else None))
        i += 2 + n
    return frames


def read_cp2k_run(source: str | os.PathLike) -> list[Atoms]:
    """Frames (energy eV, forces eV/Å) of a CP2K geometry optimisation: a folder holding
    ``*-pos-1.xyz`` and ``*-frc-1.xyz`` or the ``-pos-1.xyz`` file itself."""
    p = Path(source)
    pos = p if p.is_file() else next(iter(sorted(p.glob("*-pos-1.xyz"))), None)
    if pos is None or not pos.is_file():
        raise QdlabError(f"{p}: no CP2K trajectory (*-pos-1.xyz) found")
    frc = pos.with_name(pos.name.replace("-pos-1.xyz", "-frc-1.xyz"))
    if not frc.is_file():
        raise QdlabError(f"{pos}: the forces file {frc.name} is missing (set &MOTION/&PRINT/&FORCES ON)")
    inp = pos.parent / "cp2k.inp"
    cell = None
    if inp.is_file():
        rows = re.findall(r"^\s*([ABC])\s+([-0-9.eE]+)\s+([-0-9.eE]+)\s+([-0-9.eE]+)\s*$", inp.read_text(), re.M)
        if len(rows) == 3:
            cell = np.array([[float(x) for x in r[1:]] for r in rows])
    positions, forces = _parse_cp2k_xyz(pos), _parse_cp2k_xyz(frc)
    frames = []
    for (sym, x, e), (_, f, ef) in zip(positions, forces):
        energy = e if e is not None else ef
        if energy is None:
            continue
        a = Atoms(sym, positions=x, cell=cell, pbc=False)
        a.calc = SinglePointCalculator(a, energy=energy * units.Hartree, forces=f * units.Hartree / units.Bohr)
        frames.append(a)
    return frames


def _find_runs(paths: Sequence[str | os.PathLike]) -> list[tuple[Path, str]]:
    runs: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            if (p / "vasprun.xml").is_file():
                runs.append((p / "vasprun.xml", "vasp-xml"))
            elif (p / "OUTCAR").is_file():
                runs.append((p / "OUTCAR", "vasp-out"))
            elif list(p.glob("*-pos-1.xyz")):
                runs.append((p, "cp2k"))
            else:
                sub = sorted(q for q in p.iterdir() if q.is_dir())
                found = _find_runs(sub) if sub else []
                if not found:
                    raise QdlabError(f"{p}: no vasprun.xml, OUTCAR or CP2K *-pos-1.xyz found")
                runs += found
        elif p.is_file():
            name = p.name
            if name.endswith(".xml"):
                runs.append((p, "vasp-xml"))
            elif "OUTCAR" in name:
                runs.append((p, "vasp-out"))
            elif name.endswith("-pos-1.xyz"):
                runs.append((p, "cp2k"))
            else:
                raise QdlabError(f"{p}: not a vasprun.xml, OUTCAR or CP2K *-pos-1.xyz file")
        else:
            raise QdlabError(f"{p} not found")
    return runs


def read_run(path: Path, fmt: str) -> list[Atoms]:
    """Every ionic step of a finished (or interrupted) DFT relaxation with energy and forces."""
    from ase.io import read

    if fmt == "cp2k":
        return read_cp2k_run(path)
    try:
        frames = read(path, index=":", format=fmt)
    except Exception as exc:
        raise QdlabError(f"cannot read {path}: {type(exc).__name__}: {' '.join(str(exc).split())}") from None
    return [a for a in frames if a.calc is not None and "forces" in a.calc.results]


def import_runs(paths: Sequence[str | os.PathLike], output: str | os.PathLike, *, every: int = 1,
                append: bool = False) -> dict:
    """Frames of DFT relaxations (VASP vasprun.xml/OUTCAR, CP2K) with energies (eV) and forces
    (eV/Å) → extended XYZ or an ASE database (rows: key-value pairs ``source``, ``engine``,
    ``frame_key``, ``status``, ``step``; data ``info``), ready for fine-tuning."""
    from ase.io import write

    if every < 1:
        raise QdlabError("--every must be ≥ 1")
    out = Path(str(output))
    is_db = "://" in str(output) or out.suffix in (".db", ".sqlite", ".sqlite3")
    if not is_db and out.suffix not in (".extxyz", ".xyz"):
        raise QdlabError(f"dataset {output}: use .extxyz or an ASE database (.db)")
    frames: list[Atoms] = []
    runs = []
    for path, fmt in _find_runs(paths):
        got = read_run(path, fmt)
        if not got:
            raise QdlabError(f"{path}: no ionic step with energy and forces")
        kept = got[::every]
        if got[-1] is not kept[-1]:
            kept.append(got[-1])  # the relaxed geometry is always kept
        engine = "cp2k" if fmt == "cp2k" else "vasp"
        settings = _incar(path) if engine == "vasp" else {}
        src = str(path.parent if fmt != "cp2k" or path.is_file() else path)
        for k, a in enumerate(kept):
            e = float(a.get_potential_energy())
            f = np.asarray(a.get_forces(), float)
            b = a.copy()
            b.calc = SinglePointCalculator(b, energy=e, forces=f)
            b.info.update(source=src, engine=engine, status="ok", step=k, frame_key=frame_key(b),
                          settings=json.dumps(settings, sort_keys=True, default=str))
            frames.append(b)
        runs.append({"source": src, "format": fmt, "n_frames": len(kept), "formula": kept[-1].get_chemical_formula(),
                     "energy_last_eV": float(kept[-1].get_potential_energy()),
                     "fmax_last_eV_A": float(np.linalg.norm(kept[-1].get_forces(), axis=1).max())})
    if is_db:
        from ase.db import connect

        if not append and "://" not in str(output) and out.exists():
            out.unlink()
        with connect(str(output)) as db:
            for a in frames:
                kvp = {k: a.info[k] for k in ("source", "engine", "status", "step", "frame_key")}
                row = a.copy()
                row.calc = SinglePointCalculator(row, energy=a.get_potential_energy(), forces=a.get_forces())
                row.info = {}
                db.write(row, key_value_pairs=kvp, data={"info": {"settings": a.info["settings"]}, "arrays": {}})
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        if append and out.exists():
            write(out, frames, format="extxyz", append=True)
        else:
            from qdlab.store.files import write_atoms

            write_atoms(out, frames)
    return {"output": str(output), "n_frames": len(frames), "runs": runs}


def _incar(path: Path) -> dict:
    """INCAR settings beside a VASP output (empty if there is none)."""
    incar = path.parent / "INCAR"
    if not incar.is_file():
        return {}
    out = {}
    for line in incar.read_text().splitlines():
        line = line.split("#")[0].split("!")[0]
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip().upper()] = v.strip()
    return out
