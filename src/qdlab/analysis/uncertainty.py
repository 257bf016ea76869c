"""Committee statistics: one number computed by several models → mean ± spread.

A *committee* is a set of models (different pretrained potentials, or fine-tuned checkpoints
with different seeds) evaluated on the same structure. Every derived number — a frequency, a
DOS peak centre, a binding energy — is reported as the committee mean ± spread, with

    mean   = (1/K) Σ_k x_k
    spread = √((1/K) Σ_k (x_k − mean)²)      (population standard deviation, ddof = 0)

so a committee of identical models has spread 0 and two models have spread |x_1 − x_2| / 2
(half their difference). The minimum and maximum member values are kept as well.

A *shift* between two systems A and B (e.g. a peak of a capped and of the bare nanocrystal) is
computed member by member, d_k = x_k(A) − x_k(B), before the statistics: errors a model makes
in both systems alike cancel. The shift is flagged ``within_uncertainty`` when |mean d| is not
larger than the spread of d (or, when the systems were not computed by the same members, than
the combined spread √(s_A² + s_B²)). Units follow the input (cm⁻¹ for frequencies, eV for
energies).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from qdlab.errors import QdlabError


@dataclass(frozen=True)
class CommitteeValue:
    """One quantity over a committee: member values (same order as ``members``) and statistics."""

    name: str
    members: tuple[str, ...]
    values: tuple[float, ...]
    mean: float
    spread: float
    minimum: float
    maximum: float

    @property
    def n_members(self) -> int:
        return len(self.values)

    def text(self, fmt: str = ".1f") -> str:
        """``"31.0 ± 0.4"``; a committee of one prints its value only."""
        return f"{self.mean:{fmt}}" if self.n_members < 2 else f"{self.mean:{fmt}} ± {self.spread:{fmt}}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["members"], d["values"] = list(self.members), list(self.values)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> CommitteeValue:
        return cls(name=d["name"], members=tuple(d["members"]), values=tuple(float(v) for v in d["values"]),
                   mean=float(d["mean"]), spread=float(d["spread"]), minimum=float(d["minimum"]),
                   maximum=float(d["maximum"]))


def committee_value(values: Sequence[float], members: Sequence[str] | None = None, name: str = "") -> CommitteeValue:
    """Mean ± spread (population std) of one quantity over the committee members."""
    x = np.asarray(values, float).ravel()
    if len(x) == 0:
        raise QdlabError(f"committee value {name!r} needs at least one member")
    if not np.all(np.isfinite(x)):
        raise QdlabError(f"committee value {name!r} has non-finite member values: {x.tolist()}")
    names = tuple(members) if members is not None else tuple(f"m{k}" for k in range(len(x)))
    if len(names) != len(x):
        raise QdlabError(f"{len(x)} values but {len(names)} member names for {name!r}")
    mean = float(x.mean())
    return CommitteeValue(name=name, members=names, values=tuple(float(v) for v in x), mean=mean,
                          spread=float(np.sqrt(np.mean((x - mean) ** 2))), minimum=float(x.min()),
                          maximum=float(x.max()))


def committee_arrays(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Element-wise mean and spread (population std) of equally shaped member arrays (e.g. the
    ascending mode frequencies of one structure, cm⁻¹)."""
    shapes = {np.shape(a) for a in arrays}
    if len(arrays) == 0 or len(shapes) != 1:
        raise QdlabError(f"committee arrays must be non-empty and of one shape, got {sorted(shapes)}")
    stack = np.stack([np.asarray(a, float) for a in arrays])
    return stack.mean(0), stack.std(0)


