"""Learned latent-charge dipole model (Gastegger, Behler, Marquetand, Chem. Sci. 2017; SCIENCE.md §6).

Each atom's environment is described by radial symmetry functions per neighbour element,
G_i,e,k = Σ_{j∈e} exp(−(r_ij − c_k)²/2w²) f_c(r_ij) with a cosine cutoff f_c (``cutoff_A``), joined
with a one-hot element code; a small network maps it to a latent charge q̃_i; the total charge Q
of the structure is enforced by q_i = q̃_i − (Σ q̃ − Q)/N, and μ = Σ q_i (r_i − r_com) (e·Å).
The charges are not fitted to anything but the dipole. Everything is vectorised over frames and
atom pairs in torch (float64, CPU is enough for the model sizes used here). The time derivative
μ̇ = Σ_i (∂μ/∂r_i)·v_i for an IR spectrum is a Jacobian–vector product.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase import Atoms

from qdlab.errors import QdlabError

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - torch is a core dependency
    torch = None
    nn = None


def _require_torch() -> None:
    if torch is None:
        raise QdlabError("the learned dipole model needs torch")


class LatentChargeNet(nn.Module if nn is not None else object):
    """Radial descriptors → per-atom latent charges → μ (see module docstring); ``hidden=0`` is a
    linear charge model (for data sets of a few dozen frames)."""

    def __init__(self, elements: list[str], cutoff_A: float = 6.0, n_radial: int = 16, hidden: int = 64):
        super().__init__()
        from ase.data import atomic_numbers

        self.elements = list(elements)
        self.cutoff_A = float(cutoff_A)
        self.n_radial = int(n_radial)
        self.hidden = int(hidden)
        lookup = torch.full((119,), -1, dtype=torch.long)
        for k, e in enumerate(self.elements):
            lookup[atomic_numbers[e]] = k
        self.register_buffer("lookup", lookup)
        self.register_buffer("centres", torch.linspace(0.8, cutoff_A, n_radial, dtype=torch.float64))
        self.width = float((cutoff_A - 0.8) / (n_radial - 1))
        n_e = len(self.elements)
        n_in = n_e * n_radial + n_e
        self.register_buffer("mean", torch.zeros(n_in, dtype=torch.float64))
        self.register_buffer("std", torch.ones(n_in, dtype=torch.float64))
        if hidden > 0:
            self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, 1)).double()
        else:  # linear in the descriptors: the small-data limit (μ is then linear in the weights)
            self.net = nn.Linear(n_in, 1).double()

    def config(self) -> dict:
        return {"elements": self.elements, "cutoff_A": self.cutoff_A, "n_radial": self.n_radial,
                "hidden": self.hidden}

    def species(self, numbers) -> torch.Tensor:
        z = torch.as_tensor(np.asarray(numbers), dtype=torch.long)
        s = self.lookup[z]
        if (s < 0).any():
            from ase.data import chemical_symbols

            bad = sorted({chemical_symbols[int(v)] for v in z[s < 0]})
            raise QdlabError(f"the dipole model knows {', '.join(self.elements)}; this structure has "
                             f"{', '.join(bad)} as well")
        return s

    def descriptors(self, pos: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) positions, (N,) species → (B, N, E·K + E) standardised descriptors."""
        n_e = len(self.elements)
        d = pos[:, :, None, :] - pos[:, None, :, :]
        eye = torch.eye(pos.shape[1], dtype=torch.bool)
        r = torch.sqrt((d ** 2).sum(-1) + eye.to(pos.dtype))              # (B, N, N), 1 on the diagonal
        fc = 0.5 * (torch.cos(np.pi * r / self.cutoff_A) + 1.0) * (r < self.cutoff_A) * (~eye)
        g = torch.exp(-0.5 * ((r[..., None] - self.centres) / self.width) ** 2) * fc[..., None]  # (B,N,N,K)
        onehot = torch.nn.functional.one_hot(species, n_e).to(pos.dtype)   # (N, E)
        radial = torch.einsum("bijk,je->biek", g, onehot).reshape(pos.shape[0], pos.shape[1], -1)
        x = torch.cat([radial, onehot.expand(pos.shape[0], -1, -1)], dim=-1)
        return (x - self.mean) / self.std

    def charges(self, pos: torch.Tensor, species: torch.Tensor, total_charge: float = 0.0) -> torch.Tensor:
        q = self.net(self.descriptors(pos, species))[..., 0]               # (B, N)
        return q - (q.sum(1, keepdim=True) - total_charge) / q.shape[1]

    def forward(self, pos: torch.Tensor, species: torch.Tensor, masses: torch.Tensor,
                total_charge: float = 0.0) -> torch.Tensor:
        q = self.charges(pos, species, total_charge)
        com = (masses[None, :, None] * pos).sum(1) / masses.sum()
        return (q[..., None] * (pos - com[:, None, :])).sum(1)             # (B, 3) e·Å


