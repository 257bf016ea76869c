"""Dipole moments of finite structures (for IR spectra; SCIENCE.md §6, seed 001): one interface.

A dipole source maps positions (F, N, 3) Å of one system to dipoles (F, 3) in e·Å
(1 D = ``ase.units.Debye`` e·Å ≈ 0.2082 e·Å). Three kinds:

* :class:`ChargeDipole` — fixed partial charges, μ = Σ q_i (r_i − r_com) (origin-free for a neutral
  system; the centre of mass is the origin otherwise). Born charges are analytic: Z_i = q_i·1.
  :func:`seed001_charges` assigns seed 001's ESP averages to Pb by site class (vertex 0.72,
  edge 0.94, interior 0.58 e; classes from the number of anion neighbours, :func:`pb_site_classes`),
  a fixed charge to the anion (default −1.0 e; 001's S value is not in the paper text) and scales the
  ligand atoms' charges (the builder's Gasteiger charges in ``initial_charges``) so the total equals
  the model's net charge. :func:`initial_charges` uses ``atoms.get_initial_charges()`` as they are.
* :class:`CalculatorDipole` — any ASE calculator with a ``dipole`` result (qdlab's GFN-xTB via
  tblite: :func:`xtb_dipole`, or ``module:factory``), one electronic-structure call per frame;
  :class:`CheckpointedDipole` keeps its dipoles frame by frame so an interrupted run resumes.
* the learned latent-charge model, :mod:`qdlab.engines.dipole_model`.

:func:`get_dipole_source` resolves the CLI spelling ``charges`` | ``seed001`` | ``xtb`` | a model file.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from ase import Atoms

from qdlab.errors import QdlabError

#: seed 001 ESP averages for Pb (e) by position in the nanocrystal
SEED001_PB_CHARGES = {"vertex": 0.72, "edge": 0.94, "interior": 0.58}


@runtime_checkable
class DipoleSource(Protocol):
    """Anything with ``name`` and ``dipoles(atoms, positions) -> (F, 3) e·Å``."""

    name: str

    def dipoles(self, atoms: Atoms, positions: np.ndarray) -> np.ndarray: ...


def pb_site_classes(atoms: Atoms, metal: str = "Pb", anion: str = "S", cutoff_A: float = 3.6) -> np.ndarray:
    """Site class of each ``metal`` atom by its anion neighbours within ``cutoff_A``: ≤ 1 → ``vertex``,
    2–4 → ``edge`` (edges and facets), ≥ 5 → ``interior``; ``""`` for other atoms.

    In the rock-salt Pb19S6 octahedron: 6 vertex (1 S), 12 edge (2 S), 1 interior (6 S).
    """
    sym = np.array(atoms.get_chemical_symbols())
    out = np.full(len(atoms), "", dtype=object)
    im, ia = np.flatnonzero(sym == metal), np.flatnonzero(sym == anion)
    if len(im) == 0:
        return out.astype(str)
    if len(ia) == 0:
        out[im] = "vertex"
        return out.astype(str)
    d = np.linalg.norm(atoms.positions[im, None, :] - atoms.positions[None, ia, :], axis=2)
    n = (d < cutoff_A).sum(1)
    out[im] = np.where(n <= 1, "vertex", np.where(n >= 5, "interior", "edge"))
    return out.astype(str)


def initial_charges(atoms: Atoms) -> np.ndarray:
    """The structure's ``initial_charges`` (e); an error when it carries none (all zero)."""
    q = np.asarray(atoms.get_initial_charges(), float)
    if not np.any(q != 0):
        raise QdlabError("the structure carries no partial charges (initial_charges all zero); "
                         "use a model from `qdlab build` or --dipoles seed001|xtb|MODEL")
    return q


