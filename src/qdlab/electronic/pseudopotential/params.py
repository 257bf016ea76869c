"""Semi-empirical pseudopotential parameters of CsPbI3 (seed 003 Table S4) and their functional forms.

Atomic units throughout (Hartree, Bohr; q in 1/Bohr). SCIENCE.md §9:

- local: v(q) = a0 (q² − a1) / (a2 exp(a3 q²) − 1)   [Hartree·Bohr³]; in a cell of volume Ω the
  plane-wave matrix element is v(|G−G′|) S(G−G′) / Ω;
- non-local p channel (semilocal, applied as separable projectors): λ1 e^{−r²} + λ2 e^{−(r−1.5)²};
- spin–orbit on p projectors: λ_SO e^{−(r/0.7)²} · L·S.
Cs carries no potential (the seed's fit found its contribution negligible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.units import Bohr, Hartree

#: Å per Bohr and eV per Hartree, from ase.units.
BOHR_A = float(Bohr)
HARTREE_EV = float(Hartree)

PHASES = ("cubic", "orthorhombic")


@dataclass(frozen=True)
class AtomParams:
    """The seven numbers of one element in one phase (Table S4)."""

    a0: float
    a1: float
    a2: float
    a3: float
    lam1: float
    lam2: float
    lam_so: float

    def v_local(self, q: np.ndarray) -> np.ndarray:
        """Local form factor v(q), Hartree·Bohr³, q in 1/Bohr."""
        q2 = np.asarray(q, float) ** 2
        return self.a0 * (q2 - self.a1) / (self.a2 * np.exp(self.a3 * q2) - 1.0)

    def f_nonlocal(self, r: np.ndarray) -> np.ndarray:
        """Radial p-channel potential λ1 e^{−r²} + λ2 e^{−(r−1.5)²}, Hartree, r in Bohr."""
        r = np.asarray(r, float)
        return self.lam1 * np.exp(-r**2) + self.lam2 * np.exp(-((r - 1.5) ** 2))

    def f_spin_orbit(self, r: np.ndarray) -> np.ndarray:
        """Radial spin–orbit strength λ_SO e^{−(r/0.7)²} (multiplies L·S), Hartree, r in Bohr."""
        r = np.asarray(r, float)
        return self.lam_so * np.exp(-((r / 0.7) ** 2))


#: Seed 003 Table S4 (full precision as printed there): element → phase → parameters.
TABLE_S4: dict[str, dict[str, AtomParams]] = {
    "Pb": {
        "orthorhombic": AtomParams(97.86083166, 2.25710305, 3.71951773, 0.55872538,
                                   1.40412238, -0.01566674, 7.94721141),
        "cubic": AtomParams(88.83030750, 2.60529157, 4.28692327, 0.51950186,
                            1.06405744, -0.00808029, 7.78990812),
    },
    "I": {
        "orthorhombic": AtomParams(117.89162750, 2.12591587, 2.91148249, 0.58243028,
                                   0.16631532, -0.02486412, 2.23037552),
        "cubic": AtomParams(113.75644925, 2.14135468, 2.84227140, 0.56706414,
                            0.04515637, 0.00220169, 3.03441874),
    },
}

#: Elements that carry a potential; every other element (Cs) is transparent.
ACTIVE = tuple(TABLE_S4)

#: Valence electrons counted as occupied spinor states: I 5s²5p⁶ (8) and Pb 6s² (2), the ionic count
#: that puts the gap between the Pb 6s/I 5p valence band and the Pb 6p conduction band.
OCCUPIED_PER_ATOM = {"I": 8, "Pb": 2}

#: Cubic CsPbI3 lattice constant of the seed's bulk check, Å (11.884 Bohr).
CUBIC_A_ANG = 6.289


def n_occupied(symbols) -> int:
    """Number of occupied spinor states of a structure (Cs and other elements add none)."""
    return int(sum(OCCUPIED_PER_ATOM.get(s, 0) for s in symbols))


def params_for(element: str, phase: str) -> AtomParams:
    """Table S4 entry; raises KeyError for an element without a potential."""
    return TABLE_S4[element][phase]
