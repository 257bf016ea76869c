"""CP2K (Debian package ``cp2k``) through ASE's CP2K calculator: the DFT reference labeller.

PBE, GTH pseudopotentials and MOLOPT basis sets shipped with CP2K, non-periodic Poisson solver
(Martyna–Tuckerman) for clusters in a vacuum box. Slow on 2 cores: minutes for a PbBr2 molecule.
"""

from __future__ import annotations

import shutil

from ase.calculators.calculator import Calculator

from qdlab.errors import QdlabError




def cp2k_calculator(charge: int = 0, cutoff_ry: float = 300.0, basis_set: str = "DZVP-MOLOPT-SR-GTH",
                    command: str | None = None, directory: str = "cp2k_run", **kwargs) -> Calculator:
    """PBE single points with CP2K for non-periodic clusters.

    With ``atoms.pbc`` all False, ASE's CP2K calculator sets POISSON/PERIODIC NONE with the
    Martyna–Tuckerman solver (the box must be about twice the cluster: keep ≥ 4 Å vacuum).
    """
    exe = command or shutil.which("cp2k_shell") or shutil.which("cp2k_shell.psmp") or shutil.which("cp2k_shell.ssmp")
    if exe is None:
        raise QdlabError("CP2K executable cp2k_shell not found: apt-get install cp2k")
    from ase.calculators.cp2k import CP2K
    from ase.units import Rydberg

    return CP2K(command=exe, xc="PBE", charge=charge, cutoff=cutoff_ry * Rydberg, basis_set=basis_set,
                pseudo_potential="GTH-PBE", basis_set_file="BASIS_MOLOPT", potential_file="GTH_POTENTIALS",
                stress_tensor=False, directory=directory, **kwargs)
