"""Nanocrystal mode: states near the gap of a finite structure on a real-space grid.

The structure (Å) is centred in a box with ``vacuum_B`` Bohr of vacuum on every side, the spinor
Hamiltonian is built on a grid of spacing ``spacing_B`` (0.5 Bohr default, seed 003), per-atom
cubic↔orthorhombic weights come from the Pb–I–Pb angles, and the states on both sides of a reference
energy inside the gap are found on the folded spectrum (H − ε)² by block Davidson (default; scipy's
LOBPCG as the alternative). H·X runs on the fast torch path
(:mod:`.torch_apply`; CPU by default, ``device="cuda"`` on a GPU, ``device="numpy"`` the reference); on a GPU
the Davidson's tall-block algebra stays there too (:data:`TORCH_BLOCKS`). Before anything
large is allocated the memory is estimated and a too-large request is refused in one line.
The converged states are checkpointed (npz, atomic write) and reused by a rerun with equal inputs; a
rerun that asks for more states per side (all else equal) keeps them and searches only beyond them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from pydantic import BaseModel, Field

from qdlab.electronic.pseudopotential.hamiltonian import grid_hamiltonian, grid_shape
from qdlab.electronic.pseudopotential.interpolation import orthorhombic_weights
from qdlab.electronic.pseudopotential.params import ACTIVE, BOHR_A, HARTREE_EV, n_occupied
from qdlab.electronic.states import BandEdgeStates
from qdlab.errors import QdlabError
from qdlab.store.files import atomic_path

if TYPE_CHECKING:
    from qdlab.electronic.pseudopotential.partial import PartialWriter, SearchState

#: Work copies of the state block held at once by each solver, as resident memory (RSS) measured on
#: the n = 2 CsPbI3 cube at 1.0 Bohr (40³, 24-vector blocks of 49 MB, 40 iterations):
#: block Davidson 19.0–20.5 blocks above the set-up — its two preallocated V, H·V buffers of 5 blocks
#: each, the Ritz vectors, their images, the residuals, the preconditioner's and H·X's temporaries
#: (15.2 with glibc's mmap threshold pinned at 1 MB; the rest is freed memory glibc keeps);
#: scipy's LOBPCG 23.8 blocks (X, R, P and their images under the folded operator, its Gram and
#: Rayleigh–Ritz temporaries, the folded operator's intermediate H·X). Both with a 10 % margin.
WORK_BLOCKS = {"davidson": 22, "lobpcg": 26}


class StatesSettings(BaseModel):
    """Settings of the nanocrystal pseudopotential states (shared by CLI, API and campaign)."""

    spacing_B: float = Field(0.5, gt=0.05, description="grid spacing, Bohr")
    vacuum_B: float = Field(8.0, ge=0, description="vacuum on every side of the structure, Bohr")
    r_cut_B: float = Field(6.0, gt=0, description="projector cutoff radius, Bohr")
    n_below: int = Field(8, ge=1, description="hole (occupied) spinor states wanted")
    n_above: int = Field(8, ge=1, description="electron (unoccupied) spinor states wanted")
    ref_eV: float = Field(-5.1, description="reference energy inside the gap (bulk cubic mid-gap), eV")
    tol_Ha: float = Field(1e-5, gt=0, description="residual tolerance, Hartree")
    maxiter: int = Field(60, ge=1, description="solver iterations per centre, in tens")
    solver: str = Field("davidson", pattern="^(davidson|lobpcg)$",
                        description="folded-spectrum block Davidson (default) or scipy's LOBPCG")
    precond_shift_Ha: float = Field(3.0, gt=0, description="shift s of the preconditioner 1/(T_G + s)², Hartree")
    extra: int = Field(8, ge=0, description="buffer vectors in the subspace")
    block: int | None = Field(None, ge=1, description="states asked of one solver call (memory ∝ block + extra; "
                              "more centres cover the rest); None: all wanted states at once")
    max_calls: int | None = Field(None, ge=1, description="solver calls before the search gives up (None: "
                                  "4 + 2 per block of wanted states); a budget, not part of the states' key, so "
                                  "a rerun with more continues a search that ran out from its checkpoint")
    max_memory_GB: float = Field(16.0, gt=0, description="refuse above this estimate")
    checkpoint_s: float = Field(600.0, ge=0, description="seconds between saves of the solver's state during "
                                "a search (a killed run resumes from the last one)")
    interpolate: bool = Field(True, description="per-atom cubic↔orthorhombic mixing from Pb–I–Pb angles")
    phase: str | None = Field(None, description="force one Table S4 set ('cubic'/'orthorhombic') instead")
    seed: int = 0
    device: str = Field("cpu", description="torch device of H·X and, on a GPU, of the Davidson's block "
                        "algebra (cpu, cuda); numpy = the reference path")
    precision: str = Field("double", pattern="^(double|single)$",
                           description="H·X in complex128 or complex64 (single: ≈1e-6 relative error)")


#: CPU seconds of one fast H·X per spinor and grid point (torch, complex128, one core; measured on
#: the n = 2 CsPbI3 cube, 80³ points: 0.080 s per spinor, machine shared by four sessions).
HX_SECONDS_PER_POINT = 0.080 / 80**3
#: Solver wall time per H·X time: folded LOBPCG's block orthogonalisation on 2N-long vectors and the
#: preconditioner FFTs (measured: H·X 33 % of the states time for Cs19Pb8I36 on an 18³ grid, 37 % of
#: the CPU time for the n = 1 cube on 0.6 Bohr).
SOLVER_OVERHEAD = 3.0
#: Block Davidson, measured: relaxed n = 2 CsPbI3 cube (Cs19Pb8I36), 1.0 Bohr (42³), 8 + 8 states + 8 buffer,
#: tol 1e-5 Ha, two centres: 13,152–13,630 H·X (≈ 280 per vector and centre), wall ≈ 10× the H·X time with
#: the numpy QR / hstack algebra of that time; relaxed n = 3 cube (Cs56Pb27I108), 1.0 Bohr (54³), same
#: settings, after the buffer/SVQB rewrite: 25,760 H·X (≈ 540 per vector and centre, a lower bound: the last
#: centre stopped at its 600-iteration cap, residual 2.7e-4 Ha), 6,519 s wall of which H·X 1,355 s (4.8×;
#: one core shared with a second run). The model takes the larger count and the newer ratio.
DAVIDSON_HX_PER_VECTOR = 540
DAVIDSON_OVERHEAD = 5.0
#: Where block Davidson's tall-block algebra (V, H·V, Ritz vectors, residuals, orthonormalisation) runs:
#: on the torch device of H·X for a GPU (no host round trip of the block per iteration), but numpy for
#: ``device="cpu"``: torch's CPU algebra measured 4–8 % slower on one core (benchmarks/bench_davidson_blocks.py,
#: n = 2 cube, 24-vector blocks, seconds besides H·X and the preconditioner: 27³ at 1.5 Bohr, 30 iterations,
#: 4 alternating runs each, 4.65 vs 4.49 s and 4.63 vs 4.28 s; 40³ at 1.0 Bohr, 20 iterations, 11.25 vs
#: 10.59 s), and the default path stays the reference's arithmetic, bit for bit.
TORCH_BLOCKS = "cuda"


def states_seconds(n_points: int, s: "StatesSettings", centres: int = 2) -> float:
    """One-core time of the gap states, seconds, for ``centres`` solver centres (2 measured; with a
    ``block`` smaller than the states wanted, at least one centre per block and one more).

    Davidson: DAVIDSON_HX_PER_VECTOR H·X per vector and centre, wall ≈ DAVIDSON_OVERHEAD × the H·X
    time (measured, see above). LOBPCG runs to its cap (10·maxiter iterations, at most 2 H·X per vector; every nanocrystal
    case measured did, using ≈ 2/3 of that bound: Cs4PbI6 on 48³, 16 vectors, ≈ 12,500 H·X per centre)."""
    want, nvec = s.n_below + s.n_above, solver_vectors(s)
    centres = max(centres, -(-want // states_per_call(want, s.block)) + 1)
    if s.solver == "davidson":
        n_hx, overhead = centres * DAVIDSON_HX_PER_VECTOR * nvec, DAVIDSON_OVERHEAD
    else:
        n_hx, overhead = centres * 10 * s.maxiter * nvec * 2, SOLVER_OVERHEAD
    return float(n_hx * HX_SECONDS_PER_POINT * n_points * overhead)


def grid_points(atoms: Atoms, s: "StatesSettings") -> int:
    """Grid points of the box the structure gets with settings ``s``."""
    cell, _ = box(atoms, s.vacuum_B)
    return int(np.prod(grid_shape(cell, s.spacing_B)))


#: Copies of the found states held besides the solver's work: the list, the deflation array, and in the
#: final Rayleigh–Ritz the SVD's input copy and U, H·Q (counted).
FOUND_COPIES = 5


def states_per_call(want: int, block: int | None) -> int:
    """States asked of one solver call: ``block`` when set (and smaller), else all ``want``."""
    return min(want, block or want)


def solver_vectors(s: "StatesSettings") -> int:
    """Vectors in one solver block: the states asked of one call plus the buffer."""
    return states_per_call(s.n_below + s.n_above, s.block) + s.extra


def memory_estimate(n_points: int, n_states: int, solver: str = "davidson", kept: int = 0) -> dict:
    """Bytes of a block of ``n_states`` vectors (points × states × 16 B × 2 spinor), with the solver's work
    copies, plus ``kept`` found states held FOUND_COPIES times."""
    one = n_points * 16 * 2
    states = one * n_states
    total = states * WORK_BLOCKS[solver] + one * kept * FOUND_COPIES
    return {"states_bytes": states, "total_bytes": total, "work_blocks": WORK_BLOCKS[solver]}


def box(atoms: Atoms, vacuum_B: float) -> tuple[np.ndarray, np.ndarray]:
    """Orthorhombic box (Bohr) around the structure and fractional positions of its atoms."""
    pos = atoms.positions / BOHR_A
    lo, hi = pos.min(0), pos.max(0)
    cell = np.diag(hi - lo + 2 * vacuum_B)
    return cell, (pos - lo + vacuum_B) / np.diag(cell)


def weights(atoms: Atoms, s: StatesSettings) -> np.ndarray:
    if s.phase is not None:
        return np.full(len(atoms), 1.0 if s.phase == "orthorhombic" else 0.0)
    return orthorhombic_weights(atoms)[0] if s.interpolate else np.zeros(len(atoms))


def states_key(atoms: Atoms, s: StatesSettings) -> str:
    """Hash of the inputs that define the states (positions, symbols, settings)."""
    h = hashlib.sha256()
    h.update(np.round(atoms.positions, 6).tobytes())
    h.update(" ".join(atoms.get_chemical_symbols()).encode())
    h.update(json.dumps(s.model_dump(exclude={"device", "max_memory_GB", "block", "checkpoint_s", "max_calls"}),
                        sort_keys=True).encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class GridStates:
    """Converged states with their grid spinors: (k, 2, *shape), normalised Σ|ψ|² dV = 1."""

    states: BandEdgeStates
    psi: np.ndarray
    cell_B: np.ndarray
    dV: float


def check_memory(n_points: int, n_states: int, limit_GB: float, solver: str = "davidson", kept: int = 0,
                 device_GB: float | None = None) -> dict:
    """The memory estimate, refused above ``limit_GB`` or, on a GPU (``device_GB`` its memory), above the GPU's
    memory: with ``--device cuda`` the solver's blocks and the found states all live on the device."""
    est = memory_estimate(n_points, n_states, solver, kept)
    what = (f"({n_points} grid points × 16 B × 2 spinor × ({n_states} vectors × {est['work_blocks']} work copies of "
            f"{solver} + {kept} states found × {FOUND_COPIES}))")
    caps = [(limit_GB, f"the limit {limit_GB:g} GB")]
    if device_GB is not None:
        caps.append((device_GB, f"the GPU's {device_GB:.1f} GB"))
    for cap, name in caps:
        if est["total_bytes"] > cap * 1e9:
            raise QdlabError(f"memory estimate {est['total_bytes'] / 1e9:.1f} GB {what} exceeds {name}; "
                             "a smaller --block lowers the first term")
    return est


