"""Builder benchmark (run by hand): 7×7×7 CsPbBr3 with 50 % MA + 50 % BzO (~4,900 atoms).

Goal (issue 2): under 10 s on one core. Peer for the bare core: ASE's own route (bulk cubic
perovskite from ``ase.spacegroup.crystal``, repeated and cut to the Cs–Br terminated cube);
the ratio compares the two on the same 7×7×7 core. There is no peer tool for ligand capping.

    OMP_NUM_THREADS=1 python benchmarks/bench_build.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase.spacegroup import crystal  # noqa: E402

from qdlab.build import PerovskiteRecipe, build, summary  # noqa: E402


def ase_core(n: int, a: float = 5.95):
    """Cs–Br terminated n-cube the ASE way: crystal → repeat → keep sites inside the cube."""
    bulk = crystal(["Cs", "Pb", "Br"], basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], spacegroup=221,
                   cellpar=[a, a, a, 90, 90, 90])
    big = bulk.repeat((n + 1, n + 1, n + 1))
    f = big.positions / a
    inside = np.all(f <= n + 1e-6, axis=1)
    return big[inside]


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    n = 7
    t_ase, core_ase = best_of(lambda: ase_core(n))
    t_qd, core_qd = best_of(lambda: build(PerovskiteRecipe(size=str(n), neutrality="surface-charge")))
    # same core: ASE's cut keeps all 8 corners, qdlab removes them
    assert len(core_ase) - 8 == len(core_qd), (len(core_ase), len(core_qd))
    print(f"bare {n}x{n}x{n} core ({len(core_qd)} atoms): qdlab {t_qd*1e3:.1f} ms (with labels, charges), "
          f"ASE crystal+repeat+cut {t_ase*1e3:.1f} ms, ratio ASE/qdlab = {t_ase/t_qd:.2f}")
    from qdlab.build import ligands

    ligands._geometry.cache_clear()  # count RDKit embedding in the capped build
    t0 = time.perf_counter()
    atoms = build(PerovskiteRecipe(size=str(n), ligands=["MA:0.5", "BzO:0.5"]))
    t_cap = time.perf_counter() - t0
    s = summary(atoms)
    print(f"capped {n}x{n}x{n} 50% MA + 50% BzO: {s['formula']} ({s['n_atoms']} atoms) built in {t_cap:.2f} s "
          f"(goal < 10 s on one core: {'met' if t_cap < 10 else 'MISSED'})")


if __name__ == "__main__":
    main()
