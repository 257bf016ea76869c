"""LJ + Coulomb benchmark (run by hand): qdlab vs LAMMPS on the 9×9×9 CsPbI3 cube.

Issue 3 calls this cube 6,151 atoms; with the 8 corners removed it is Cs992Pb729I2430 = 4,151
atoms (SCIENCE.md §2). LAMMPS: pair_style lj/cut/coul/cut, cutoff beyond the diagonal (all
pairs), nsq neighbour list, one MPI rank. Both single-threaded.

    OMP_NUM_THREADS=1 python benchmarks/bench_ljcoulomb.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from qdlab.build import PerovskiteRecipe, build  # noqa: E402
from qdlab.engines.classical import SEED003_LJ, LJCoulomb  # noqa: E402
from qdlab.engines.lammps_peer import lj_coulomb_lammps  # noqa: E402


def main(n: int = 9, repeat: int = 5) -> None:
    atoms = build(PerovskiteRecipe(composition="CsPbI3", size=str(n), neutrality="surface-charge"))
    ref = lj_coulomb_lammps(atoms, SEED003_LJ, steps=repeat)
    calc = LJCoulomb()
    times = []
    for _ in range(repeat):
        calc.reset()
        t0 = time.perf_counter()
        calc.get_forces(atoms)
        times.append(time.perf_counter() - t0)
    t_qd = min(times)
    e = calc.results["energy"]
    print(f"{n}x{n}x{n} CsPbI3, {len(atoms)} atoms, {len(atoms) * (len(atoms) - 1) // 2:,} pairs")
    print(f"energy: qdlab {e:.6f} eV, LAMMPS {ref.energy:.6f} eV, rel. diff {abs(e - ref.energy) / abs(ref.energy):.1e}; "
          f"max |ΔF| {np.abs(calc.results['forces'] - ref.forces).max():.1e} eV/Å")
    print(f"qdlab energy+forces: {t_qd:.3f} s")
    print(f"LAMMPS run 0 (neighbour list + forces): {ref.seconds_setup_and_force:.3f} s  → ratio LAMMPS/qdlab "
          f"{ref.seconds_setup_and_force / t_qd:.2f}")
    print(f"LAMMPS per MD step (forces only, list reused): {ref.seconds_per_step:.3f} s  → ratio LAMMPS/qdlab "
          f"{ref.seconds_per_step / t_qd:.2f}")


if __name__ == "__main__":
    main()
