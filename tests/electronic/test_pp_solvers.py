"""Eigensolvers against dense diagonalisation; grid vs plane-wave Hamiltonians of one cell."""

import numpy as np
import pytest

from qdlab.electronic.eigensolvers import filtered_subspace, folded_davidson, folded_lobpcg
from qdlab.electronic.pseudopotential.bulk import cubic_cell
from qdlab.electronic.pseudopotential.engine import kinetic_preconditioner
from qdlab.electronic.pseudopotential.hamiltonian import grid_hamiltonian, planewave_hamiltonian
from qdlab.electronic.pseudopotential.params import BOHR_A


def _cell():
    at = cubic_cell()
    return np.asarray(at.cell) / BOHR_A, at.get_scaled_positions(), at.get_chemical_symbols()


@pytest.fixture(scope="module")
def small_grid():
    cell, frac, sym = _cell()
    H = grid_hamiltonian(cell, frac, sym, np.zeros(5), shape=(7, 7, 7), r_cut=5.0, chunk=64)
    return H, np.linalg.eigvalsh(H.dense())


def test_dense_matches_apply(small_grid):
    H, _ = small_grid
    X = np.random.default_rng(0).standard_normal((H.dim, 3)) + 0j
    assert np.abs(H.dense() @ X - H.apply(X)).max() < 1e-10


def test_chebyshev_lowest_matches_dense(small_grid):
    """Lowest 28 spinor states (through the gap: 26 occupied) to 1e-6 Hartree."""
    H, w = small_grid
    res = filtered_subspace(H.apply, H.dim, 28, tol=1e-7, degree=20, nvec=40)
    assert res.converged
    assert np.abs(res.values - w[:28]).max() < 1e-6


def test_folded_davidson_matches_dense(small_grid):
    """Interior states nearest the mid-gap of the grid Hamiltonian by folded block Davidson (the
    default nanocrystal solver), 1e-6 Hartree from dense diagonalisation; residuals below tol."""
    H, w = small_grid
    ref = 0.5 * (w[25] + w[26])
    near = np.sort(w[np.argsort(np.abs(w - ref))[:6]])
    res = folded_davidson(H.apply, H.dim, 6, ref, precond=kinetic_preconditioner(H, 3.0), tol=1e-7,
                          maxiter=1500)
    assert res.converged and res.residuals.max() < 1e-7
    assert np.abs(res.values - near).max() < 1e-6


def test_folded_davidson_stops_when_the_nearest_are_enough(small_grid):
    """``n_enough = 2`` of a 6-state block: the run stops at the first iteration where the 2 states
    nearest the centre have converged (one iteration earlier they had not), and those 2 are the dense
    eigenvalues nearest the centre (1e-6 Ha), residuals below tol. At 0.6 of the gap (the conduction
    Kramers pair nearest) that is far fewer H·X than converging all 6 (measured 1847 against 2339); at 0.3
    both took 682 on one machine and fewer on another, so the saving is asserted where its margin is large."""
    H, w = small_grid
    ref = w[25] + 0.6 * (w[26] - w[25])
    near = np.sort(w[np.argsort(np.abs(w - ref))[:2]])
    kw = dict(precond=kinetic_preconditioner(H, 3.0), tol=1e-7, maxiter=1500)
    full = folded_davidson(H.apply, H.dim, 6, ref, **kw)
    part = folded_davidson(H.apply, H.dim, 6, ref, n_enough=2, **kw)
    order = np.argsort(np.abs(part.values - ref))[:2]
    assert full.converged and part.n_apply < 0.9 * full.n_apply
    assert part.residuals[order].max() < 1e-7
    assert np.abs(np.sort(part.values[order]) - near).max() < 1e-6
    before = folded_davidson(H.apply, H.dim, 6, ref, **(kw | {"maxiter": part.iterations - 1}))
    assert before.residuals[np.argsort(np.abs(before.values - ref))[:2]].max() >= 1e-7


