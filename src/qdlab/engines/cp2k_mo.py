"""CP2K molecular-orbital energies: a single-point input that prints them, and a reader.

- :func:`cp2k_gap_input` writes a PBE single point of a cluster (GPW, GTH pseudopotentials,
  MOLOPT basis, non-periodic wavelet Poisson solver; diagonalisation with added MOs, or OT) that
  prints the occupied and lowest unoccupied eigenvalues (``&MO_CUBES NLUMO … WRITE_CUBE F``);
- :func:`read_cp2k_mos` parses every MO block of a CP2K output (one per SCF: a single point gives
  one, an MD or geometry run one per step) into :class:`Cp2kMOs` (energies in eV, as CP2K prints
  them under ``Eigenvalues of the occupied subspace`` / ``Lowest eigenvalues of the unoccupied
  subspace``, which CP2K prints in Hartree, and its ``HOMO - LUMO gap [eV]`` line);
- :func:`cp2k_gap_trace` turns those blocks into a gap trace (the "CP2K MO import" of the gap
  workflow);
- with ``pdos`` on, the input also prints each MO's Mulliken weight per kind and angular momentum
  (``&PDOS``, files ``<project>-k<i>-1.pdos``); :func:`read_cp2k_pdos` reads them and
  :func:`edge_gap` gives the gap to the lowest unoccupied MO that belongs to the B-site network
  (more weight on Pb than on Cs): in a small Cs-rich cluster the plain LUMO can be a Cs 6s state
  (Cs7Pb2Br11: Cs weight 0.93), which a Cs-free tight-binding model has no counterpart of.
Spin-unpolarised (restricted) runs only; no spin–orbit coupling (CP2K has none in GPW).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.units import Hartree

from qdlab.errors import QdlabError

#: single-point settings (PBE as in seed 004: GTH, 300 Ry, no SOC)
CP2K_GAP_DEFAULTS: dict = {"xc": "PBE", "cutoff_ry": 300.0, "rel_cutoff_ry": 50.0, "basis_set": "DZVP-MOLOPT-SR-GTH",
                           "potential": "GTH-PBE", "charge": 0, "eps_scf": 1e-6, "max_scf": 80, "nlumo": 4,
                           "vacuum_A": 4.5, "restart_file": None, "scf": "diagonalization",
                           "pdos": False}

_OCC = re.compile(r"Eigenvalues of the occupied subspace spin\s+(\d)", re.IGNORECASE)
_UNOCC = re.compile(r"Lowest eigenvalues of the unoccupied subspace spin\s+(\d)", re.IGNORECASE)
_GAP = re.compile(r"HOMO - LUMO gap \[eV\]\s*:\s*(-?\d+\.\d+)")
_NUM = re.compile(r"-?\d+\.\d+(?:[EeDd][-+]?\d+)?")


@dataclass(frozen=True)
class Cp2kMOs:
    """One SCF's orbital energies (eV): occupied (ascending), the converged unoccupied ones, gap."""

    occupied_eV: np.ndarray
    unoccupied_eV: np.ndarray
    printed_gap_eV: float | None

    @property
    def homo_eV(self) -> float:
        return float(self.occupied_eV[-1])

    @property
    def lumo_eV(self) -> float:
        return float(self.unoccupied_eV[0])

    @property
    def gap_eV(self) -> float:
        """LUMO − HOMO from the eigenvalues (agrees with CP2K's printed gap to its 1e-6 Hartree print)."""
        return self.lumo_eV - self.homo_eV


def _numbers_after(lines: list[str], start: int) -> tuple[list[float], int]:
    """Numbers of the eigenvalue table starting after a header line (skipping rule lines)."""
    vals: list[float] = []
    i = start + 1
    while i < len(lines) and (not lines[i].strip() or set(lines[i].strip()) <= set("-")
                              or "convergence" in lines[i].lower()):
        i += 1
    while i < len(lines):
        s = lines[i].strip()
        if not s or not _NUM.fullmatch(s.split()[0]):
            break
        vals.extend(float(x.replace("D", "E").replace("d", "e")) for x in s.split())
        i += 1
    return vals, i


