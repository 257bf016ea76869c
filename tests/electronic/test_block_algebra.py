"""Block Davidson with its tall blocks as torch tensors (the GPU path, here on CPU tensors) against the
numpy path and dense diagonalisation; snapshots of one path resume on the other; CUDA checks marked gpu."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

from qdlab.electronic.block_algebra import NumpyBlocks, TorchBlocks, _orthonormalise, block_backend
from qdlab.electronic.eigensolvers import folded_davidson
from qdlab.electronic.pseudopotential.bulk import cubic_cell
from qdlab.electronic.pseudopotential.hamiltonian import grid_hamiltonian
from qdlab.electronic.pseudopotential.params import BOHR_A
from qdlab.electronic.pseudopotential.torch_apply import TorchApply

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
D = 3.15
PBI6 = Atoms("PbI6", positions=[[0, 0, 0], [D, 0, 0], [-D, 0, 0], [0, D, 0], [0, -D, 0], [0, 0, D], [0, 0, -D]])


@pytest.fixture(scope="module")
def small_grid():
    """The 7³ cubic CsPbI3 cell of test_pp_solvers / test_pp_resume, its dense spectrum and eigenvectors."""
    at = cubic_cell()
    H = grid_hamiltonian(np.asarray(at.cell) / BOHR_A, at.get_scaled_positions(), at.get_chemical_symbols(),
                         np.zeros(5), shape=(7, 7, 7), r_cut=5.0, chunk=64)
    w, U = np.linalg.eigh(H.dense())
    return H, w, U


def _nearest(w: np.ndarray, ref: float, n: int) -> np.ndarray:
    return np.sort(w[np.argsort(np.abs(w - ref))[:n]])


def test_backend_choice_and_tensor_operator(small_grid):
    """numpy for None/"numpy", torch otherwise; TorchApply and its preconditioner take a tensor and return a
    tensor on the device (chunked too, single precision cast back) equal to their numpy results."""
    H, _, _ = small_grid
    assert isinstance(block_backend(None), NumpyBlocks) and isinstance(block_backend("numpy"), NumpyBlocks)
    assert isinstance(block_backend("cpu"), TorchBlocks)
    X = np.random.default_rng(1).standard_normal((H.dim, 5)) * (1 - 2j)
    for A in (TorchApply(H, "cpu"), TorchApply(H, "cpu", chunk=2)):
        got = A(torch.as_tensor(X))
        assert isinstance(got, torch.Tensor) and got.dtype == torch.complex128
        assert np.abs(got.numpy() - A(X)).max() < 1e-13 * np.abs(A(X)).max()
        pre = A.preconditioner(3.0)
        np.testing.assert_allclose(pre(torch.as_tensor(X)).numpy(), pre(X), rtol=0, atol=1e-14)
    assert A.n_apply == 15  # 5 columns, three times (tensor, numpy, numpy)
    single = TorchApply(H, "cpu", "single")(torch.as_tensor(X))
    assert single.dtype == torch.complex128 and np.abs(single.numpy() - H.apply(X)).max() < 1e-5 * np.abs(X).max()


def test_orthonormalise_agrees_on_both_backends():
    """Gram–Schmidt + SVQB on tensors: orthonormal, orthogonal to the bases, the same span and the same
    dependent column dropped as on numpy."""
    rng = np.random.default_rng(3)
    dim = 400
    B = np.linalg.qr(rng.standard_normal((dim, 6)) + 1j * rng.standard_normal((dim, 6)))[0]
    T = rng.standard_normal((dim, 5)) + 1j * rng.standard_normal((dim, 5))
    T[:, 4] = T[:, 0] - 2j * T[:, 2] + B @ rng.standard_normal(6)  # dependent on the others and the basis
    a = _orthonormalise(T, B, ops=NumpyBlocks())
    ops = TorchBlocks("cpu")
    b = _orthonormalise(ops.block(T), ops.block(B), ops=ops)
    assert isinstance(b, torch.Tensor) and a.shape == b.shape == (dim, 4)
    b = b.numpy()
    assert np.abs(b.conj().T @ b - np.eye(4)).max() < 1e-13 and np.abs(B.conj().T @ b).max() < 1e-13
    assert np.abs(a @ (a.conj().T @ b) - b).max() < 1e-12  # same span


def test_torch_blocks_match_numpy_and_dense(small_grid):
    """Folded Davidson with tensor blocks (CPU tensors here) and with numpy blocks: the 6 states nearest the
    mid-gap equal the dense eigenvalues and each other to 1e-10 Ha, residuals below tol, the result numpy;
    with the two nearest deflated (given as numpy) both return the dense next ones."""
    H, w, U = small_grid
    ref = 0.5 * (w[25] + w[26])
    A = TorchApply(H, "cpu")
    kw = dict(precond=A.preconditioner(3.0), tol=1e-9, maxiter=1500)
    ref_np = folded_davidson(A, H.dim, 6, ref, **kw)
    got = folded_davidson(A, H.dim, 6, ref, device="cpu", **kw)
    assert got.converged and got.residuals.max() < 1e-9 and got.info["blocks"] == "torch"
    assert ref_np.info["blocks"] == "numpy"
    assert isinstance(got.vectors, np.ndarray) and got.vectors.shape == (H.dim, 6)
    assert np.abs(got.values - _nearest(w, ref, 6)).max() < 1e-10
    assert np.abs(got.values - ref_np.values).max() < 1e-10
    near = np.argsort(np.abs(w - ref))
    known = U[:, np.sort(near[:2])]
    defl = folded_davidson(A, H.dim, 4, ref, deflate=known, device="cpu", **kw)
    assert np.abs(defl.values - np.sort(w[near[2:6]])).max() < 1e-10
    assert np.abs(known.conj().T @ defl.vectors).max() < 1e-8


def _copy(snap) -> dict:
    return {k: np.array(v, copy=True) for k, v in snap.items()}


def _snapshotted_run(small_grid, device: str):
    """4 states at mid-gap with H·X, preconditioner and block algebra on ``device``, every snapshot kept:
    (operator, reference energy, solver keywords, snapshots, result)."""
    H, w, _ = small_grid
    ref = 0.5 * (w[25] + w[26])
    A = TorchApply(H, device)
    kw = dict(precond=A.preconditioner(3.0), tol=1e-10, maxiter=1500, nvec=6, max_dim=18)
    snaps: list[dict] = []
    res = folded_davidson(A, H.dim, 4, ref, device=device, snapshot=lambda s: snaps.append(_copy(s)), **kw)
    return A, ref, kw, snaps, res


def test_torch_snapshots_are_numpy_and_resume_on_either_path(small_grid, tmp_path):
    """A tensor-path run's snapshots hold numpy arrays; resumed from one (a run killed there) on the tensor
    path it gives the uninterrupted run's states (to round-off), and the same snapshot, written to the
    in-progress checkpoint and read back, resumes on the numpy path to the dense eigenvalues (1e-10 Ha)."""
    from qdlab.electronic.pseudopotential.partial import PartialWriter, load_partial

    H, w, _ = small_grid
    A, ref, kw, snaps, full = _snapshotted_run(small_grid, "cpu")
    assert full.converged and len(snaps) >= 4
    writer = PartialWriter(tmp_path / "x.partial.npz", "key", H.dim, 0.0)
    written = []
    folded_davidson(A, H.dim, 4, ref, device="cpu", **{**kw, "maxiter": 3},
                    snapshot=lambda s: written.append(isinstance(s["V"], np.ndarray)) or writer.snapshot(s))
    assert written and all(written)
    mid = snaps[len(snaps) // 2]
    again = folded_davidson(A, H.dim, 4, ref, device="cpu", resume=dict(mid), **kw)
    assert again.iterations == full.iterations and again.n_apply == full.n_apply
    assert np.abs(again.values - full.values).max() < 1e-12
    assert np.abs(np.abs(np.sum(again.vectors.conj() * full.vectors, 0)) - 1).max() < 1e-8
    inner = load_partial(writer.path, "key", H.dim).inner
    assert isinstance(inner["V"], np.ndarray) and int(inner["it"]) >= 1
    on_numpy = folded_davidson(A, H.dim, 4, ref, resume=inner, **kw)
    assert on_numpy.converged and np.abs(on_numpy.values - _nearest(w, ref, 4)).max() < 1e-10
    from_mid = folded_davidson(A, H.dim, 4, ref, resume=dict(mid), **kw)
    assert np.abs(from_mid.values - full.values).max() < 1e-10


def test_gap_states_on_torch_blocks_equal_the_numpy_search(small_grid):
    """The moving-centre search with tensor blocks (several centres, deflation, early stop) returns the
    numpy search's states: the dense eigenvalues, 2 below and 8 above the reference, to 1e-10 Ha."""
    from qdlab.electronic.pseudopotential.engine import StatesSettings, gap_states

    H, w, _ = small_grid
    ref = w[25] + 0.05 * (w[26] - w[25])
    s = StatesSettings(tol_Ha=1e-8, extra=4, maxiter=150, block=3)
    A = TorchApply(H, "cpu")
    pre = A.preconditioner(3.0)
    e0, _, _ = gap_states(H, ref, 2, 8, s, apply=A, precond=pre)
    e1, v1, res = gap_states(H, ref, 2, 8, s, apply=A, precond=pre, device="cpu")
    assert np.abs(e1 - w[24:34]).max() < 1e-10 and np.abs(e1 - e0).max() < 1e-10
    assert isinstance(v1, np.ndarray) and res.residuals.max() < 1e-7  # the union re-diagonalised


