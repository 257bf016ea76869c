"""Tall-block algebra of the iterative eigensolvers on numpy arrays or torch tensors (any device).

Block Davidson (:func:`.eigensolvers.folded_davidson`) works on tall blocks of shape (dim, k)
(the search space V, its image H·V, Ritz vectors, residuals, corrections, a deflation set) and small
projected matrices (k × k, k ≤ a few hundred). The small ones are always numpy on the host; the tall
ones live where the operator does, through one of two backends with the same few methods:

- :class:`NumpyBlocks`: numpy arrays (the reference; its arithmetic is the solver's historic one);
- :class:`TorchBlocks`: torch complex128 tensors on one device (CPU or CUDA), so that a GPU run keeps
  the whole block on the GPU and only the small matrices and the column norms cross to the host.

:func:`block_backend` picks one from a device name. The module-level helpers (:func:`_hdot`,
:func:`_column_norms`, :func:`_orthonormalise`) are the algorithms written once against a backend.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _hdot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Aᴴ·B for tall blocks without a conjugated copy of A (numpy's matmul cannot pass BLAS's 'C'
    flag, so A.conj().T @ B copies all of A): conj(Aᵀ·conj(B)); only B (the new columns) is copied."""
    return (A.T @ B.conj()).conj()


def _column_norms(R: np.ndarray) -> np.ndarray:
    """Euclidean norms of the columns of a complex block without a temporary of its size."""
    Rr = R.view(np.float64).reshape(R.shape[0], R.shape[1], 2)
    return np.sqrt(np.einsum("ijk,ijk->j", Rr, Rr))


class NumpyBlocks:
    """Tall blocks as complex numpy arrays on the host; small results returned as they are."""

    name = "numpy"

    def empty(self, dim: int, n: int) -> np.ndarray:
        return np.empty((dim, n), complex)

    def block(self, a) -> np.ndarray:
        """A host array as a tall block (complex, no copy when it is one already)."""
        return np.asarray(a, dtype=complex)

    def lift(self, a: np.ndarray) -> np.ndarray:
        """A small host matrix or vector where the blocks are (here: itself)."""
        return a

    def host(self, a) -> np.ndarray:
        """A block-side array as numpy on the host (here: itself)."""
        return a

    def cols(self, a: np.ndarray, idx) -> np.ndarray:
        """Columns ``idx`` (boolean mask or integer list, numpy) of a tall block."""
        return a[:, idx]

    hdot = staticmethod(_hdot)
    column_norms = staticmethod(_column_norms)

    def norms(self, a: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a, axis=0)

    def snapshot(self, state: dict) -> dict:
        return state


class _HostView(Mapping):
    """A solver snapshot whose tall blocks are copied to numpy only when read (a snapshot callback that
    does not write this time costs nothing on a GPU)."""

    def __init__(self, state: dict, host):
        self._state, self._host, self._done = state, host, {}

    def __getitem__(self, key):
        if key not in self._done:
            self._done[key] = self._host(self._state[key])
        return self._done[key]

    def __iter__(self):
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)


class TorchBlocks:
    """Tall blocks as complex128 torch tensors on ``device``; norms and small products come back as numpy."""

    name = "torch"

    def __init__(self, device):
        import torch

        self.torch, self.dev = torch, torch.device(device)

    def empty(self, dim: int, n: int):
        return self.torch.empty((dim, n), dtype=self.torch.complex128, device=self.dev)

    def block(self, a):
        return self.torch.as_tensor(a, dtype=self.torch.complex128, device=self.dev)

    def lift(self, a: np.ndarray):
        return self.torch.as_tensor(a, device=self.dev)

    def host(self, a) -> np.ndarray:
        return a.cpu().numpy() if isinstance(a, self.torch.Tensor) else a

    def cols(self, a, idx):
        idx = np.asarray(idx)
        if idx.dtype == bool and idx.all():
            return a
        return a[:, self.torch.as_tensor(idx if idx.dtype == bool else idx.astype(np.int64), device=self.dev)]

    def hdot(self, A, B):
        """Aᴴ·B (a conjugate-transposed view: BLAS/cuBLAS take the 'C' flag, no copy of A)."""
        return A.mH @ B

    def column_norms(self, R) -> np.ndarray:
        """Column norms via the real view (torch's complex vector_norm is ≈ 4× slower on the CPU)."""
        return self.torch.linalg.vector_norm(self.torch.view_as_real(R), dim=(0, 2)).cpu().numpy()

    norms = column_norms

    def snapshot(self, state: dict) -> Mapping:
        return _HostView(state, self.host)


def block_backend(device=None):
    """The backend of the tall blocks: numpy for None or "numpy", else torch tensors on ``device``."""
    if device is None or str(device) == "numpy":
        return NumpyBlocks()
    return TorchBlocks(device)


def _orthonormalise(T, *bases, ops=None):
    """Columns of T orthonormal to every (orthonormal) basis given and to each other.

    Block Gram–Schmidt against the bases (one at a time: no stacked copy), then SVQB
    (Stathopoulos–Wu: eigendecomposition of the column-scaled Gram matrix, one GEMM instead of a
    Householder QR of the tall block). A second pass runs unless the first lost little (every column
    kept ≥ 1/√2 of its norm, the DGKS criterion, and the scaled Gram matrix is well conditioned,
    smallest eigenvalue > 1e-2). Columns left with < 1e-10 of their norm or spanning less than 1e-14
    of the scaled Gram spectrum are dropped. ``ops``: the blocks' backend (numpy when None); the
    Gram matrix and its eigendecomposition are numpy on the host.
    """
    ops = ops or NumpyBlocks()
    T = ops.block(T)
    for _ in range(2):
        before = ops.norms(T)
        for V in bases:
            if V is not None and V.shape[1] and T.shape[1]:
                T = T - V @ ops.hdot(V, T)
        if not T.shape[1]:
            return T
        G = ops.host(ops.hdot(T, T))
        d = np.sqrt(np.abs(np.real(np.diag(G))))
        ok = d > 1e-10 * np.maximum(before, 1e-300)
        T, G, d, before = ops.cols(T, ok), G[np.ix_(ok, ok)], d[ok], before[ok]
        if not T.shape[1]:
            return T
        w, U = np.linalg.eigh(G / np.outer(d, d))
        keep = w > 1e-14 * w.max()
        T = T @ ops.lift(U[:, keep] / (d[:, None] * np.sqrt(w[keep])))
        if keep.all() and w.min() > 1e-2 and (d >= before / np.sqrt(2)).all():
            break
    return T
