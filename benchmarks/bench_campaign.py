"""Benchmark: Γ-phonon displacements of the capped 3×3×3 CsPbBr3 NC (50 % MA + 50 % BzO, 701 atoms)
with CHGNet, spread over 2 local Dask workers by the campaign machinery vs one process.

Both paths run the same unit of work (:func:`qdlab.campaign.tasks.phonon_chunk`): the serial path
calls it once in this process for displacements [0, K), the parallel path submits it as chunks to a
local cluster of 2 worker processes (1 thread each) exactly as ``qdlab campaign run`` does. The
full Hessian (6N = 4,206 force calls) is ~95 core-minutes here, so ``--max-displacements K`` times
the first K displacements on both paths and extrapolates to 6N. Forces of both paths are compared
(identical inputs, one thread: identical numbers); with all displacements (e.g. ``--size 1``) the
frequencies of both paths are compared too.

    OMP_NUM_THREADS=1 python benchmarks/bench_campaign.py --max-displacements 48
    OMP_NUM_THREADS=1 python benchmarks/bench_campaign.py --size 1          # full Hessian, 64 atoms

Worker start-up (process spawn + CHGNet load) is timed separately from the force work.

Measured (2026-11-22, 2-core development machine, no other load, CHGNet 0.3.0, one thread per
process, allocator tuned by the engine factory, workers with MALLOC_ARENA_MAX=1):
capped 3×3×3, K = 40: one process 1.533 s per displacement (61.3 s), 2 workers 30.9 s → **1.98×**
(force work); extrapolated full Hessian 107.6 min → 54.5 min, 1.97× with start-up (3.7 s) and
first calls (10.9 s) counted once; forces identical (max |ΔF| = 0). At K = 40 itself start-up and
first calls weigh in: 1.49×. Capped 1×1×1, full Hessian (384 displacements): 52.2 s → 26.1 s,
2.00× (1.82× with start-up), frequencies identical (max |Δν| = 0).
Before the arena fix the first 10-displacement chunk of each worker ran at 2.5 s per call (its pool
thread had its own glibc arena and faulted the model's memory in again after the warm-up):
1.45–1.70×. Dask's default worker environment (MALLOC_TRIM_THRESHOLD_=65536) made CHGNet 1.7–2.3×
slower per call; campaign workers drop it (see :mod:`qdlab.campaign.cluster`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402


def _warm(task: dict, first_call: bool = True) -> int:
    """Load the engine and (``first_call``) make one force call on the undisplaced model: a
    process's first 701-atom CHGNet call takes 3–5× a later one (≈650k page faults while the
    allocator's heap grows), paid once per process on both paths."""
    from qdlab.campaign.tasks import calculator, input_structure

    calc = calculator(task["engine"])
    if first_call:
        atoms = input_structure(task, None, "")
        atoms.calc = calc
        atoms.get_forces()
    return os.getpid()


def _forces(files: Path, task: dict, plan) -> dict[int, np.ndarray]:
    """Every displacement's forces of the task's Hessian checkpoint (main file + chunk files)."""
    from qdlab.campaign.tasks import task_dir

    return plan.checkpoint(task_dir(files, task["key"]) / "hessian.ckpt").load()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="3", help="cube edge n (capped with 50 %% MA + 50 %% BzO)")
    ap.add_argument("--max-displacements", type=int, default=None, help="time only the first K displacements")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunks-per-worker", type=int, default=2)
    args = ap.parse_args()

    from distributed import wait

    from qdlab.campaign.cluster import open_client
    from qdlab.campaign.spec import Execution, expand, spec_from_dict
    from qdlab.campaign.tasks import phonon_chunk, phonon_plan
    from qdlab.workflows.hessian import chunk_ranges
    from qdlab.workflows.phonons import assemble_force_constants, vibrational_analysis

    spec = spec_from_dict({"name": "bench", "grid": [{"composition": "CsPbBr3", "lattice": 5.95, "size": args.size,
                                                      "ligands": [["MA", "BzO"]], "coverage": [0.5]}],
                           "engines": [{"name": "chgnet"}], "steps": [{"workflow": "phonons"}]})
    task = expand(spec)[0].to_dict()
    plan = phonon_plan(task, None, "")
    atoms = plan.atoms
    n = len(atoms)
    n_jobs = plan.n_jobs
    k = min(args.max_displacements or n_jobs, n_jobs)
    print(f"model: {atoms.get_chemical_formula()} ({n} atoms), 6N = {n_jobs} displacements, timing K = {k}")
    print(f"machine: {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} (shared machine)")

    with tempfile.TemporaryDirectory() as tmp:
        ser, par = Path(tmp) / "serial", Path(tmp) / "parallel"
        # one process: engine load, then the K displacements
        t0 = time.perf_counter()
        _warm(task, first_call=False)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        _warm(task)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = phonon_chunk(task, None, str(ser), 0, k)
        t_serial = time.perf_counter() - t0
        assert r["status"] == "done", r
        print(f"one process: engine load {t_load:.1f} s, first call {t_first:.1f} s, {k} displacements "
              f"{t_serial:.1f} s ({t_serial / k:.3f} s each)")

        # local cluster, as `qdlab campaign run` starts it
        t0 = time.perf_counter()
        client, cluster = open_client(Execution(workers=args.workers))
        pids = client.run(_warm, task, False)
        t_start = time.perf_counter() - t0
        t0 = time.perf_counter()
        client.run(_warm, task)
        t_first_par = time.perf_counter() - t0
        ranges = chunk_ranges(k, args.workers * args.chunks_per_worker)
        t0 = time.perf_counter()
        futs = [client.submit(phonon_chunk, task, None, str(par), j0, j1, pure=False) for j0, j1 in ranges]
        wait(futs)
        t_par = time.perf_counter() - t0
        res = [f.result() for f in futs]
        client.close()
        cluster.close()
        assert all(x["status"] == "done" for x in res), res
        print(f"{args.workers} workers: start-up + engine load {t_start:.1f} s ({len(pids)} processes), "
              f"first calls {t_first_par:.1f} s, {k} displacements in {len(ranges)} chunks {t_par:.1f} s")

        fs, fp = _forces(ser, task, plan), _forces(par, task, plan)
        diff = max(float(np.abs(fs[j] - fp[j]).max()) for j in range(k))
        print(f"forces of both paths: max |ΔF| = {diff:.3g} eV/Å over {k} displacements")
        speed = t_serial / t_par
        print(f"speed-up (force work, {k} displacements): {speed:.2f}x on {args.workers} workers; with start-up "
              f"and first calls: {(t_load + t_first + t_serial) / (t_start + t_first_par + t_par):.2f}x")
        if k < n_jobs:
            full_s = t_load + t_first + t_serial / k * n_jobs
            full_p = t_start + t_first_par + t_par / k * n_jobs
            print(f"extrapolated to all {n_jobs} displacements (start-up and first calls once): one process "
                  f"{full_s / 60:.1f} min, {args.workers} workers {full_p / 60:.1f} min → {full_s / full_p:.2f}x")
        else:
            freqs = []
            for done in (fs, fp):
                phi = assemble_force_constants(plan, done)
                freqs.append(vibrational_analysis(phi, atoms.get_masses(), atoms.positions)[0])
            print(f"frequencies of both paths: max |Δν| = {np.abs(freqs[0] - freqs[1]).max():.3g} cm⁻¹ "
                  f"({len(freqs[0])} modes, {freqs[0].min():.1f} … {freqs[0].max():.1f} cm⁻¹)")


if __name__ == "__main__":
    main()