def test_states_route_the_blocks_to_the_torch_device(monkeypatch):
    """`nanocrystal_states` hands the solver its torch device when that device is TORCH_BLOCKS' kind ("cuda";
    here pointed at "cpu", so the GPU wiring runs on CPU tensors) and numpy otherwise; the energies agree
    (PbI6, 1.5 Bohr, 2 + 2 states) to 1e-9 eV."""
    import qdlab.electronic.eigensolvers as eig
    from qdlab.electronic.pseudopotential import engine

    seen, original = [], eig.folded_davidson

    def spy(*args, **kw):
        seen.append(str(kw.get("device")))
        return original(*args, **kw)

    monkeypatch.setattr(eig, "folded_davidson", spy)
    s = engine.StatesSettings(spacing_B=1.5, vacuum_B=3.0, n_below=2, n_above=2, tol_Ha=1e-8)
    default = engine.nanocrystal_states(PBI6, s)
    assert seen and set(seen) == {"None"}
    seen.clear()
    monkeypatch.setattr(engine, "TORCH_BLOCKS", "cpu")
    on_torch = engine.nanocrystal_states(PBI6, s)
    assert seen and set(seen) == {"cpu"}
    np.testing.assert_allclose(on_torch.states.energies_eV, default.states.energies_eV, atol=1e-9)


