"""Semi-empirical pseudopotential Hamiltonian of CsPbI3 (seed 003): bulk plane waves and nanocrystal grid.

Atomic units (Hartree, Bohr) inside; energies in eV and positions in Å at the public boundary.
"""

from qdlab.electronic.pseudopotential.bulk import BulkBands, cubic_cell, effective_masses, orthorhombic_cell
from qdlab.electronic.pseudopotential.engine import (GridStates, PseudopotentialEngine, StatesSettings,
                                                     memory_estimate, nanocrystal_states)

__all__ = ["BulkBands", "cubic_cell", "effective_masses", "orthorhombic_cell", "GridStates",
           "PseudopotentialEngine", "StatesSettings", "memory_estimate", "nanocrystal_states"]
