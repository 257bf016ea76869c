"""Fit the Harrison exponent η and undercoordination on-site shifts to reference gaps.

Reference data: structures with a reference gap each (e.g. DFT HOMO–LUMO gaps of distorted small
clusters from qdlab's CP2K engine, or imported). By default the fit is *relative*: it matches the gap
changes about the training mean (a DFT gap without SOC and a TB gap with SOC differ by an offset
that the distance law should not absorb); ``relative=False`` fits absolute gaps. Frames marked as
held out are never used by the optimiser and report the validation error. Energies in eV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from qdlab.electronic.tb.cluster import TightBinding
from qdlab.electronic.tb.params import TBParams
from qdlab.errors import QdlabError


def _apply(base: TBParams, names: list[str], x: np.ndarray) -> TBParams:
    shifts = {el: dict(d) for el, d in base.undercoordinated_shift_eV.items()}
    eta = base.eta
    for name, v in zip(names, x):
        if name == "eta":
            eta = float(v)
        else:
            _, el, orb = name.split(":")
            shifts.setdefault(el, {})[orb] = float(v)
    return base.with_changes(eta=eta, shifts=shifts)


def _check_names(base: TBParams, names: list[str]) -> None:
    for name in names:
        if name == "eta":
            continue
        parts = name.split(":")
        if len(parts) != 3 or parts[0] != "shift" or parts[1] not in base.orbitals or parts[2] not in base.orbitals[parts[1]]:
            raise QdlabError(f"fit parameter {name!r}: use eta or shift:ELEMENT:ORBITAL with an orbital of the set "
                             f"({', '.join(f'shift:{e}:{o}' for e, oo in base.orbitals.items() for o in oo)})")


@dataclass(frozen=True)
class FitResult:
    """Fitted parameter set and the fit quality (gaps in eV)."""

    params: TBParams
    names: tuple[str, ...]
    values: tuple[float, ...]
    initial: tuple[float, ...]
    relative: bool
    reference_eV: np.ndarray
    fitted_eV: np.ndarray
    initial_eV: np.ndarray
    train: np.ndarray               # bool mask of frames used by the optimiser

    def _stats(self, gaps: np.ndarray, mask: np.ndarray) -> dict:
        if not mask.any():
            return {"n": 0}
        ref, g = self.reference_eV[mask], gaps[mask]
        if self.relative:
            ref = ref - self.reference_eV[self.train].mean()
            g = g - gaps[self.train].mean()
        res = g - ref
        ss = np.sum((ref - ref.mean()) ** 2)
        return {"n": int(mask.sum()), "rmse_meV": float(np.sqrt(np.mean(res**2)) * 1e3),
                "max_abs_meV": float(np.abs(res).max() * 1e3),
                "r2": float(1 - np.sum(res**2) / ss) if ss > 0 else None}

    def summary(self) -> dict:
        return {"parameters": dict(zip(self.names, self.values)), "initial": dict(zip(self.names, self.initial)),
                "relative": self.relative,
                "train": {"initial": self._stats(self.initial_eV, self.train), "fitted": self._stats(self.fitted_eV, self.train)},
                "held_out": {"initial": self._stats(self.initial_eV, ~self.train),
                             "fitted": self._stats(self.fitted_eV, ~self.train)}}


def tb_gaps(frames: list[Atoms], params: TBParams, soc: bool = True) -> np.ndarray:
    """Gap (eV) of every frame with one parameter set."""
    eng = TightBinding(params, soc=soc)
    return np.array([eng.solve(a, 1).gap_eV for a in frames])


def fit_params(frames: list[Atoms], reference_eV, base: TBParams, names=("eta",), *, relative: bool = True,
               held_out=None, soc: bool = True, bounds: dict | None = None) -> FitResult:
    """Least-squares fit of ``names`` (``eta``, ``shift:El:orb``) to the reference gaps of ``frames``."""
    from scipy.optimize import least_squares

    names = list(names)
    _check_names(base, names)
    ref = np.asarray(reference_eV, float)
    if len(ref) != len(frames) or not np.all(np.isfinite(ref)):
        raise QdlabError("need one finite reference gap per structure")
    train = np.ones(len(frames), bool) if held_out is None else ~np.asarray(held_out, bool)
    if train.sum() < len(names) + (1 if relative else 0):
        raise QdlabError(f"{int(train.sum())} training structures cannot fix {len(names)} parameter(s)"
                         + (" in a relative fit" if relative else ""))
    x0 = np.array([base.eta if n == "eta" else base.undercoordinated_shift_eV.get(n.split(":")[1], {}).get(n.split(":")[2], 0.0)
                   for n in names])
    b = bounds or {}
    lo = [b.get(n, (0.0, 8.0) if n == "eta" else (-3.0, 3.0))[0] for n in names]
    hi = [b.get(n, (0.0, 8.0) if n == "eta" else (-3.0, 3.0))[1] for n in names]
    tr = [f for f, t in zip(frames, train) if t]

    def resid(x):
        g = tb_gaps(tr, _apply(base, names, x), soc)
        r = ref[train]
        return (g - g.mean()) - (r - r.mean()) if relative else g - r

    sol = least_squares(resid, x0, bounds=(lo, hi), diff_step=1e-4, x_scale=1.0)
    fitted = _apply(base, names, sol.x)
    return FitResult(fitted, tuple(names), tuple(float(v) for v in sol.x), tuple(float(v) for v in x0), relative, ref,
                     tb_gaps(frames, fitted, soc), tb_gaps(frames, base, soc), train)
