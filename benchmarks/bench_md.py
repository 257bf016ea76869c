"""MD benchmark (run by hand): qdlab ``run_md`` vs a plain ASE Langevin loop, same calculator.

Bare 3×3×3 CsPbBr3 (189 atoms), CHGNet, 300 K, 1 fs, friction 20 ps⁻¹. qdlab writes a frame +
atomic checkpoint every ``--interval`` steps and checks forces/temperature every step; the ASE
loop only integrates. Prints steps/s of both and qdlab's overhead (goal ≤ 5 %). The two runs
alternate (ASE, qdlab, ASE, qdlab) so that load drift on a shared machine affects both alike.

    OMP_NUM_THREADS=1 python benchmarks/bench_md.py --steps 200
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from ase import units  # noqa: E402
from ase.md.langevin import Langevin  # noqa: E402
from ase.md.velocitydistribution import thermalize_momenta  # noqa: E402

from qdlab.build import PerovskiteRecipe, build  # noqa: E402
from qdlab.engines import get_calculator  # noqa: E402
from qdlab.workflows.md import run_md  # noqa: E402


def ase_loop(atoms, calc, steps: int) -> float:
    a = atoms.copy()
    a.calc = calc
    thermalize_momenta(a, temperature_K=300, rng=np.random.default_rng(0))
    dyn = Langevin(a, 1 * units.fs, temperature_K=300, friction=0.02 / units.fs, rng=np.random.default_rng(0))
    a.get_forces()
    t0 = time.perf_counter()
    dyn.run(steps)
    return steps / (time.perf_counter() - t0)


def qdlab_run(atoms, calc, steps: int, interval: int, folder: str, k: int) -> float:
    a = atoms.copy()
    a.calc = calc
    r = run_md(a, calc, ensemble="langevin", temperature_K=300, timestep_fs=1, steps=steps, interval=interval,
               friction_ps=20, trajectory=os.path.join(folder, f"md{k}.extxyz"))
    return r.steps_per_second


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--interval", type=int, default=50)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    atoms = build(PerovskiteRecipe(size="3"))
    calc = get_calculator("chgnet")
    calc.get_forces(atoms)  # warm up
    ase_rates, q_rates = [], []
    with tempfile.TemporaryDirectory() as d:
        for k in range(args.repeats):
            ase_rates.append(ase_loop(atoms, calc, args.steps))
            q_rates.append(qdlab_run(atoms, calc, args.steps, args.interval, d, k))
            print(f"round {k}: ASE {ase_rates[-1]:.3f} steps/s, qdlab {q_rates[-1]:.3f} steps/s")
    a, q = max(ase_rates), max(q_rates)
    print(f"bare 3×3×3 CsPbBr3 ({len(atoms)} atoms), CHGNet, {args.steps} steps, frame every {args.interval}")
    print(f"ASE Langevin loop: {a:.3f} steps/s ({1000 / a:.1f} ms/step)")
    print(f"qdlab run_md     : {q:.3f} steps/s ({1000 / q:.1f} ms/step)")
    print(f"qdlab overhead   : {100 * (a / q - 1):+.1f} % (goal ≤ 5 %)")


if __name__ == "__main__":
    main()