def seed001_charges(atoms: Atoms, metal: str = "Pb", anion: str = "S", anion_charge: float = -1.0,
                    pb_charges: dict[str, float] | None = None, net_charge: float | None = None) -> np.ndarray:
    """Seed 001 fixed charges (module docstring): Pb by site class, anion fixed, ligands scaled to neutrality.

    Ligand atoms are all atoms other than ``metal`` and ``anion``; their ``initial_charges`` set the
    pattern (an error when they carry none). ``net_charge`` defaults to ``atoms.info["charge"]`` (0).
    """
    table = dict(SEED001_PB_CHARGES | (pb_charges or {}))
    sym = np.array(atoms.get_chemical_symbols())
    q = np.zeros(len(atoms))
    cls = pb_site_classes(atoms, metal, anion)
    is_m, is_a = sym == metal, sym == anion
    if not is_m.any():
        raise QdlabError(f"seed001 charges need {metal} atoms; this structure has none")
    q[is_m] = [table[c] for c in cls[is_m]]
    q[is_a] = anion_charge
    lig = ~(is_m | is_a)
    total = float(atoms.info.get("charge", 0) if net_charge is None else net_charge)
    rest = total - q[~lig].sum()
    if lig.any():
        pattern = np.asarray(atoms.get_initial_charges(), float)[lig]
        if abs(pattern.sum()) < 1e-6:
            raise QdlabError("ligand atoms carry no initial_charges to scale (build the model with `qdlab build`)")
        q[lig] = pattern * (rest / pattern.sum())
    elif abs(rest) > 1e-6:
        raise QdlabError(f"no ligand atoms to balance the charge ({rest:+.3f} e left over)")
    return q


class ChargeDipole:
    """μ = Σ q_i (r_i − r_com) with fixed charges ``charges`` (N,) e; analytic Born charges."""

    def __init__(self, charges: np.ndarray, name: str = "charges"):
        self.charges = np.asarray(charges, float)
        self.name = name

    def _check(self, atoms: Atoms) -> None:
        if len(atoms) != len(self.charges):
            raise QdlabError(f"{len(self.charges)} charges for a structure of {len(atoms)} atoms")

    def dipoles(self, atoms: Atoms, positions: np.ndarray) -> np.ndarray:
        self._check(atoms)
        x = np.asarray(positions, float).reshape(-1, len(atoms), 3)
        m = atoms.get_masses()
        com = np.einsum("n,fnk->fk", m, x) / m.sum()
        return np.einsum("n,fnk->fk", self.charges, x) - self.charges.sum() * com

    def born_charges(self, atoms: Atoms) -> np.ndarray:
        """Z_i,ab = ∂μ_b/∂r_ia (N, 3, 3) e: q_i δ_ab (minus the centre-of-mass term of a charged system)."""
        self._check(atoms)
        m = atoms.get_masses()
        z = self.charges - self.charges.sum() * m / m.sum()
        return z[:, None, None] * np.eye(3)[None]


class CalculatorDipole:
    """Dipoles from an ASE calculator that returns ``dipole`` (e·Å), one call per frame.

    ``per_frame``: each frame is an electronic-structure calculation, worth a per-frame checkpoint
    (:class:`CheckpointedDipole`)."""

    per_frame = True

    def __init__(self, calc_factory: Callable[[], object], name: str = "calculator",
                 progress: Callable[[int, int], None] | None = None):
        self.calc_factory = calc_factory
        self.name = name
        self.progress = progress

    def dipoles(self, atoms: Atoms, positions: np.ndarray) -> np.ndarray:
        from ase.calculators.calculator import PropertyNotImplementedError

        x = np.asarray(positions, float).reshape(-1, len(atoms), 3)
        work = atoms.copy()
        work.calc = self.calc_factory()
        out = np.empty((len(x), 3))
        for f, pos in enumerate(x):
            work.positions = pos
            try:
                out[f] = work.get_dipole_moment()
            except PropertyNotImplementedError:
                raise QdlabError(f"dipole source {self.name} gives no dipole (its calculator has no "
                                 "'dipole' result)") from None
            if self.progress:
                self.progress(f + 1, len(x))
        return out


