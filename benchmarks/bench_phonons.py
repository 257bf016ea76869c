"""Γ-phonon benchmark (run by hand): qdlab vs ASE ``Vibrations`` with the same engine (CHGNet).

For each system: relax with CHGNet (L-BFGS, fmax 0.01 eV/Å), then
  1. qdlab ``phonons`` (central differences, 6N calls, checkpointing on) with qdlab's CHGNet engine,
  2. ASE ``Vibrations`` (delta 0.01, nfree 2) with the same qdlab engine object,
  3. ASE ``Vibrations`` with CHGNet's own ``CHGNetCalculator`` (what users run today),
and prints wall times, ratios, the fraction of qdlab's wall time spent inside the engine, and the
largest frequency difference above 5 cm⁻¹.

    OMP_NUM_THREADS=1 python benchmarks/bench_phonons.py --system bare      # 3×3×3, 189 atoms
    OMP_NUM_THREADS=1 python benchmarks/bench_phonons.py --system capped    # 3×3×3 50 % MA+BzO (hours on CPU)
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

from qdlab.build import PerovskiteRecipe, build  # noqa: E402
from qdlab.engines import get_calculator  # noqa: E402
from qdlab.workflows.phonons import phonons  # noqa: E402
from qdlab.workflows.relax import relax  # noqa: E402

SYSTEMS = {"bare": PerovskiteRecipe(size="3"),
           "capped": PerovskiteRecipe(size="3", ligands=["MA:0.5", "BzO:0.5"])}


def ase_vibrations(atoms, calc, folder):
    from ase.vibrations import Vibrations

    a = atoms.copy()
    a.calc = calc
    t0 = time.perf_counter()
    vib = Vibrations(a, name=os.path.join(folder, "vib"), delta=0.01, nfree=2)
    vib.run()
    f = vib.get_frequencies()
    return time.perf_counter() - t0, np.sort(np.where(np.abs(f.imag) > 0, -np.abs(f.imag), f.real))


def maxdiff(a, b, thr=5.0):
    a, b = np.sort(a[np.abs(a) > thr]), np.sort(b[np.abs(b) > thr])
    n = min(len(a), len(b))
    return float(np.abs(a[-n:] - b[-n:]).max()), len(a), len(b)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--system", choices=list(SYSTEMS), default="bare")
    ap.add_argument("--skip-package", action="store_true", help="skip ASE Vibrations with CHGNetCalculator")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    atoms = build(SYSTEMS[args.system])
    calc = get_calculator("chgnet")
    res = relax(atoms, calc, fmax=0.01, steps=1000)
    atoms = res.atoms
    atoms.constraints = []
    print(f"{args.system} 3x3x3: {atoms.get_chemical_formula(mode='hill')} ({len(atoms)} atoms), relaxed in "
          f"{res.steps} steps (fmax {res.fmax_eV_A:.4f} eV/Å); {6 * len(atoms)} force calls per method")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ours = phonons(atoms, calc, checkpoint=os.path.join(tmp, "h.ckpt"))
        t_ours = time.perf_counter() - t0
        t_ase, f_ase = ase_vibrations(atoms, calc, os.path.join(tmp, "a"))
        print(f"qdlab phonons:                     {t_ours:8.1f} s  (engine {100 * ours.seconds_in_engine / t_ours:.1f} % of wall time)")
        print(f"ASE Vibrations, same qdlab engine:  {t_ase:8.1f} s  → ratio ASE/qdlab {t_ase / t_ours:.2f}")
        d, na, nb = maxdiff(ours.frequencies_cm1, f_ase)
        print(f"max |Δν| above 5 cm⁻¹ vs ASE: {d:.2e} cm⁻¹ ({na} vs {nb} modes)")
        if not args.skip_package:
            from chgnet.model import CHGNet
            from chgnet.model.dynamics import CHGNetCalculator

            pkg = CHGNetCalculator(model=CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False), use_device="cpu")
            t_pkg, f_pkg = ase_vibrations(atoms, pkg, os.path.join(tmp, "b"))
            print(f"ASE Vibrations, CHGNetCalculator:   {t_pkg:8.1f} s  → ratio ASE/qdlab {t_pkg / t_ours:.2f}; "
                  f"max |Δν| {maxdiff(ours.frequencies_cm1, f_pkg)[0]:.2e} cm⁻¹")


if __name__ == "__main__":
    main()
