"""Grid H·X: the fast path (torch, per-atom projector blocks) against the reference (numpy FFT +
scipy CSR projectors) on the same Hamiltonian — time per spinor and the ratio, with the difference.

Run by hand:  PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_hx_fast.py [--size 2] [--spacing 0.5]
CsPbI3 cube of seed 003 (n Pb per edge, corner Cs kept off: the builder's surface-charge model),
8 Bohr vacuum, a block of ``--vectors`` spinors; wall and CPU (process) seconds per spinor, for
complex128 and complex64, and the max |ΔH·X| / max |H·X| and Rayleigh-quotient differences (Hartree).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from qdlab.build.recipes import PerovskiteRecipe, build_perovskite
from qdlab.electronic.pseudopotential.engine import StatesSettings, box, weights
from qdlab.electronic.pseudopotential.hamiltonian import grid_hamiltonian
from qdlab.electronic.pseudopotential.torch_apply import TorchApply


def _timed(f, X, reps: int = 2):
    f(X)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(reps):
        y = f(X)
    return (time.perf_counter() - t) / reps, (time.process_time() - c) / reps, y


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="2")
    ap.add_argument("--spacing", type=float, default=0.5)
    ap.add_argument("--vectors", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(1)
    atoms = build_perovskite(PerovskiteRecipe(composition="CsPbI3", size=a.size, vacuum=5.0,
                                              neutrality="surface-charge"))
    cell, frac = box(atoms, 8.0)
    H = grid_hamiltonian(cell, frac, atoms.get_chemical_symbols(), weights(atoms, StatesSettings()), a.spacing)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((H.dim, a.vectors)) + 1j * rng.standard_normal((H.dim, a.vectors))
    nv = a.vectors
    w0, c0, ref = _timed(H.apply, X)
    rq = lambda y: np.real(np.einsum("ij,ij->j", X.conj(), y)) / np.real(np.einsum("ij,ij->j", X.conj(), X))  # noqa: E731
    print(f"{atoms.get_chemical_formula()} grid {H.fft_shape}, {H.proj.nnz / 1e6:.1f} M projector non-zeros, "
          f"{nv} spinors")
    print(f"reference numpy/CSR : wall {w0 / nv:.4f} s, CPU {c0 / nv:.4f} s per spinor")
    for prec in ("double", "single"):
        w, c, y = _timed(TorchApply(H, "cpu", prec), X)
        err = np.abs(y - ref).max() / np.abs(ref).max()
        print(f"fast torch {prec:6s}: wall {w / nv:.4f} s, CPU {c / nv:.4f} s per spinor; CPU ratio {c0 / c:.2f}x; "
              f"rel. error {err:.1e}; Rayleigh quotients {np.abs(rq(y) - rq(ref)).max():.1e} Ha")


if __name__ == "__main__":
    main()