def device_memory_GB(device: str) -> float | None:
    """Total memory (GB) of a CUDA ``device`` ("cuda", "cuda:1"); None for the CPU paths."""
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_properties(torch.device(device)).total_memory / 1e9


def nanocrystal_states(atoms: Atoms, settings: StatesSettings | None = None,
                       checkpoint: str | Path | None = None, progress=None) -> GridStates:
    """States nearest ``ref_eV`` of a finite structure; reused from ``checkpoint`` when inputs match."""
    s = settings or StatesSettings()
    key = states_key(atoms, s)
    smaller = None
    if checkpoint is not None and Path(checkpoint).exists():
        got = load_states(checkpoint)
        if got is not None and got.states.info.get("key") == key:
            return got
        smaller = got if got is not None and _is_smaller_run(atoms, s, got) else None
    cell, frac = box(atoms, s.vacuum_B)
    shape = grid_shape(cell, s.spacing_B)
    est = check_memory(int(np.prod(shape)), solver_vectors(s), s.max_memory_GB, s.solver, s.n_below + s.n_above,
                       device_memory_GB(s.device))
    t0 = time.perf_counter()
    w = weights(atoms, s)
    H = grid_hamiltonian(cell, frac, atoms.get_chemical_symbols(), w, s.spacing_B, r_cut=s.r_cut_B)
    apply, pre, blocks = H.apply, kinetic_preconditioner(H, s.precond_shift_Ha), None
    if s.device != "numpy":
        from qdlab.electronic.pseudopotential.torch_apply import TorchApply

        fast = TorchApply(H, s.device, s.precision)
        apply, pre = fast, fast.preconditioner(s.precond_shift_Ha)
        blocks = fast.dev if fast.dev.type == TORCH_BLOCKS else None
    writer, resume = None, None
    if checkpoint is not None:
        from qdlab.electronic.pseudopotential.partial import PartialWriter, load_partial, partial_path

        writer = PartialWriter(partial_path(checkpoint), f"{key}:block={s.block}", H.dim, s.checkpoint_s)
        resume = load_partial(writer.path, writer.key, H.dim)
        writer.elapsed_before_s = resume.elapsed_s if resume is not None else 0.0
    resumed = resume
    if resume is None and smaller is not None:
        resume = seed_search(smaller, s.ref_eV / HARTREE_EV, s.n_above)
    e, vecs, res = gap_states(H, s.ref_eV / HARTREE_EV, s.n_below, s.n_above, s, progress, apply=apply,
                              precond=pre, partial=writer, resume=resume, device=blocks)
    ref = s.ref_eV / HARTREE_EV
    occ = e < ref
    psi = vecs.T.reshape((len(e), 2) + shape) / np.sqrt(H.dV)
    info = {"key": key, "grid": list(shape), "cell_B": np.diag(cell).tolist(), "spacing_B": s.spacing_B,
            "memory": est, "iterations": res.iterations, "n_apply": res.n_apply, "converged": res.converged,
            "max_residual_Ha": float(res.residuals.max()), "seconds": time.perf_counter() - t0,
            "n_apply_total": getattr(apply, "n_apply", None), "hx_seconds": getattr(apply, "seconds", None),
            "solver": res.info.get("method", "chebyshev"), "n_occupied_total": n_occupied(atoms.get_chemical_symbols()),
            "settings": s.model_dump(), "w_ortho_mean": float(w[np.isin(atoms.get_chemical_symbols(), ACTIVE)].mean()),
            "resumed_at_call": None if resumed is None else resumed.attempt,
            "extended_from": None if smaller is None else len(smaller.states.energies_eV),
            "seconds_total": time.perf_counter() - t0 + (resume.elapsed_s if resume is not None else 0.0)}
    states = BandEdgeStates(energies_eV=e * HARTREE_EV, occupied=occ,
                            atom_weights=atom_weights(psi, cell, frac, H.dV), method="pseudopotential", info=info)
    out = GridStates(states, psi, cell, H.dV)
    if checkpoint is not None:
        save_states(out, checkpoint)
        writer.done()
    return out


