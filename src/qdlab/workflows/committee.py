"""Model committees: the same structure evaluated by several engines (single points or Hessians).

Cheap by construction: the geometry is relaxed once (with the primary engine); each member only
adds single points (binding energies) or one Hessian (phonons) at that geometry. A member is an
engine choice, written ``name[:model]`` or ``name@checkpoint`` (``chgnet:0.2.0``, ``chgnet:r2scan``,
``sevenn:7net-0``, ``chgnet@ft/best.pth.tar``, ``classical``).

Phonon committee (plan → evaluate → assemble): the units are (system, member) Hessians, each
checkpointed by the phonon workflow's own displacement checkpoint and its result saved as soon
as it is known, so a killed run resumes. Assembled: mode frequencies and M1/M2/M3 centres per
member, their committee mean ± spread, and the shift of every peak of every system against the
first (reference) system, flagged when within the model uncertainty.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
from ase import Atoms
from pydantic import BeforeValidator, Field

from qdlab.analysis.uncertainty import CommitteeValue, Shift, committee_arrays, committee_shift, peak_committee
from qdlab.engines.spec import EngineSpec
from qdlab.errors import QdlabError
from qdlab.store.files import atomic_path, write_text

Progress = Callable[[int, int], None] | None


class EngineChoice(EngineSpec):
    """One committee member: the project's one engine-settings object
    (:class:`qdlab.engines.spec.EngineSpec`, which builds its calculator and names its identity)
    plus ``display``, the name shown in tables (default: the text :func:`parse_engine` reads back)."""

    display: str | None = Field(None, description="name shown in tables (default: the engine's label)")

    @property
    def title(self) -> str:
        """``display``, or the member written as :func:`parse_engine` reads it (``name[:model][@file][+D3]``)."""
        if self.display:
            return self.display
        ckpt = f"@{Path(self.checkpoint).name}" if self.checkpoint else ""
        return f"{self.name}{':' + self.model if self.model else ''}{ckpt}{'+D3' if self.d3 else ''}"


def parse_engine(text: str | dict | EngineChoice) -> EngineChoice:
    """``"chgnet:0.2.0"``, ``"chgnet@path.pth.tar"``, ``"sevenn:7net-0+d3"``, a dict or a choice."""
    if isinstance(text, EngineChoice):
        return text
    if isinstance(text, dict):
        return EngineChoice(**text)
    m = re.fullmatch(r"\s*([\w.-]+)(?::([\w./-]+))?(?:@([^+\s]+))?(\+d3)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise QdlabError(f"engine {text!r}: write name[:model][@checkpoint][+d3], e.g. chgnet:0.2.0")
    return EngineChoice(name=m.group(1), model=m.group(2), checkpoint=m.group(3), d3=bool(m.group(4)))


def _text_to_member(value):
    return parse_engine(value) if isinstance(value, str) else value


#: a committee member in a settings model: an :class:`EngineChoice`, its fields, or its text
#: (``"chgnet:0.2.0"``, ``"chgnet@best.pth.tar+d3"``)
Member = Annotated[EngineChoice, BeforeValidator(_text_to_member)]


def unique_titles(members: Sequence[EngineChoice]) -> list[str]:
    titles = [m.title for m in members]
    if len(set(titles)) != len(titles):
        titles = [f"{t}#{k}" for k, t in enumerate(titles)]
    return titles


def committee_energies(structures: dict[str, Atoms], members: Sequence[EngineChoice],
                       progress: Progress = None) -> dict[str, dict[str, float]]:
    """Single-point energies (eV) ``{member title: {structure name: E}}`` at fixed geometries."""
    out: dict[str, dict[str, float]] = {}
    total, done = len(members) * len(structures), 0
    for title, member in zip(unique_titles(members), members):
        calc = member.calculator()
        out[title] = {}
        for name, atoms in structures.items():
            a = atoms.copy()
            a.calc = calc
            out[title][name] = float(a.get_potential_energy())
            done += 1
            if progress:
                progress(done, total)
    return out


@dataclass(frozen=True)
class CommitteePhonons:
    """Phonon numbers of several systems over a committee (cm⁻¹).

    ``frequencies_cm1[system][member]`` ascending mode frequencies; ``peaks[system]`` the committee
    value of each DOS peak centre; ``shifts[system]`` each peak's shift against ``reference``."""

    members: tuple[str, ...]
    systems: tuple[str, ...]
    reference: str
    frequencies_cm1: dict[str, dict[str, np.ndarray]] = field(repr=False)
    member_peaks: dict[str, dict[str, dict[str, float]]]
    peaks: dict[str, dict[str, CommitteeValue]]
    shifts: dict[str, dict[str, Shift]]
    n_imaginary: dict[str, dict[str, int]]
    sigma_cm1: float

    def frequency_spread(self, system: str) -> tuple[np.ndarray, np.ndarray]:
        """Mode-by-mode committee mean and spread of ``system``'s ascending frequencies."""
        return committee_arrays(list(self.frequencies_cm1[system].values()))

    def to_dict(self, frequencies: bool = False) -> dict:
        d = {"members": list(self.members), "systems": list(self.systems), "reference": self.reference,
             "sigma_cm1": self.sigma_cm1, "n_imaginary": self.n_imaginary, "member_peaks": self.member_peaks,
             "peaks": {s: {p: v.to_dict() for p, v in pk.items()} for s, pk in self.peaks.items()},
             "shifts": {s: {p: v.to_dict() for p, v in sh.items()} for s, sh in self.shifts.items()}}
        if frequencies:
            d["frequencies_cm1"] = {s: {m: f.tolist() for m, f in fm.items()} for s, fm in self.frequencies_cm1.items()}
            d["frequency_spread_cm1"] = {s: self.frequency_spread(s)[1].tolist() for s in self.systems}
        return d

    def save(self, path: str | os.PathLike) -> Path:
        """JSON with every member frequency (the file :meth:`load` reads)."""
        return write_text(path, json.dumps(self.to_dict(frequencies=True), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> CommitteePhonons:
        d = json.loads(Path(path).read_text())
        return cls(members=tuple(d["members"]), systems=tuple(d["systems"]), reference=d["reference"],
                   frequencies_cm1={s: {m: np.asarray(f) for m, f in fm.items()}
                                    for s, fm in d["frequencies_cm1"].items()},
                   member_peaks=d["member_peaks"],
                   peaks={s: {p: CommitteeValue.from_dict(v) for p, v in pk.items()} for s, pk in d["peaks"].items()},
                   shifts={s: {p: Shift.from_dict(v) for p, v in sh.items()} for s, sh in d["shifts"].items()},
                   n_imaginary=d["n_imaginary"], sigma_cm1=float(d["sigma_cm1"]))


def _unit_path(folder: Path, system: str, title: str, ext: str) -> Path:
    safe = re.sub(r"[^\w.-]+", "_", f"{system}__{title}")
    return folder / f"{safe}.{ext}"


def evaluate_phonon_unit(atoms: Atoms, member: EngineChoice, title: str, system: str, folder: Path, *,
                         method: str = "fd", delta: float = 0.01, batch_size: int | None = None,
                         progress: Progress = None) -> tuple[np.ndarray, np.ndarray, int]:
    """One (system, member) Hessian → (frequencies cm⁻¹, modes, n_imaginary); cached in ``folder``."""
    from qdlab.workflows.phonons import phonons

    from qdlab.workflows.phonons import checkpoint_key

    cache = _unit_path(folder, system, title, "npz")
    key = checkpoint_key(atoms, delta, f"{member.force_label()}|{method}")
    if cache.exists():
        try:
            with np.load(cache) as z:
                if "key" in z.files and str(z["key"]) == key:
                    return z["frequencies_cm1"], z["modes"], int(z["n_imaginary"])
        except Exception:  # a damaged cache is recomputed (the unit's Hessian checkpoint is reused)
            pass
    calc = member.calculator()
    use = method
    if method == "auto":
        use = "analytic" if hasattr(calc, "get_hessian") else "fd"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # imaginary modes are counted and reported instead
        ph = phonons(atoms, calc, delta, method=use, batch_size=batch_size, progress=progress,
                     checkpoint=_unit_path(folder, system, title, "ckpt") if use == "fd" else None,
                     engine_name=title)
    with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, frequencies_cm1=ph.frequencies_cm1, modes=ph.modes, n_imaginary=ph.n_imaginary, key=key)
    return ph.frequencies_cm1, ph.modes, ph.n_imaginary


def committee_phonons(systems: dict[str, Atoms], members: Sequence[EngineChoice | str], folder: str | os.PathLike,
                      *, method: str = "auto", delta: float = 0.01, sigma_cm1: float = 3.0,
                      regions: dict | None = None, curve: str = "total", batch_size: int | None = None,
                      progress: Callable[[str, int, int], None] | None = None) -> CommitteePhonons:
    """Γ phonons of every system with every member at the given (relaxed) geometries.

    The first system is the reference for the shifts. ``method``: ``fd``, ``analytic`` or ``auto``
    (analytic where the engine has it). Peaks from :func:`qdlab.analysis.dos.mode_peaks`."""
    from qdlab.analysis.dos import label_selections, mode_peaks, phonon_dos

    if not systems or not members:
        raise QdlabError("a phonon committee needs at least one system and one member")
    choices = [parse_engine(m) for m in members]
    titles = unique_titles(choices)
    folder = Path(folder)
    freqs: dict[str, dict[str, np.ndarray]] = {}
    mpeaks: dict[str, dict[str, dict[str, float]]] = {}
    n_imag: dict[str, dict[str, int]] = {}
    for system, atoms in systems.items():
        freqs[system], mpeaks[system], n_imag[system] = {}, {}, {}
        for title, member in zip(titles, choices):
            cb = (lambda d, t, _s=system, _m=title: progress(f"{_s} · {_m}", d, t)) if progress else None
            f, modes, ni = evaluate_phonon_unit(atoms, member, title, system, folder, method=method, delta=delta,
                                                batch_size=batch_size, progress=cb)
            sel = label_selections(atoms) if curve != "total" and "role" in atoms.arrays else None
            dos = phonon_dos(f, modes if sel else None, sel, sigma_cm1=sigma_cm1)
            missing: dict[str, str] = {}
            peaks = mode_peaks(dos, regions, curve=curve, missing=missing)
            freqs[system][title] = f
            mpeaks[system][title] = {p: pk.centre_cm1 for p, pk in peaks.items()}
            n_imag[system][title] = ni
    return assemble_committee_phonons(freqs, mpeaks, n_imag, tuple(titles), sigma_cm1)


def assemble_committee_phonons(freqs, mpeaks, n_imag, titles: tuple[str, ...], sigma_cm1: float) -> CommitteePhonons:
    """Member results → committee values and shifts against the first system."""
    names = tuple(freqs)
    ref = names[0]
    # members are given explicitly in the same order for every system, so shifts are paired
    peaks = {s: peak_committee({m: mpeaks[s][m] for m in titles}) for s in names}
    shifts = {s: {p: committee_shift(peaks[s][p], peaks[ref][p], f"{p} {s} − {ref}")
                  for p in peaks[s] if p in peaks[ref]} for s in names if s != ref}
    return CommitteePhonons(members=titles, systems=names, reference=ref, frequencies_cm1=freqs,
                            member_peaks=mpeaks, peaks=peaks, shifts=shifts, n_imaginary=n_imag,
                            sigma_cm1=sigma_cm1)