@pytest.mark.parametrize("solver,block", [("davidson", None), ("lobpcg", None), ("davidson", 3)])
def test_gap_states_moves_its_centre_without_skipping_states(small_grid, solver, block):
    """A reference just above the valence band edge: the states nearest to it are mostly valence, so
    the conduction side needs more centres. The result is exactly the 2 highest states below and the
    8 lowest above the reference of the dense spectrum (1e-6 Ha): no state between two runs missed —
    also when each solver call asks for only 3 states (``block``: bounded memory, more centres)."""
    from qdlab.electronic.pseudopotential.engine import StatesSettings, gap_states

    H, w = small_grid
    ref = w[25] + 0.05 * (w[26] - w[25])
    s = StatesSettings(tol_Ha=1e-7, extra=4, solver=solver, maxiter=150, block=block)
    e, vecs, res = gap_states(H, ref, 2, 8, s, apply=H.apply, precond=kinetic_preconditioner(H, 3.0))
    exact = np.concatenate([w[w < ref][-2:], w[w >= ref][:8]])
    assert np.abs(np.sort(e) - exact).max() < 1e-6
    assert np.abs(H.apply(vecs) - vecs * e).max() < 1e-5
    # the residuals reported are those of the states returned (not of the last call's far pairs)
    np.testing.assert_allclose(res.residuals, np.linalg.norm(H.apply(vecs) - vecs * e, axis=0), atol=1e-12)
    assert res.converged and res.residuals.max() < 1e-6


def test_gap_states_never_returns_unconverged_pairs(small_grid):
    """Pairs above the tolerance are not results: a budget too small to converge (10 iterations, tol
    1e-12 Ha) ends in a one-line error naming what is missing (the old code returned the unconverged
    Ritz values — with block 1 on PbI6 a 'state' at −8.146 eV where dense diagonalisation has none)."""
    from qdlab.electronic.pseudopotential.engine import StatesSettings, gap_states
    from qdlab.errors import QdlabError

    H, w = small_grid
    ref = 0.5 * (w[25] + w[26])
    s = StatesSettings(tol_Ha=1e-12, extra=4, maxiter=1)
    with pytest.raises(QdlabError, match=r"did not converge: \d of 2 below and \d of 2 above") as err:
        gap_states(H, ref, 2, 2, s, apply=H.apply, precond=kinetic_preconditioner(H, 3.0))
    assert "\n" not in str(err.value)


class _NearestSolver:
    """An exact stand-in for the folded solver on a diagonal H: the ``n_want`` eigenpairs nearest the
    centre that are not deflated, residual 0 — except the pairs listed in ``unconverged[call]``
    (eigenvalues), returned with residual 1 Ha as a solver at its iteration cap would."""

    def __init__(self, diag: np.ndarray, unconverged: dict[int, set]):
        self.diag, self.unconverged, self.calls = diag, unconverged, []

    def __call__(self, apply, dim, n_want, center, *, deflate=None, **_):
        from qdlab.electronic.eigensolvers import EigenResult

        known = set() if deflate is None else set(np.argmax(np.abs(deflate), axis=0).tolist())
        free = [i for i in np.argsort(np.abs(self.diag - center), kind="stable") if i not in known][:n_want]
        bad = self.unconverged.get(len(self.calls), set())
        self.calls.append(float(center))
        res = np.array([1.0 if self.diag[i] in bad else 0.0 for i in free])
        return EigenResult(values=self.diag[free], vectors=np.eye(dim, dtype=complex)[:, free], residuals=res,
                           iterations=1, n_apply=len(free), converged=bool(res.max() == 0))


def test_an_unconverged_state_is_not_skipped_by_converged_ones_beyond_it(monkeypatch):
    """The first call around mid-gap leaves the highest valence state (−1 Ha) unconverged and converges
    one below it (−2 Ha); beyond lies a dense band. The old coverage took the farthest converged pair as
    the edge, searched on from −2 Ha, filled its 3 valence states from the dense band and returned
    them without the HOMO (−2, −2.1, −2.2). The covered interval now stops at the unconverged pair, so
    the next call finds it and the result is the exact 3 highest states below the reference."""
    import qdlab.electronic.eigensolvers as eig
    from qdlab.electronic.pseudopotential.engine import StatesSettings, gap_states

    diag = np.array([-2.4, -2.3, -2.2, -2.1, -2.0, -1.0, 1.0, 2.0, 3.0])
    solver = _NearestSolver(diag, {0: {-1.0}})
    monkeypatch.setattr(eig, "folded_davidson", solver)
    H = type("DiagonalH", (), {"dim": len(diag)})()
    s = StatesSettings(block=4, extra=0, tol_Ha=1e-6)
    e, vecs, _ = gap_states(H, 0.0, 3, 1, s, apply=lambda X: diag[:, None] * X, precond=lambda R: R)
    assert np.allclose(np.sort(e), [-2.1, -2.0, -1.0, 1.0], atol=1e-12)
    assert solver.calls[1] == pytest.approx(-1.0, abs=1e-3)  # the second centre is the unconverged state