def _is_smaller_run(atoms: Atoms, s: StatesSettings, got: GridStates) -> bool:
    """Whether ``got`` holds states of this structure and these settings, but fewer on each side."""
    info = got.states.info
    try:
        old = StatesSettings(**info["settings"])
    except (KeyError, TypeError, ValueError):
        return False
    if states_key(atoms, old) != info.get("key") or old.n_below > s.n_below or old.n_above > s.n_above:
        return False
    same = old.model_copy(update={"n_below": s.n_below, "n_above": s.n_above})
    return states_key(atoms, same) == states_key(atoms, s)


def seed_search(smaller: GridStates, ref: float, n_above: int) -> "SearchState":
    """The search state that extends converged states ``smaller`` (a run with fewer states per side):
    they are found and deflated, and they cover their own energy range (Hartree) but for the
    degenerate partners of its two ends, so the next centre is the open end on the side that lacks
    states."""
    from qdlab.electronic.pseudopotential.partial import SearchState

    e = smaller.states.energies_eV / HARTREE_EV
    vecs = smaller.psi.reshape(len(e), -1) * np.sqrt(smaller.dV)
    covered = [float(e.min()) + COVER_MARGIN_HA, float(e.max()) - COVER_MARGIN_HA]
    centre = covered[1] if int((e >= ref).sum()) < n_above else covered[0]
    return SearchState(0, centre, covered, e.tolist(), list(vecs))