@pytest.mark.gpu
@cuda
def test_cuda_blocks_match_dense(small_grid):
    """On a GPU: H·X, preconditioner and the whole block algebra on CUDA give the dense eigenvalues to
    1e-10 Ha, and a CUDA snapshot resumes on the numpy path."""
    H, w, _ = small_grid
    A, ref, kw, snaps, got = _snapshotted_run(small_grid, "cuda")
    assert got.converged and np.abs(got.values - _nearest(w, ref, 4)).max() < 1e-10
    cpu = TorchApply(H, "cpu")
    kw["precond"] = cpu.preconditioner(3.0)
    again = folded_davidson(cpu, H.dim, 4, ref, resume=dict(snaps[len(snaps) // 2]), **kw)
    assert np.abs(again.values - got.values).max() < 1e-10


@pytest.mark.gpu
@cuda
def test_cuda_states_equal_the_numpy_reference():
    """`nanocrystal_states` with device="cuda" (H·X and the Davidson algebra on the GPU) against
    device="numpy" (PbI6, 1.5 Bohr, 2 + 2 states): the same energies to 1e-8 eV."""
    from qdlab.electronic.pseudopotential.engine import StatesSettings, nanocrystal_states

    s = StatesSettings(spacing_B=1.5, vacuum_B=3.0, n_below=2, n_above=2, tol_Ha=1e-8)
    gpu = nanocrystal_states(PBI6, s.model_copy(update={"device": "cuda"}))
    ref = nanocrystal_states(PBI6, s.model_copy(update={"device": "numpy"}))
    np.testing.assert_allclose(gpu.states.energies_eV, ref.states.energies_eV, atol=1e-8)
