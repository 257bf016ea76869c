"""Pseudopotential nanocrystal mode: grid size, memory estimate and time per H application per size.

Run by hand:  PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_pseudopotential.py [--time-max N]
For every CsPbI3 cube n (seed 003 Table S1, 0.5 Bohr grid, 8 Bohr vacuum, 160 states as in
SCIENCE.md §9) it prints grid points, MB per spinor state, the states and the total with the Davidson
solver's work copies of its block (--block states per call + 8 buffer vectors; default: all states in
one block) and the found states' copies, the largest n that fits in 24 GB, and the ratio to SCIENCE.md's figures
(1.9 nm ≈ 104³ points ≈ 36 MB/state ≈ 6 GB for 160 states; 2.5 nm ≈ 11 GB). For n ≤ --time-max it
builds the Hamiltonian and times H·X for a block of 8 spinors on one core (wall time and peak RSS).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from qdlab.build.recipes import PerovskiteRecipe, build_perovskite
from qdlab.electronic.pseudopotential.engine import (FOUND_COPIES, WORK_BLOCKS, StatesSettings, box, memory_estimate,
                                                     solver_vectors)
from qdlab.electronic.pseudopotential.hamiltonian import grid_hamiltonian, grid_shape

SCIENCE_MB_PER_STATE = {3: 36.0}  # 1.9 nm
SCIENCE_GB_160 = {3: 6.0, 4: 11.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="2,3,4,5,6,7,8,9")
    ap.add_argument("--states", type=int, default=160)
    ap.add_argument("--block", type=int, default=None, help="states per solver call (default: all)")
    ap.add_argument("--limit-gb", type=float, default=24.0)
    ap.add_argument("--time-max", type=int, default=2, help="time H·X up to this n")
    a = ap.parse_args()
    nvec = solver_vectors(StatesSettings(n_below=a.states // 2, n_above=a.states - a.states // 2, block=a.block))
    fits = 0
    print(f"{'n':>2} {'atoms':>5} {'grid':>14} {'MB/state':>9} {'states GB':>9} {'total GB':>9} {'SCIENCE':>8}"
          f" {'H·X(8) s':>9} {'RSS GB':>7}")
    for n in map(int, a.sizes.split(",")):
        atoms = build_perovskite(PerovskiteRecipe(composition="CsPbI3", size=str(n), vacuum=5.0,
                                                  neutrality="surface-charge"))
        cell, frac = box(atoms, 8.0)
        shape = grid_shape(cell, 0.5)
        pts = int(np.prod(shape))
        est = memory_estimate(pts, nvec, kept=a.states)
        per = memory_estimate(pts, 1)["states_bytes"] / 1e6
        states_gb = per * a.states / 1e3
        ok = est["total_bytes"] <= a.limit_gb * 1e9
        fits = n if ok else fits
        ref = SCIENCE_GB_160.get(n)
        ratio = f"{states_gb / ref:.2f}x" if ref and a.states == 160 else "–"
        t_apply, rss = "–", "–"
        if n <= a.time_max:
            H = grid_hamiltonian(cell, frac, atoms.get_chemical_symbols(), np.zeros(len(atoms)), 0.5, chunk=8)
            X = np.random.default_rng(0).standard_normal((H.dim, 8)) + 0j
            t = time.perf_counter()
            H.apply(X)
            t_apply = f"{time.perf_counter() - t:.2f}"
            rss = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f}"
        print(f"{n:>2} {len(atoms):>5} {str(shape):>14} {per:>9.1f} {states_gb:>9.2f}"
              f" {est['total_bytes'] / 1e9:>9.2f} {ratio:>8} {t_apply:>9} {rss:>7}")
    print(f"largest cube within {a.limit_gb:g} GB ({a.states} states; Davidson block of {nvec} vectors × "
          f"{WORK_BLOCKS['davidson']} work copies + the found states × {FOUND_COPIES}): n = {fits}")


if __name__ == "__main__":
    main()