def kinetic_preconditioner(H, shift_Ha: float = 1.0):
    """Approximate ((H − ε)²)⁻¹ by 1/(T_G + shift)² in G space (grid mode)."""
    import scipy.fft as sfft

    inv = 1.0 / (H.kinetic + shift_Ha) ** 2
    shape = H.fft_shape

    def apply(X):
        nv = X.shape[1]
        g = X.T.reshape((2 * nv,) + shape)
        g = sfft.ifftn(sfft.fftn(g, axes=(1, 2, 3)) * inv[None], axes=(1, 2, 3))
        return g.reshape(nv, -1).T

    return apply


#: Distance (Hartree) by which a solver call's covered interval stops short of its farthest converged
#: state: partners degenerate with that state (Kramers pairs, cubic multiplets) may not be among the states
#: returned, so the next centre starts just inside and finds them.
COVER_MARGIN_HA = 1e-4
#: A call at an edge of the covered interval stops once the states still missing on its side, plus this
#: many (a Kramers pair), are converged nearest its centre, instead of converging its whole block. The rest
#: of the block stays in the search space and speeds those up. Unconverged pairs bound the coverage, so
#: nothing is skipped. Measured: the n = 2 CsPbI3 cube at 1.5 Bohr extended from 8 + 8 to 24 + 24 states
#: (blocks of 24) gave the same 48 energies to 1e-6 eV with 17,602 H·X instead of 19,343. On the 7³ test
#: grid, 12 searches gave the same states to 1e-13 Ha with equal or fewer H·X (up to −4 %). None: off.
EARLY_MARGIN: int | None = 2