class LearnedDipole:
    """A trained :class:`LatentChargeNet` as a dipole source (``dipoles``, ``dipole_derivatives``, ``charges``)."""

    def __init__(self, net: LatentChargeNet, name: str = "model", metrics: dict | None = None, batch: int = 64):
        self.net = net.eval()
        self.name = name
        self.metrics = metrics or {}
        self.batch = batch

    def _inputs(self, atoms: Atoms):
        return (self.net.species(atoms.numbers), torch.as_tensor(atoms.get_masses(), dtype=torch.float64),
                float(atoms.info.get("charge", 0)))

    def dipoles(self, atoms: Atoms, positions: np.ndarray) -> np.ndarray:
        s, m, q = self._inputs(atoms)
        x = np.asarray(positions, float).reshape(-1, len(atoms), 3)
        out = []
        with torch.no_grad():
            for b in range(0, len(x), self.batch):
                out.append(self.net(torch.as_tensor(x[b:b + self.batch]), s, m, q).numpy())
        return np.concatenate(out)

    def dipole_derivatives(self, atoms: Atoms, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        """μ̇ = Σ_i (∂μ/∂r_i)·v_i (F, 3) in e·Å per velocity time unit (Jacobian–vector products)."""
        s, m, q = self._inputs(atoms)
        x = np.asarray(positions, float).reshape(-1, len(atoms), 3)
        v = np.asarray(velocities, float).reshape(x.shape)
        out = []
        for b in range(0, len(x), self.batch):
            _, jv = torch.func.jvp(lambda p: self.net(p, s, m, q), (torch.as_tensor(x[b:b + self.batch]),),
                                   (torch.as_tensor(v[b:b + self.batch]),))
            out.append(jv.detach().numpy())
        return np.concatenate(out)

    def charges(self, atoms: Atoms) -> np.ndarray:
        """Latent charges (N,) e of one structure."""
        s, _, q = self._inputs(atoms)
        with torch.no_grad():
            return self.net.charges(torch.as_tensor(atoms.positions[None]), s, q)[0].numpy()

    def save(self, path: str | os.PathLike) -> Path:
        from qdlab.store.files import atomic_path

        with atomic_path(path) as tmp:
            torch.save({"kind": "qdlab-latent-charge-dipole", "config": self.net.config(),
                        "state_dict": self.net.state_dict(), "metrics": self.metrics}, tmp)
        return Path(path)


def load_dipole_model(path: str | os.PathLike) -> LearnedDipole:
    """Load a model written by :meth:`LearnedDipole.save` (one-line errors for a wrong file)."""
    _require_torch()
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    try:
        ck = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise QdlabError(f"cannot read dipole model {p}: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(ck, dict) or ck.get("kind") != "qdlab-latent-charge-dipole":
        raise QdlabError(f"{p} is not a qdlab dipole model")
    net = LatentChargeNet(**ck["config"])
    net.load_state_dict(ck["state_dict"])
    return LearnedDipole(net, name=p.stem, metrics=ck.get("metrics", {}))
