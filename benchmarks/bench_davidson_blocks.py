"""Block Davidson's tall-block algebra on numpy (the CPU default) against torch tensors (the GPU path) on
the same nanocrystal Hamiltonian and the same iterations: the seconds besides H·X and the preconditioner,
and their ratio. Run on one core (OMP_NUM_THREADS=1) to compare the CPU algebras; with CUDA present a
third row runs everything on the GPU.

    OMP_NUM_THREADS=1 python benchmarks/bench_davidson_blocks.py --spacing 1.5 --iterations 30
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from qdlab.build.recipes import PerovskiteRecipe, build_perovskite
from qdlab.electronic.eigensolvers import folded_davidson
from qdlab.electronic.pseudopotential.engine import StatesSettings, box, weights
from qdlab.electronic.pseudopotential.hamiltonian import grid_hamiltonian
from qdlab.electronic.pseudopotential.params import HARTREE_EV
from qdlab.electronic.pseudopotential.torch_apply import TorchApply


def run(H, s: StatesSettings, device: str, blocks: str | None, iterations: int, nvec: int) -> tuple[float, float]:
    """(algebra seconds, wall seconds) of ``iterations`` Davidson iterations (tolerance never met)."""
    A = TorchApply(H, device)
    inner, spent = A.preconditioner(s.precond_shift_Ha), [0.0]

    def pre(X):
        t = time.perf_counter()
        out = inner(X)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        spent[0] += time.perf_counter() - t
        return out

    t0 = time.perf_counter()
    folded_davidson(A, H.dim, nvec - 8, s.ref_eV / HARTREE_EV, precond=pre, nvec=nvec, tol=1e-14,
                    maxiter=iterations, device=blocks)
    wall = time.perf_counter() - t0
    return wall - A.seconds - spent[0], wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="2")
    ap.add_argument("--spacing", type=float, default=1.5, help="grid spacing, Bohr")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--nvec", type=int, default=24, help="vectors in the block")
    ap.add_argument("--repeats", type=int, default=4, help="alternating runs of each")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    atoms = build_perovskite(PerovskiteRecipe(composition="CsPbI3", size=a.size, neutrality="surface-charge"))
    s = StatesSettings(spacing_B=a.spacing)
    cell, frac = box(atoms, s.vacuum_B)
    H = grid_hamiltonian(cell, frac, atoms.get_chemical_symbols(), weights(atoms, s), a.spacing, r_cut=s.r_cut_B)
    print(f"{atoms.get_chemical_formula()}: grid {H.fft_shape}, {a.nvec}-vector blocks, {a.iterations} iterations, "
          f"{torch.get_num_threads()} thread(s)")
    cases = {"numpy": ("cpu", None), "torch-cpu": ("cpu", "cpu")}
    if torch.cuda.is_available():
        cases["torch-cuda"] = ("cuda", "cuda")
    times: dict[str, list[float]] = {k: [] for k in cases}
    for rep in range(a.repeats):
        for name in (list(cases) if rep % 2 == 0 else list(cases)[::-1]):
            alg, wall = run(H, s, *cases[name], a.iterations, a.nvec)
            times[name].append(alg)
            print(f"{name:>10}: algebra {alg:7.2f} s  (wall {wall:7.2f} s)", flush=True)
    mean = {k: float(np.mean(v)) for k, v in times.items()}
    for name in cases:
        print(f"{name:>10}: mean algebra {mean[name]:7.2f} s, {mean[name] / mean['numpy']:.2f}× numpy's")


if __name__ == "__main__":
    main()