def _accept_converged(res, tol: float, found_e: list, found_v: list) -> np.ndarray:
    """Append the pairs of ``res`` with residual < ``tol`` that are not already found; returns the mask
    of converged pairs (unconverged ones never enter the result or the coverage)."""
    ok = np.asarray(res.residuals) < tol
    for val, vec in zip(res.values[ok], res.vectors.T[ok]):
        if not any(abs(val - f) < 1e-7 and abs(np.vdot(v, vec)) > 0.5 for f, v in zip(found_e, found_v)):
            found_e.append(val)
            found_v.append(vec)
    return ok


def extend_coverage(covered: list[float], centre: float, values: np.ndarray, ok: np.ndarray) -> list[float]:
    """The interval (Hartree) in which every state is known after a solver call around ``centre`` that
    returned ``values``, of which the mask ``ok`` converged (:func:`_accept_converged`'s).

    The call returns the states nearest its centre, so on each side everything up to the farthest
    converged pair is found, but not beyond the nearest unconverged pair on that side (a state lies
    there that is not known yet). The boundary stays open by ``COVER_MARGIN_HA``: degenerate partners of
    the state at the edge may be missing."""
    v = np.asarray(values)
    if not ok.any():
        return list(covered)
    far = float(np.abs(v[ok] - centre).max())

    def reach(side: np.ndarray) -> float:
        bad = np.abs(v[side & ~ok] - centre)
        return max(min(far, float(bad.min()) if bad.size else far) - COVER_MARGIN_HA, 0.0)

    return [min(covered[0], centre - reach(v < centre)), max(covered[1], centre + reach(v >= centre))]