def read_cp2k_mos(source: str | os.PathLike) -> list[Cp2kMOs]:
    """Every (occupied, unoccupied) eigenvalue block of a CP2K output file, in order (eV)."""
    p = Path(source)
    if not p.is_file():
        raise QdlabError(f"{p}: no such CP2K output")
    lines = p.read_text(errors="replace").splitlines()
    blocks: list[Cp2kMOs] = []
    occ: list[float] | None = None
    i = 0
    while i < len(lines):
        if _OCC.search(lines[i]):
            occ, i = _numbers_after(lines, i)
            continue
        if _UNOCC.search(lines[i]) and occ is not None:
            unocc, i = _numbers_after(lines, i)
            gap = next((float(m.group(1)) for ln in lines[i:i + 12] if (m := _GAP.search(ln))), None)
            blocks.append(Cp2kMOs(np.sort(np.array(occ)) * Hartree, np.sort(np.array(unocc)) * Hartree, gap))
            occ = None
            continue
        i += 1
    if not blocks:
        raise QdlabError(f"{p}: no occupied + unoccupied eigenvalue blocks (run with &MO_CUBES NLUMO ≥ 1)")
    return blocks


def cp2k_gap_trace(source: str | os.PathLike, dt_fs: float):
    """A :class:`~qdlab.analysis.exciton_phonon.GapTrace` from the MO blocks of a CP2K output
    (one block per MD step, spaced ``dt_fs`` fs)."""
    from qdlab.analysis.exciton_phonon import GapTrace

    mos = read_cp2k_mos(source)
    homo = np.array([m.homo_eV for m in mos])
    lumo = np.array([m.lumo_eV for m in mos])
    return GapTrace(np.arange(len(mos)) * float(dt_fs), lumo - homo, homo, lumo, {"source": str(source), "code": "cp2k"})


def _scf_block(s: dict) -> str:
    """Diagonalisation with Broyden mixing and ``nlumo`` added MOs (default; on Cs7Pb2Br11 it reached
    EPS_SCF 1e-5 in 14–18 steps from a neighbouring geometry's wavefunction, where OT/DIIS from an
    atomic guess was still at 5e-5 after 25 steps), or OT + outer SCF."""
    if s["scf"] == "diagonalization":
        return (f"      ADDED_MOS {int(s['nlumo'])}\n      &DIAGONALIZATION ON\n        ALGORITHM STANDARD\n"
                "      &END DIAGONALIZATION\n      &MIXING\n        METHOD BROYDEN_MIXING\n        ALPHA 0.3\n"
                "        NBUFFER 8\n      &END MIXING\n")
    if s["scf"] == "ot":
        return ("      &OT ON\n        MINIMIZER DIIS\n        PRECONDITIONER FULL_ALL\n      &END OT\n"
                f"      &OUTER_SCF\n        MAX_SCF 20\n        EPS_SCF {s['eps_scf']:.1e}\n      &END OUTER_SCF\n")
    raise QdlabError(f"CP2K scf must be diagonalization or ot, not {s['scf']!r}")


def _pdos_block(s: dict) -> str:
    """``&PDOS`` printing every occupied and ``nlumo`` unoccupied MO's weight per kind and l (or nothing)."""
    if not s["pdos"]:
        return ""
    return f"      &PDOS\n        NLUMO {int(s['nlumo'])}\n        COMPONENTS F\n      &END PDOS\n"


_CENTER = "    &TOPOLOGY\n      &CENTER_COORDINATES T\n      &END CENTER_COORDINATES\n    &END TOPOLOGY\n"


def _periodicity(atoms: Atoms) -> bool:
    """True for a 3D-periodic cell, False for a cluster; a slab or wire (mixed pbc) is refused."""
    if np.all(atoms.pbc):
        if atoms.cell.volume <= 0:
            raise QdlabError("a periodic structure needs a cell with a volume")
        return True
    if np.any(atoms.pbc):
        raise QdlabError(f"CP2K gap runs take a cluster or a 3D-periodic cell, not pbc = {atoms.pbc.tolist()}")
    return False


