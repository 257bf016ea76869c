"""The common result and interface of band-edge engines ("states near the gap of a structure").

Units at this boundary: energies in eV, positions in Å. Engines convert internally (Hartree/Bohr).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from ase import Atoms


@dataclass(frozen=True)
class BandEdgeStates:
    """States near the gap of one structure.

    energies_eV: (n_states,) ascending eigenvalues in eV.
    occupied: (n_states,) bool, True for valence (hole) states.
    atom_weights: (n_states, n_atoms) weight of each state on each atom of the input structure
        (rows sum to 1; atoms the engine ignores, e.g. ligands, carry 0).
    method: engine name, e.g. "tight-binding" or "pseudopotential".
    info: engine-specific metadata (parameter set, grid, convergence, timings).
    """

    energies_eV: np.ndarray
    occupied: np.ndarray
    atom_weights: np.ndarray
    method: str
    info: dict = field(default_factory=dict)

    @property
    def homo_eV(self) -> float:
        """Highest occupied state (valence-band maximum), eV."""
        return float(self.energies_eV[self.occupied].max())

    @property
    def lumo_eV(self) -> float:
        """Lowest unoccupied state (conduction-band minimum), eV."""
        return float(self.energies_eV[~self.occupied].min())

    @property
    def gap_eV(self) -> float:
        """Single-particle gap LUMO − HOMO, eV."""
        return self.lumo_eV - self.homo_eV

    def ipr(self) -> np.ndarray:
        """Inverse participation ratio per state, Σ_i w_i² (1/N for a fully delocalised state)."""
        return np.sum(self.atom_weights**2, axis=1)


@runtime_checkable
class BandEdgeEngine(Protocol):
    """A band-edge engine: states near the gap of a (finite) structure."""

    name: str

    def states(self, atoms: Atoms, n_states: int = 8) -> BandEdgeStates:
        """At least ``n_states`` states on each side of the gap of ``atoms`` (Å), energies in eV."""
        ...