def test_folded_davidson_needs_fewer_products_than_lobpcg():
    """A model with the nanocrystal's shape (kinetic-like diagonal 0–60 Ha + O(1) Hermitian coupling,
    8 states nearest an interior energy, kinetic preconditioner): both solvers give the dense
    eigenvalues to 1e-9 Ha; Davidson uses fewer H·X (measured 4.6k vs 9.8k for n = 3000; here n = 1200)."""
    rng = np.random.default_rng(1)
    n = 1200
    t = np.sort(rng.uniform(0, 60, n))
    C = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    Hm = np.diag(t) + 0.5 * (C + C.conj().T) / np.sqrt(n) - 0.5 * np.eye(n)
    d = np.linalg.eigvalsh(Hm)
    c = float(0.5 * (d[20] + d[21]))
    exact = np.sort(d[np.argsort(np.abs(d - c))[:8]])
    counts = {}
    for name, solver in (("davidson", folded_davidson), ("lobpcg", folded_lobpcg)):
        r = solver(lambda X: Hm @ X, n, 8, c, precond=lambda X: X / (t[:, None] + 3.0) ** 2, tol=1e-8,
                   maxiter=2000)
        assert r.converged and np.abs(np.sort(r.values) - exact).max() < 1e-9, name
        counts[name] = r.n_apply
    assert counts["davidson"] < counts["lobpcg"], counts


@pytest.mark.slow
def test_window_filter_and_folded_lobpcg_match_dense(small_grid):
    """Interior states nearest the mid-gap by the Gaussian filter and by folded LOBPCG, 1e-6 Ha."""
    H, w = small_grid
    ref = 0.5 * (w[25] + w[26])
    near = np.sort(w[np.argsort(np.abs(w - ref))[:6]])
    res = filtered_subspace(H.apply, H.dim, 6, center=ref, width=0.1, nvec=12, tol=1e-7, maxiter=300)
    assert np.abs(res.values - near).max() < 1e-6
    fold = folded_lobpcg(H.apply, H.dim, 6, ref, precond=kinetic_preconditioner(H), nvec=10, tol=1e-7,
                         maxiter=1500)
    assert np.abs(fold.values - near).max() < 1e-6


@pytest.mark.slow
def test_grid_converges_to_planewave_with_spacing():
    """Γ-point states of the cubic cell (lowest 28 spinors, through the gap) on grids 10³, 12³, 14³
    (h = 1.19, 0.99, 0.85 Bohr) vs a plane-wave basis converged to ~1e-3 Ha (E_cut 7 Ha; 5 → 7 Ha moves
    the states ≤ 5e-3 Ha). Measured max errors 0.0120, 0.0059, 0.0039 Ha: the error must shrink."""
    from scipy.linalg import eigh

    cell, frac, sym = _cell()
    Hpw = planewave_hamiltonian(cell, frac, sym, np.zeros(5), np.zeros(3), ecut_Ha=7.0)
    ref = eigh(Hpw.dense(), subset_by_index=[0, 27], eigvals_only=True)
    errs = []
    for n in (10, 12, 14):
        H = grid_hamiltonian(cell, frac, sym, np.zeros(5), shape=(n, n, n), chunk=64)
        got = filtered_subspace(H.apply, H.dim, 28, tol=1e-7, degree=20, nvec=40).values
        errs.append(np.abs(got - ref).max())
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.5 * errs[0] and errs[2] < 0.01


