"""The grid Hamiltonian's H·X with torch (FFT, sparse projectors) on any torch device (e.g. CUDA).

Used when a nanocrystal run asks for ``device="cuda"``; never required. The solver keeps its numpy
arrays; each block is moved to the device, multiplied there, and returned as numpy (complex128).
"""

from __future__ import annotations

import numpy as np

from qdlab.electronic.pseudopotential.hamiltonian import _LS, SpinorHamiltonian
from qdlab.errors import QdlabError


class TorchApply:
    """Callable X ↦ H·X of a grid-mode :class:`SpinorHamiltonian` evaluated with torch on ``device``."""

    def __init__(self, H: SpinorHamiltonian, device: str = "cuda"):
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - torch is a project dependency
            raise QdlabError("the torch path needs PyTorch installed") from exc
        if H.mode != "grid":
            raise QdlabError("the torch path implements the grid (nanocrystal) mode only")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise QdlabError(f"device {device!r} requested but no CUDA device is available; use --device cpu")
        self.torch, self.dev, self.H = torch, torch.device(device), H
        t = torch.as_tensor
        self.kin = t(H.kinetic, dtype=torch.float64, device=self.dev)
        self.v = t(H.vloc_r, dtype=torch.float64, device=self.dev)
        def csr(M):
            M = M.tocsr()
            return torch.sparse_csr_tensor(t(M.indptr), t(M.indices), t(M.data, dtype=torch.complex128),
                                           size=M.shape, device=self.dev)

        self.P = csr(H.proj)
        self.PT = csr(H.proj.T) if H.proj.shape[1] else None
        self.a_nl = t(H.a_nl, dtype=torch.complex128, device=self.dev)
        self.a_so = t(H.a_so, dtype=torch.complex128, device=self.dev)
        self.ls = t(_LS, dtype=torch.complex128, device=self.dev)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        torch, H = self.torch, self.H
        X2 = X.reshape(H.dim, -1)
        nv = X2.shape[1]
        x = torch.as_tensor(X2, dtype=torch.complex128, device=self.dev).reshape(2, H.n, nv)
        grid = x.permute(0, 2, 1).reshape((2 * nv,) + tuple(H.fft_shape))
        out = torch.fft.ifftn(torch.fft.fftn(grid, dim=(1, 2, 3)) * self.kin, dim=(1, 2, 3)) + grid * self.v
        out = out.reshape(2, nv, H.n).permute(0, 2, 1)
        na, nr = H.a_nl.shape[:2]
        if na and self.PT is not None:
            C = torch.stack([self.PT @ x[s] for s in range(2)], dim=1) * H.dV
            C = C.reshape(na, nr, 3, 2, nv)
            D = torch.einsum("anp,apmsv->anmsv", self.a_nl, C)
            D = D + torch.einsum("anp,msbt,apbtv->anmsv", self.a_so, self.ls, C)
            D = D.reshape(na * nr * 3, 2, nv)
            out = out + torch.stack([self.P @ D[:, s].contiguous() for s in range(2)])
        res = out.reshape(H.dim, nv).cpu().numpy()
        return res[:, 0] if X.ndim == 1 else res