def _inside(found_e: list[float], covered: list[float], ref: float) -> tuple[np.ndarray, np.ndarray]:
    """The found energies below and above ``ref`` inside the covered interval (where none is missing)."""
    e = np.asarray(found_e, float)
    return (e[(e < ref) & (e >= covered[0] - COVER_MARGIN_HA)],
            e[(e >= ref) & (e <= covered[1] + COVER_MARGIN_HA)])


def _out_of_calls(partial, nxt, counts: tuple[int, int, int, int], ref: float, tol: float, res) -> None:
    """The search is out of solver calls: saves the next call's start (a rerun with more calls continues
    there, nothing redone) and raises the one-line error naming what is missing."""
    if partial is not None:
        partial.start_call(nxt, write=True)
    last = f" (last residual {res.residuals.max():.1e} Ha)" if res is not None else ""
    raise QdlabError(f"states near the gap did not converge: {counts[0]} of {counts[1]} below and {counts[2]} of "
                     f"{counts[3]} above {ref * HARTREE_EV:.2f} eV to {tol:g} Ha after {nxt.attempt} solver "
                     f"calls{last}; rerun with a larger max_calls (--max-calls) to continue from the checkpoint")


def gap_states(H, ref: float, n_below: int, n_above: int, s: StatesSettings, progress=None, apply=None,
               precond=None, partial: "PartialWriter | None" = None, resume: "SearchState | None" = None,
               device=None):
    """Eigenpairs on both sides of ``ref`` (Hartree) by a folded-spectrum solver (block Davidson or
    LOBPCG, ``s.solver``) around moving centres.

    The first centre is ``ref``. A run returns the states nearest its centre, so every state within
    the largest distance returned is found: while one side lacks states the next centre is the edge of
    that covered interval on the missing side (no gap left between runs), and the search is kept
    orthogonal to the states found (deflation: a warm start from them would be declared converged at
    once without proving they are the nearest); the union of the converged pairs is kept (pairs above the
    tolerance are dropped, and a one-line error says how many are missing when the calls run out). An
    unconverged pair bounds the covered interval on its side (:func:`extend_coverage`), and only states
    inside it count, so a converged state beyond it never stands in for the one not yet found. Each call asks
    for ``s.block`` states (all wanted when None), so the solver's memory is bounded by the block while
    more centres cover the rest.
    ``partial`` saves the search at each call's start and the Davidson state every ``s.checkpoint_s``;
    ``resume`` (its saved state) continues a killed search where it stopped, with the same arithmetic.
    ``device``: a torch device for block Davidson's tall-block algebra (``apply``, ``precond`` then take
    tensors there, as :class:`.TorchApply`'s do); None: numpy. Found states and checkpoints stay numpy.
    Returns (energies, vectors (2n, k), EigenResult of those states: their residuals ‖Hx − εx‖, the last
    call's iteration and H·X counts), n_below highest below and n_above lowest above ``ref``.
    """
    from qdlab.electronic.eigensolvers import EigenResult, folded_davidson, folded_lobpcg
    from qdlab.electronic.pseudopotential.partial import SearchState

    solver = {"davidson": folded_davidson, "lobpcg": folded_lobpcg}[s.solver]
    pre = precond or kinetic_preconditioner(H, s.precond_shift_Ha)
    apply = apply or H.apply
    want = n_below + n_above
    per = states_per_call(want, s.block)
    st = resume or SearchState(0, ref, [ref, ref])
    centre, found_e, found_v, covered, inner, res = st.centre, st.found_e, st.found_v, st.covered, st.inner, None
    attempt, limit = st.attempt, s.max_calls or 4 + 2 * -(-want // per)
    while True:
        below, above = _inside(found_e, covered, ref)
        if len(below) >= n_below and len(above) >= n_above:
            break
        if attempt >= limit:
            _out_of_calls(partial, SearchState(attempt, centre, list(covered), found_e, found_v),
                          (len(below), n_below, len(above), n_above), ref, s.tol_Ha, res)
        known = np.array(found_v).T if found_v else None
        extra = {}
        if partial is not None:
            partial.start_call(SearchState(attempt, centre, list(covered), found_e, found_v), write=inner is None)
            if s.solver == "davidson":
                extra = {"resume": inner, "snapshot": partial.snapshot}
        if device is not None and s.solver == "davidson":
            extra["device"] = device
        if EARLY_MARGIN is not None and s.solver == "davidson" and centre != ref:
            extra["n_enough"] = min(per, (n_above - len(above) if centre > ref else n_below - len(below)) + EARLY_MARGIN)
        res = solver(apply, H.dim, per, centre, precond=pre, nvec=per + s.extra, tol=s.tol_Ha,
                     maxiter=s.maxiter * 10, seed=s.seed + attempt, deflate=known, **extra)
        inner = None
        if progress is not None:
            progress(attempt + 1, float(res.residuals.max()))
        ok = _accept_converged(res, s.tol_Ha, found_e, found_v)
        covered = extend_coverage(covered, centre, res.values, ok)
        centre = covered[1] if len(_inside(found_e, covered, ref)[1]) < n_above else covered[0]
        attempt += 1
    U, sv, _ = np.linalg.svd(np.array(found_v).T, full_matrices=False)
    Q = U[:, sv > 1e-3 * sv[0]]  # the union of the runs' pairs, re-diagonalised (Rayleigh–Ritz)
    HQ = apply(Q)
    theta, W = np.linalg.eigh(0.5 * (Q.conj().T @ HQ + (Q.conj().T @ HQ).conj().T))
    lo = np.flatnonzero(theta < ref)[-n_below:]
    hi = np.flatnonzero(theta >= ref)[:n_above]
    keep = np.concatenate([lo, hi])
    X = Q @ W[:, keep]
    norms = np.linalg.norm(HQ @ W[:, keep] - X * theta[keep], axis=0)
    # the states returned, with their own residuals; every one is a converged pair of some call (the
    # calls' unconverged pairs never enter), so the search converged; counts are the last call's
    final = EigenResult(values=theta[keep], vectors=X, residuals=norms, iterations=res.iterations if res else 0,
                        n_apply=res.n_apply if res else 0, converged=True, info=res.info if res else {})
    return theta[keep], X, final


def atom_weights(psi: np.ndarray, cell_B: np.ndarray, frac: np.ndarray, dV: float) -> np.ndarray:
    """Weight of each state on each atom: density summed over the grid points nearest that atom."""
    from scipy.spatial import cKDTree

    shape = psi.shape[2:]
    m = np.stack(np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij"), -1).reshape(-1, 3)
    owner = cKDTree(frac @ cell_B).query(m @ cell_B)[1]
    dens = (np.abs(psi) ** 2).sum(1).reshape(len(psi), -1) * dV
    w = np.stack([np.bincount(owner, weights=d, minlength=len(frac)) for d in dens])
    return w / w.sum(1, keepdims=True)


def save_states(gs: GridStates, path: str | Path) -> Path:
    """Atomic npz checkpoint of converged states (energies eV, spinors, box)."""
    st = gs.states
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, energies_eV=st.energies_eV, occupied=st.occupied, atom_weights=st.atom_weights,
                     psi=gs.psi, cell_B=gs.cell_B, dV=gs.dV, info=json.dumps(st.info, default=str))
    return Path(path)


def load_states(path: str | Path) -> GridStates | None:
    """States saved by :func:`save_states` (None for an unreadable file)."""
    try:
        with np.load(path) as z:
            st = BandEdgeStates(z["energies_eV"], z["occupied"], z["atom_weights"], "pseudopotential",
                                json.loads(str(z["info"])))
            return GridStates(st, z["psi"], z["cell_B"], float(z["dV"]))
    except (OSError, ValueError, KeyError):
        return None


class PseudopotentialEngine:
    """Band-edge engine (``BandEdgeEngine``) of the semi-empirical pseudopotential Hamiltonian."""

    name = "pseudopotential"

    def __init__(self, settings: StatesSettings | None = None):
        self.settings = settings or StatesSettings()

    def states(self, atoms: Atoms, n_states: int = 8) -> BandEdgeStates:
        s = self.settings.model_copy(update={"n_below": n_states, "n_above": n_states})
        return nanocrystal_states(atoms, s).states