def test_torch_apply_matches_numpy(small_grid):
    """The fast path (per-atom projector blocks, torch FFT; here on the CPU) gives the reference
    numpy/CSR H·X to 1e-12, in blocks larger than its chunk too; single precision to 1e-5 relative;
    CUDA absent → one-line error."""
    import torch

    from qdlab.electronic.pseudopotential.torch_apply import TorchApply
    from qdlab.errors import QdlabError

    H, _ = small_grid
    X = np.random.default_rng(2).standard_normal((H.dim, 5)) * (1 + 1j)
    ref = H.apply(X)
    fast = TorchApply(H, "cpu", chunk=2)
    assert np.abs(fast(X) - ref).max() < 1e-12
    assert np.abs(fast(X[:, 0]) - ref[:, 0]).max() < 1e-12 and fast.n_apply == 6
    assert np.abs(TorchApply(H, "cpu", "single")(X) - ref).max() < 1e-5 * np.abs(ref).max()
    with pytest.raises(QdlabError, match="unknown device"):
        TorchApply(H, "gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(QdlabError, match="no CUDA device"):
            TorchApply(H, "cuda")


def test_fast_apply_eigenvalues_equal_dense_path():
    """A nanocrystal-like box (PbI6 in vacuum, 9³ grid, projectors overlapping periodic images):
    the 24 lowest eigenvalues with the fast H·X equal the dense reference matrix's to 1e-10 Ha."""
    from qdlab.electronic.pseudopotential.torch_apply import TorchApply

    d = 3.15 / BOHR_A
    pos = np.array([[0, 0, 0], [d, 0, 0], [-d, 0, 0], [0, d, 0], [0, -d, 0], [0, 0, d], [0, 0, -d]])
    cell = np.eye(3) * 12.0
    frac = pos / 12.0 + 0.5
    H = grid_hamiltonian(cell, frac, ["Pb"] + ["I"] * 6, np.full(7, 0.3), shape=(9, 9, 9), r_cut=6.0, chunk=256)
    w = np.linalg.eigvalsh(H.dense())
    fast = TorchApply(H, "cpu", chunk=64)
    got = filtered_subspace(fast, H.dim, 24, tol=1e-9, degree=20, nvec=36, maxiter=400)
    assert got.converged
    assert np.abs(got.values - w[:24]).max() < 1e-10


def _peak_rss_above(fn):
    """(result, peak resident memory above the level before the call, bytes), sampled every 1 ms."""
    import os
    import threading
    import time

    page = os.sysconf("SC_PAGE_SIZE")

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    base, peak, running = rss(), [0], [True]

    def watch():
        while running[0]:
            peak[0] = max(peak[0], rss())
            time.sleep(0.001)

    th = threading.Thread(target=watch)
    th.start()
    try:
        out = fn()
    finally:
        running[0] = False
        th.join()
    return out, peak[0] - base


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_davidson_memory_stays_within_the_estimate():
    """The refusal's memory estimate is honest: resident memory of folded Davidson on the n = 2 cube
    (1.5 Bohr, 27³, 24-vector blocks of 15 MB, the fast H·X) stays below WORK_BLOCKS blocks above the
    set-up. Measured 1.0 Bohr: 19–20.5 blocks (the pre-buffer code: 29, over its estimate of 13)."""
    from qdlab.build.recipes import PerovskiteRecipe, build_perovskite
    from qdlab.electronic.pseudopotential.engine import WORK_BLOCKS, StatesSettings, box, weights
    from qdlab.electronic.pseudopotential.params import HARTREE_EV
    from qdlab.electronic.pseudopotential.torch_apply import TorchApply

    atoms = build_perovskite(PerovskiteRecipe(composition="CsPbI3", size="2", neutrality="surface-charge"))
    s = StatesSettings(spacing_B=1.5)
    cell, frac = box(atoms, s.vacuum_B)
    H = grid_hamiltonian(cell, frac, atoms.get_chemical_symbols(), weights(atoms, s), 1.5, r_cut=s.r_cut_B)
    A = TorchApply(H, "cpu")
    pre = A.preconditioner(s.precond_shift_Ha)
    nvec = 24
    pre(A(np.ones((H.dim, nvec), complex)))  # set-up allocations of the operator itself
    run = lambda: folded_davidson(A, H.dim, 16, s.ref_eV / HARTREE_EV, precond=pre, nvec=nvec, tol=1e-9,  # noqa: E731
                                  maxiter=20)
    res, peak = _peak_rss_above(run)
    blocks = peak / (H.dim * nvec * 16)
    assert res.iterations == 20 and res.info["max_dim"] == 5 * nvec
    assert blocks < WORK_BLOCKS["davidson"], f"{blocks:.1f} blocks"