def _poisson(periodic: bool) -> str:
    if periodic:
        return "      PERIODIC XYZ\n      POISSON_SOLVER PERIODIC\n"
    return "      PERIODIC NONE\n      POISSON_SOLVER WAVELET\n"


def _cell_block(atoms: Atoms, pos: np.ndarray, periodic: bool, vacuum_A: float) -> str:
    """``&CELL``: the atoms' cell vectors (periodic) or a cube of extent + 2·vacuum (cluster; wavelet: cubic)."""
    if periodic:
        vec = "".join(f"      {n} {v[0]:.10f} {v[1]:.10f} {v[2]:.10f}\n" for n, v in zip("ABC", np.array(atoms.cell)))
        return f"    &CELL\n{vec}      PERIODIC XYZ\n    &END CELL\n"
    box = (pos.max(axis=0) - pos.min(axis=0)).max() + 2.0 * vacuum_A
    return f"    &CELL\n      ABC {box:.6f} {box:.6f} {box:.6f}\n      PERIODIC NONE\n    &END CELL\n"


def cp2k_gap_input(atoms: Atoms, project: str = "gap", settings: dict | None = None) -> str:
    """CP2K input for a PBE single point printing occupied and ``nlumo`` unoccupied MOs.

    A cluster (``atoms.pbc`` all False): the cell is a cube, the atoms' largest extent plus
    ``vacuum_A`` (Å) on each side (CP2K's non-periodic wavelet Poisson solver needs a cubic cell but
    not the doubled box of Martyna–Tuckerman). A 3D-periodic cell (``atoms.pbc`` all True): the
    atoms' own cell and positions, periodic plane-wave Poisson solver, Γ point only (so a supercell's
    MOs are the primitive cell's at the k-points that fold onto Γ; ``vacuum_A`` is not used).
    """
    s = CP2K_GAP_DEFAULTS | (settings or {})
    unknown = set(s) - set(CP2K_GAP_DEFAULTS)
    if unknown:
        raise QdlabError(f"unknown CP2K setting(s) {', '.join(sorted(unknown))}")
    periodic = _periodicity(atoms)
    pos = atoms.positions if periodic else atoms.positions - atoms.positions.mean(axis=0)
    coords = "\n".join(f"      {el:<2s} {x:16.10f} {y:16.10f} {z:16.10f}"
                       for el, (x, y, z) in zip(atoms.get_chemical_symbols(), pos))
    kinds = "\n".join(f"    &KIND {el}\n      BASIS_SET {s['basis_set']}\n      POTENTIAL {s['potential']}\n    &END KIND"
                      for el in dict.fromkeys(atoms.get_chemical_symbols()))
    guess = "RESTART" if s["restart_file"] else "ATOMIC"
    wfn = f"    WFN_RESTART_FILE_NAME {s['restart_file']}\n" if s["restart_file"] else ""
    return f"""&GLOBAL
  PROJECT {project}
  RUN_TYPE ENERGY
  PRINT_LEVEL LOW
&END GLOBAL
&FORCE_EVAL
  METHOD Quickstep
  &DFT
    BASIS_SET_FILE_NAME BASIS_MOLOPT
    POTENTIAL_FILE_NAME GTH_POTENTIALS
{wfn}    CHARGE {int(s['charge'])}
    &MGRID
      CUTOFF {s['cutoff_ry']}
      REL_CUTOFF {s['rel_cutoff_ry']}
    &END MGRID
    &POISSON
{_poisson(periodic)}    &END POISSON
    &SCF
      SCF_GUESS {guess}
      EPS_SCF {s['eps_scf']:.1e}
      MAX_SCF {int(s['max_scf'])}
{_scf_block(s)}    &END SCF
    &XC
      &XC_FUNCTIONAL {s['xc']}
      &END XC_FUNCTIONAL
    &END XC
    &PRINT
{_pdos_block(s)}      &MO_CUBES
        NHOMO 1
        NLUMO {int(s['nlumo'])}
        WRITE_CUBE F
      &END MO_CUBES
    &END PRINT
  &END DFT
  &SUBSYS
{_cell_block(atoms, pos, periodic, float(s["vacuum_A"]))}    &COORD
{coords}
    &END COORD
{"" if periodic else _CENTER}{kinds}
  &END SUBSYS
&END FORCE_EVAL
"""


