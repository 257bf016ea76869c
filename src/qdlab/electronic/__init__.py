"""Electronic structure of nanocrystals: band-edge Hamiltonians, states near the gap, excitons.

One interface for "states near the gap of a structure" (:mod:`qdlab.electronic.states`): every
band-edge engine (orthogonal tight binding, the semi-empirical pseudopotential grid Hamiltonian)
returns a :class:`~qdlab.electronic.states.BandEdgeStates`. Energies at this boundary are in eV and
lengths in Å; Hartree/Bohr stay inside the engines.
"""

from qdlab.electronic.states import BandEdgeStates, BandEdgeEngine

__all__ = ["BandEdgeStates", "BandEdgeEngine"]