class CheckpointedDipole:
    """A per-frame dipole source (:class:`CalculatorDipole`) with a checkpoint: frames are evaluated
    one at a time and each dipole (e·Å) is appended to ``path`` as one record (frame hash = SHA-256
    of its positions, μ, CRC-32; 64 bytes, fsync'ed) behind a header with the key of the structure
    (numbers, charge) and the source's name. A rerun (after a kill, or with other skip/stride
    settings) reuses the frames found there and computes only the others; a torn last record (a
    kill mid-write) or a damaged one ends the good prefix, which is kept; a checkpoint of another
    structure or source is refused. ``progress(done, total)`` counts reused frames as done."""

    MAGIC = b"QDLABDIP"
    RECORD = 64

    def __init__(self, source, path: str | os.PathLike, progress: Callable[[int, int], None] | None = None):
        self.source = source
        self.name = source.name
        self.path = Path(path)
        self.progress = progress
        self.n_reused = 0
        self.n_computed = 0

    def key(self, atoms: Atoms) -> bytes:
        """32 hex characters identifying the structure and the source."""
        h = hashlib.sha256(np.ascontiguousarray(atoms.numbers, np.int64).tobytes())
        h.update(f"{float(atoms.info.get('charge', 0)):.6g}|{self.name}".encode())
        return h.hexdigest()[:32].encode()

    @classmethod
    def _pack(cls, head: bytes, values: np.ndarray) -> bytes:
        body = head + np.asarray(values, "<f8").tobytes()  # 8 or 32 bytes + 24 bytes
        return (body + np.int64(zlib.crc32(body)).tobytes()).ljust(cls.RECORD, b"\0")

    def stored(self, atoms: Atoms) -> tuple[dict[bytes, np.ndarray], int]:
        """(frame hash → dipole of the good records, byte length of the good prefix incl. header)."""
        if not self.path.exists():
            return {}, 0
        data = self.path.read_bytes()
        rec = self.RECORD
        if len(data) < rec or data[:8] != self.MAGIC:
            raise QdlabError(f"{self.path} is not a qdlab dipole checkpoint; remove it")
        if data[8:40] != self.key(atoms):
            raise QdlabError(f"{self.path} holds dipoles of another structure or dipole source; "
                             "remove it or choose another output folder")
        known = {}
        for k in range(1, len(data) // rec):
            r = data[k * rec:(k + 1) * rec]
            if self._pack(r[:32], np.frombuffer(r[32:56], "<f8")) != r:
                return known, k * rec  # torn or damaged: the records before it are good
            known[r[:32]] = np.frombuffer(r[32:56], "<f8").copy()
        return known, len(data) // rec * rec

    def dipoles(self, atoms: Atoms, positions: np.ndarray) -> np.ndarray:
        """(F, 3) e·Å; the checkpoint is locked against a second writer while frames are computed."""
        from qdlab.store.locks import output_lock

        x = np.ascontiguousarray(np.asarray(positions, float).reshape(-1, len(atoms), 3))
        names = [hashlib.sha256(p.tobytes()).hexdigest()[:32].encode() for p in x]
        out = np.empty((len(x), 3))
        with output_lock(self.path, what="dipole checkpoint"):
            known, good = self.stored(atoms)
            with open(self.path, "r+b" if self.path.exists() else "wb") as fh:
                fh.truncate(good)  # drop a torn tail before appending
                fh.seek(good)
                if good == 0:
                    fh.write(self._pack(self.MAGIC + self.key(atoms), np.zeros(0)))
                for f, name in enumerate(names):
                    if name in known:
                        out[f] = known[name]
                        self.n_reused += 1
                    else:
                        out[f] = known[name] = np.asarray(self.source.dipoles(atoms, x[f:f + 1]), float)[0]
                        fh.write(self._pack(name, out[f]))
                        fh.flush()
                        os.fsync(fh.fileno())
                        self.n_computed += 1
                    if self.progress:
                        self.progress(f + 1, len(x))
        return out


def xtb_dipole(method: str = "gfn2", charge: int | None = None) -> CalculatorDipole:
    """GFN-xTB dipoles (tblite) as a :class:`CalculatorDipole`."""
    from qdlab.engines.xtb import XTB

    return CalculatorDipole(lambda: XTB(method, charge=charge), name=f"xtb-{method}")


def get_dipole_source(spec: str, atoms: Atoms, **options) -> DipoleSource:
    """``charges`` (the structure's initial charges), ``seed001`` (:func:`seed001_charges`),
    ``xtb`` / ``gfn1`` / ``gfn2`` (tblite), ``module:factory`` (any ASE calculator with a ``dipole``
    result, one call per frame), or a path to a trained latent-charge model (.pt)."""
    key = spec.strip().lower()
    if key in ("charges", "initial", "initial_charges"):
        return ChargeDipole(initial_charges(atoms), name="charges")
    if key in ("seed001", "esp", "seed001-charges"):
        return ChargeDipole(seed001_charges(atoms, **options), name="seed001")
    if key in ("xtb", "gfn2", "gfn1"):
        return xtb_dipole("gfn1" if key == "gfn1" else "gfn2", **options)
    from qdlab.engines.support import is_import_path, make_calculator

    if is_import_path(spec.strip()) and not Path(os.path.expanduser(spec)).exists():
        name = spec.strip()  # any ASE calculator with a 'dipole' result, by import path
        return CalculatorDipole(lambda: make_calculator(name), name=name)
    path = Path(os.path.expanduser(spec))
    if path.suffix in (".pt", ".pth") or path.exists():
        from qdlab.engines.dipole_model import load_dipole_model

        return load_dipole_model(path)
    raise QdlabError(f"unknown dipole source {spec!r}: use charges, seed001, xtb or a model file (.pt)")
