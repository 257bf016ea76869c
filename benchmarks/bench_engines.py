"""Engine benchmark (run by hand): seconds per energy+forces call and the share of a relaxation's
wall time spent inside the engine, per engine and size (bare CsPbBr3 n = 3, 5; CsPbI3 for the
classical force field, whose seed 003 parameters are for iodide).

    OMP_NUM_THREADS=1 python benchmarks/bench_engines.py                 # chgnet, sevenn, classical
    OMP_NUM_THREADS=1 python benchmarks/bench_engines.py --engines chgnet --sizes 3 5 --relax-steps 30
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from ase.calculators.calculator import Calculator, all_changes  # noqa: E402

from qdlab.build import PerovskiteRecipe, build  # noqa: E402
from qdlab.engines import get_calculator  # noqa: E402
from qdlab.workflows.relax import relax  # noqa: E402


class Timed(Calculator):
    """Wraps an engine and accumulates the seconds spent inside it."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, inner: Calculator):
        super().__init__()
        self.inner, self.seconds, self.calls = inner, 0.0, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        t0 = time.perf_counter()
        e = self.inner.get_potential_energy(self.atoms)
        f = self.inner.get_forces(self.atoms)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        self.results = {"energy": e, "free_energy": e, "forces": f}


def structure(engine: str, n: int):
    if engine == "classical":
        return build(PerovskiteRecipe(composition="CsPbI3", size=str(n), lattice=6.29, neutrality="surface-charge"))
    return build(PerovskiteRecipe(composition="CsPbBr3", size=str(n), lattice=5.95))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--engines", nargs="+", default=["chgnet", "sevenn", "classical"])
    p.add_argument("--sizes", nargs="+", type=int, default=[3, 5])
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--relax-steps", type=int, default=20)
    args = p.parse_args()
    print(f"{'engine':10s} {'n':>2s} {'atoms':>6s} {'s/call':>8s} {'relax steps':>11s} {'in engine':>9s}")
    rng = np.random.default_rng(0)
    for engine in args.engines:
        calc = get_calculator(engine)
        for n in args.sizes:
            atoms = structure(engine, n)
            atoms.calc = calc
            atoms.get_forces()  # warm-up
            t = []
            for _ in range(args.calls):
                atoms.positions += rng.normal(0, 1e-3, atoms.positions.shape)
                t0 = time.perf_counter()
                atoms.get_forces()
                t.append(time.perf_counter() - t0)
            timed = Timed(calc)
            a = atoms.copy()
            a.positions += rng.normal(0, 0.02, a.positions.shape)
            t0 = time.perf_counter()
            res = relax(a, timed, fmax=1e-4, steps=args.relax_steps)
            wall = time.perf_counter() - t0
            print(f"{engine:10s} {n:2d} {len(atoms):6d} {np.median(t):8.3f} {res.steps:11d} "
                  f"{100 * timed.seconds / wall:8.1f}%", flush=True)


if __name__ == "__main__":
    main()