_KIND = re.compile(r"atomic kind\s+(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class Cp2kPDOS:
    """Mulliken weights of every printed MO: ``energies_eV`` (ascending), ``occupations``,
    ``weights[element]`` (n_mo,) summed over that kind's orbitals, ``by_l[element][l]`` per angular
    momentum label (``s``, ``p``, ``d`` …)."""

    energies_eV: np.ndarray
    occupations: np.ndarray
    weights: dict[str, np.ndarray]
    by_l: dict[str, dict[str, np.ndarray]]


def read_cp2k_pdos(folder: str | os.PathLike, project: str = "gap") -> Cp2kPDOS:
    """The ``<project>-k<i>-1.pdos`` files of a CP2K run (one per kind, COMPONENTS F), merged."""
    files = sorted(Path(folder).glob(f"{project}-k*-1.pdos"))
    if not files:
        raise QdlabError(f"{folder}: no {project}-k*-1.pdos files (run with the pdos setting on)")
    energies = occ = None
    weights: dict[str, np.ndarray] = {}
    by_l: dict[str, dict[str, np.ndarray]] = {}
    for f in files:
        head = f.read_text(errors="replace").splitlines()[:2]
        kind = _KIND.search(head[0]) if head else None
        if kind is None or len(head) < 2:
            raise QdlabError(f"{f}: not a CP2K PDOS file")
        cols = head[1].lstrip("#").split()[4:]  # after "MO Eigenvalue [a.u.] Occupation"
        data = np.loadtxt(f, comments="#", ndmin=2)
        if data.shape[1] != 3 + len(cols):
            raise QdlabError(f"{f}: {data.shape[1]} columns, header names {3 + len(cols)}")
        e = data[:, 1] * Hartree
        if energies is not None and (len(e) != len(energies) or not np.allclose(e, energies, atol=1e-6)):
            raise QdlabError(f"{f}: MO energies differ from the other kinds' files (another run?)")
        energies, occ = e, data[:, 2]
        el = kind.group(1).rstrip("_0123456789")   # kinds Br_1, Br_2 … of one element are summed
        for i, c in enumerate(cols):
            by_l.setdefault(el, {})[c] = by_l.get(el, {}).get(c, 0.0) + data[:, 3 + i]
        weights[el] = weights.get(el, 0.0) + data[:, 3:].sum(axis=1)
    order = np.argsort(energies)
    return Cp2kPDOS(energies[order], occ[order], {k: v[order] for k, v in weights.items()},
                    {k: {c: w[order] for c, w in v.items()} for k, v in by_l.items()})


def edge_gap(pdos: Cp2kPDOS, network: str = "Pb", other: str = "Cs") -> dict:
    """Gap (eV) from the HOMO to the lowest unoccupied MO with more Mulliken weight on ``network``
    than on ``other``, with the weights of the plain LUMO and of that edge MO."""
    occupied = np.flatnonzero(pdos.occupations > 1e-3)
    empty = np.flatnonzero(pdos.occupations <= 1e-3)
    if not len(occupied) or not len(empty):
        raise QdlabError("the PDOS holds no occupied or no unoccupied MO")
    missing = [el for el in (network, other) if el not in pdos.weights]
    if missing:
        raise QdlabError(f"the PDOS has no kind {missing[0]} (kinds: {', '.join(pdos.weights)})")
    homo = occupied[-1]
    edge = next((i for i in empty if pdos.weights[network][i] > pdos.weights[other][i]), None)
    if edge is None:
        raise QdlabError(f"none of the {len(empty)} printed unoccupied MOs has more weight on {network} than "
                         f"on {other}: print more (nlumo)")

    def w(i: int) -> dict:
        return {el: float(v[i]) for el, v in pdos.weights.items()}

    return {"edge_gap_eV": float(pdos.energies_eV[edge] - pdos.energies_eV[homo]),
            "edge_lumo_index": int(edge - empty[0]), "lumo_weights": w(empty[0]), "edge_weights": w(edge),
            "homo_weights": w(homo)}