@dataclass(frozen=True)
class Shift:
    """x(A) − x(B) over a committee, with the flag a reader needs before calling it a finding."""

    name: str
    difference: CommitteeValue
    spread_a: float
    spread_b: float
    paired: bool
    within_uncertainty: bool
    sign_agrees: bool

    @property
    def threshold(self) -> float:
        """The spread the shift is compared with (paired: of d_k; unpaired: √(s_A² + s_B²))."""
        return self.difference.spread if self.paired else float(np.hypot(self.spread_a, self.spread_b))

    def text(self, fmt: str = ".1f") -> str:
        flag = " (within model uncertainty)" if self.within_uncertainty else ""
        return f"{self.difference.mean:+{fmt}} ± {self.threshold:{fmt}}{flag}"

    def to_dict(self) -> dict:
        return {"name": self.name, "difference": self.difference.to_dict(), "spread_a": self.spread_a,
                "spread_b": self.spread_b, "paired": self.paired, "threshold": self.threshold,
                "within_uncertainty": self.within_uncertainty, "sign_agrees": self.sign_agrees}

    @classmethod
    def from_dict(cls, d: Mapping) -> Shift:
        return cls(name=d["name"], difference=CommitteeValue.from_dict(d["difference"]),
                   spread_a=float(d["spread_a"]), spread_b=float(d["spread_b"]), paired=bool(d["paired"]),
                   within_uncertainty=bool(d["within_uncertainty"]), sign_agrees=bool(d["sign_agrees"]))


def committee_shift(a: CommitteeValue, b: CommitteeValue, name: str = "") -> Shift:
    """Shift a − b. Paired (member by member) when both were computed by the same members in the
    same order; otherwise the difference of the means against the combined spread."""
    paired = a.members == b.members
    if paired:
        d = committee_value(np.subtract(a.values, b.values), a.members, name)
        threshold = d.spread
        signs = np.sign(np.subtract(a.values, b.values))
    else:
        diff = a.mean - b.mean
        d = committee_value([diff], ("means",), name)
        threshold = float(np.hypot(a.spread, b.spread))
        signs = np.sign([diff])
    within = bool(abs(d.mean) <= threshold) if (a.n_members > 1 or b.n_members > 1) else False
    return Shift(name=name, difference=d, spread_a=a.spread, spread_b=b.spread, paired=paired,
                 within_uncertainty=within, sign_agrees=bool(len(set(signs.tolist())) == 1 and signs[0] != 0))


def ordering(values: Mapping[str, CommitteeValue], descending: bool = False) -> dict:
    """Order systems by their committee mean and say whether every member gives the same order.

    Returns ``{"order": [names by mean], "per_member": {member: [names]}, "robust": bool,
    "separated": bool}``; ``separated`` means neighbouring means differ by more than the larger
    of the two spreads (the order survives the uncertainty)."""
    names = list(values)
    if not names:
        return {"order": [], "per_member": {}, "robust": True, "separated": True}
    sign = -1.0 if descending else 1.0
    order = sorted(names, key=lambda n: sign * values[n].mean)
    members = values[names[0]].members
    per_member = {}
    if all(values[n].members == members for n in names):
        for k, m in enumerate(members):
            per_member[m] = sorted(names, key=lambda n: sign * values[n].values[k])
    robust = all(o == order for o in per_member.values()) if per_member else False
    separated = all(abs(values[x].mean - values[y].mean) > max(values[x].spread, values[y].spread)
                    for x, y in zip(order[:-1], order[1:]))
    return {"order": order, "per_member": per_member, "robust": robust, "separated": separated}


def peak_committee(member_peaks: Mapping[str, Mapping[str, float]]) -> dict[str, CommitteeValue]:
    """Per-peak committee values from ``{member: {peak name: centre cm⁻¹}}``; a peak missing for
    some member is computed over the members that found it."""
    names = list(dict.fromkeys(p for peaks in member_peaks.values() for p in peaks))
    out = {}
    for p in names:
        have = [(m, v[p]) for m, v in member_peaks.items() if p in v and np.isfinite(v[p])]
        if have:
            out[p] = committee_value([v for _, v in have], [m for m, _ in have], p)
    return out
