"""Tight binding against DFT: gap changes along normal modes of a small cluster, plan → evaluate → assemble.

- :func:`mode_characters` describes every Γ mode of a relaxed cluster (Cs weight, Pb–X stretch,
  octahedral-rotation fraction, Pb–X–Pb bridge-angle change), :func:`select_modes` picks one mode
  per character by a fixed rule (never by how well tight binding does on it);
- :func:`plan_validation` lists the geometries: the reference, then each selected mode displaced by
  ``±amplitude_A`` (largest atomic displacement, Å) along its Cartesian displacement pattern;
- :func:`evaluate_dft` runs one CP2K PBE single point (``qdlab.engines.cp2k_mo``) and reads the
  HOMO–LUMO gap (``dft_gap="pb-edge"``: also the Mulliken weights and the gap to the lowest
  Pb-derived MO, :func:`~qdlab.engines.cp2k_mo.edge_gap`; :func:`dft_gap_of` picks the one compared), :func:`evaluate_tb` the tight-binding gap (same geometry, SOC off by default: CP2K
  has no SOC);
- :func:`assemble` gives the table ΔE_g(DFT), ΔE_g(TB), ratio, sign agreement, |ratio − 1| ≤ tolerance.
:func:`run_validation` drives the three with a JSON checkpoint (one record per geometry, written
atomically after each) and resumes from it. Energies eV, displacements Å, frequencies cm⁻¹.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field

from qdlab.errors import QdlabError


class GapValidationSettings(BaseModel):
    """Settings of the TB-vs-DFT normal-mode comparison."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    modes: tuple[int, ...] | None = Field(None, description="mode indices; None: select_modes' rule")
    amplitude_A: float = Field(0.2, gt=0, description="largest atomic displacement along a mode, Å")
    signs: tuple[int, ...] = (1, -1)
    params: str = "CsPbBr3-kashikar"
    soc: bool = False
    tolerance: float = Field(0.30, gt=0, description="allowed |ΔE_TB/ΔE_DFT − 1|")
    cp2k: dict = Field(default_factory=dict, description="overrides of engines.cp2k_mo.CP2K_GAP_DEFAULTS")
    command: str = "cp2k.psmp"
    bond_cutoff_A: float = Field(3.6, gt=0, description="Pb–X bond cut-off, Å")
    dft_gap: Literal["homo-lumo", "pb-edge"] = Field(
        "homo-lumo", description="DFT gap compared: HOMO→LUMO, or HOMO→lowest MO with more weight on Pb than Cs")
    periodic: bool = Field(False, description="compare a 3D-periodic cell (frozen phonons of a supercell: CP2K "
                                              "periodic at Γ, TB at Γ of the cell) instead of a cluster")


def has_dft_gap(dft: dict, settings: GapValidationSettings) -> bool:
    """Whether a DFT record holds the gap ``settings.dft_gap`` compares (a pb-edge needs a PDOS run)."""
    return settings.dft_gap == "homo-lumo" or "edge_gap_eV" in dft


def dft_gap_of(dft: dict, settings: GapValidationSettings) -> float:
    """The DFT gap (eV) a record is compared by (see ``GapValidationSettings.dft_gap``)."""
    if not has_dft_gap(dft, settings):
        raise QdlabError("a DFT record has no Pb-derived edge gap (it ran without PDOS): rerun it")
    return float(dft["gap_eV" if settings.dft_gap == "homo-lumo" else "edge_gap_eV"])


@dataclass(frozen=True)
class ModeCharacter:
    """What a mode does: ``cs_weight`` Σ|e|² on Cs (mass-weighted eigenvector); ``stretch`` rms Pb–X
    bond-length change per Å of largest atomic displacement; ``rotation`` fraction of the Pb-relative
    X motion that is a rigid rotation of each octahedron; ``bridge_deg_per_A`` change of the Pb–X–Pb
    angle(s) (largest |·|) per Å of largest displacement."""

    index: int
    frequency_cm1: float
    cs_weight: float
    stretch: float
    rotation: float
    bridge_deg_per_A: float


def displacement_pattern(mode: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Cartesian displacement e/√m of a mass-weighted eigenvector, scaled to a largest atomic displacement of 1 Å."""
    u = mode / np.sqrt(masses)[:, None]
    return u / np.linalg.norm(u, axis=1).max()


def _bonds(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pb indices, and every Pb–X bond (Pb index, X index, lattice offset (Å) that makes
    r[X] − r[Pb] + offset the bond vector: zero in a cluster, the minimum image in a periodic cell)."""
    s = np.array(atoms.get_chemical_symbols())
    pb, x = np.where(s == "Pb")[0], np.where(np.isin(s, ("Cl", "Br", "I")))[0]
    if np.all(atoms.pbc):
        from ase.neighborlist import neighbor_list

        i, j, vec = neighbor_list("ijD", atoms, cutoff)
        m = (s[i] == "Pb") & np.isin(s[j], ("Cl", "Br", "I"))
        bi, bj = i[m], j[m]
        off = vec[m] - (atoms.positions[bj] - atoms.positions[bi])
    else:
        d = np.linalg.norm(atoms.positions[pb][:, None] - atoms.positions[x][None], axis=-1)
        i, j = np.nonzero(d < cutoff)
        bi, bj = pb[i], x[j]
        off = np.zeros((len(bi), 3))
    if len(bi) == 0:
        raise QdlabError(f"no Pb–halide bond shorter than {cutoff} Å")
    return pb, bi, bj, off


def _rotation_fraction(r: np.ndarray, u: np.ndarray, bi: np.ndarray, bj: np.ndarray, pb: np.ndarray,
                       off: np.ndarray) -> float:
    """Share of Σ|u_X − u_Pb|² explained by one rigid rotation ω_Pb per octahedron (u ≈ ω × r)."""
    rel_r, rel_u = r[bj] - r[bi] + off, u[bj] - u[bi]
    cross = np.zeros((len(bi), 3, 3))          # (ω × r) = −[r]ₓ ω
    cross[:, 0, 1], cross[:, 0, 2], cross[:, 1, 2] = rel_r[:, 2], -rel_r[:, 1], rel_r[:, 0]
    cross[:, 1, 0], cross[:, 2, 0], cross[:, 2, 1] = -rel_r[:, 2], rel_r[:, 1], -rel_r[:, 0]
    fitted = 0.0
    for p in pb:
        m = bi == p
        if m.sum() < 2:
            continue
        a, b = cross[m].reshape(-1, 3), rel_u[m].ravel()
        w = np.linalg.lstsq(a, b, rcond=None)[0]
        fitted += float(np.sum((a @ w) ** 2))
    total = float(np.sum(rel_u ** 2))
    return fitted / total if total > 0 else 0.0


def _bridge_angles(r: np.ndarray, bi: np.ndarray, bj: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Pb–X–Pb angles (degrees) of every X bonded to two Pb."""
    out = []
    to_pb = r[bi] - r[bj] - off            # X → Pb bond vectors
    for x in np.unique(bj):
        v = to_pb[bj == x]
        if len(v) >= 2:
            v1, v2 = v[0], v[1]
            out.append(np.degrees(np.arccos(np.clip(v1 @ v2 / np.linalg.norm(v1) / np.linalg.norm(v2), -1, 1))))
    return np.array(out)


def mode_characters(atoms: Atoms, frequencies_cm1: np.ndarray, modes: np.ndarray, masses: np.ndarray,
                    cutoff_A: float = 3.6) -> list[ModeCharacter]:
    """:class:`ModeCharacter` of every mode (``modes`` (M, N, 3) mass-weighted, as in PhononResult)."""
    r = atoms.positions
    pb, bi, bj, off = _bonds(atoms, cutoff_A)
    bond = r[bj] - r[bi] + off
    unit = bond / np.linalg.norm(bond, axis=1)[:, None]
    cs = np.array(atoms.get_chemical_symbols()) == "Cs"
    h = 1e-3
    out = []
    for k, (f, e) in enumerate(zip(frequencies_cm1, modes)):
        u = displacement_pattern(e, masses)
        stretch = np.einsum("bi,bi->b", u[bj] - u[bi], unit)
        bridge = (_bridge_angles(r + h * u, bi, bj, off) - _bridge_angles(r - h * u, bi, bj, off)) / (2 * h)
        out.append(ModeCharacter(k, float(f), float(np.sum(e[cs] ** 2)), float(np.sqrt(np.mean(stretch ** 2))),
                                 _rotation_fraction(r, u, bi, bj, pb, off),
                                 float(bridge[np.argmax(np.abs(bridge))]) if len(bridge) else 0.0))
    return out


def select_modes(chars: list[ModeCharacter], low_cm1: float = 24.0) -> dict[str, int]:
    """One mode per character, by a fixed rule on the mode descriptors only:

    ``rotation``: largest rotation·(1 − Cs weight); ``stretch``: largest stretch·(1 − Cs weight);
    ``bridge-bend``: largest |Pb–X–Pb angle change| among the rest; ``cs-rattle``: largest Cs
    weight; ``low-frequency``: largest stretch·(1 − Cs weight) below ``low_cm1`` (seed 004's 2 meV
    band); ``stretch-2``: the next stretch mode. Each character takes a mode not already taken
    (characters are skipped once every mode is taken).
    """
    score = {
        "rotation": lambda c: c.rotation * (1 - c.cs_weight),
        "stretch": lambda c: c.stretch * (1 - c.cs_weight),
        "bridge-bend": lambda c: abs(c.bridge_deg_per_A),
        "cs-rattle": lambda c: c.cs_weight,
        "low-frequency": lambda c: c.stretch * (1 - c.cs_weight) if c.frequency_cm1 < low_cm1 else -1.0,
        "stretch-2": lambda c: c.stretch * (1 - c.cs_weight),
    }
    taken: dict[str, int] = {}
    for name, fn in score.items():
        free = [c for c in chars if c.index not in taken.values()]
        if free:
            taken[name] = max(free, key=fn).index
    return taken


@dataclass(frozen=True)
class GapGeometry:
    """One geometry of the comparison: ``mode`` None for the reference."""

    name: str
    label: str
    mode: int | None
    sign: int
    atoms: Atoms


def plan_validation(atoms: Atoms, frequencies_cm1: np.ndarray, modes: np.ndarray, masses: np.ndarray,
                    settings: GapValidationSettings) -> tuple[list[GapGeometry], list[ModeCharacter]]:
    """The reference, then every selected mode at +amplitude, then at −amplitude (the order they run in)."""
    if settings.periodic and not (np.all(atoms.pbc) and atoms.cell.volume > 0):
        raise QdlabError("periodic comparison needs a 3D-periodic structure with a cell (pbc True)")
    ref = atoms.copy()
    ref.pbc = settings.periodic
    chars = mode_characters(ref, frequencies_cm1, modes, masses, settings.bond_cutoff_A)
    chosen = ({f"mode-{k}": k for k in settings.modes} if settings.modes is not None else select_modes(chars))
    bad = [k for k in chosen.values() if not 0 <= k < len(modes)]
    if bad:
        raise QdlabError(f"mode index {bad[0]} out of range (0…{len(modes) - 1})")
    plan = [GapGeometry("ref", "reference", None, 0, ref)]
    for sign in settings.signs:
        for label, k in chosen.items():
            a = ref.copy()
            a.positions = ref.positions + sign * settings.amplitude_A * displacement_pattern(modes[k], masses)
            plan.append(GapGeometry(f"m{k}{'p' if sign > 0 else 'm'}", label, k, sign, a))
    return plan, [chars[k] for k in chosen.values()]


def _finished(out: Path, pdos: bool = False) -> bool:
    """A CP2K output that already holds an occupied + unoccupied MO block (reused, not rerun), and
    when ``pdos``, its PDOS files."""
    from qdlab.engines.cp2k_mo import read_cp2k_mos

    try:
        ok = out.is_file() and bool(read_cp2k_mos(out))
    except QdlabError:
        return False
    return ok and (not pdos or any(out.parent.glob("gap-k*-1.pdos")))


#: unoccupied MOs printed with ``dft_gap="pb-edge"`` (Cs7Pb2Br11: the Pb-derived one is the 2nd–4th)
EDGE_NLUMO = 16


def evaluate_tb(geom: GapGeometry, settings: GapValidationSettings) -> float:
    """Tight-binding HOMO–LUMO gap (eV) of one geometry (at Γ of the cell when periodic, as CP2K's)."""
    from qdlab.electronic.tb.cluster import TightBinding

    return TightBinding(settings.params, soc=settings.soc).gap_eV(geom.atoms)


def evaluate_dft(geom: GapGeometry, workdir: str | os.PathLike, settings: GapValidationSettings,
                 restart: str | None = None, timeout_s: float | None = None) -> dict:
    """CP2K PBE single point in ``workdir/<name>`` (reuses a finished output): gap, HOMO, LUMO (eV), seconds."""
    from qdlab.engines.cp2k_mo import cp2k_gap_input, read_cp2k_mos
    from qdlab.store.files import write_text

    d = Path(workdir) / geom.name
    out = d / "gap.out"
    edge = settings.dft_gap == "pb-edge"
    if not _finished(out, edge):
        own = d / "gap-RESTART.wfn"   # an interrupted run resumes from its own last wavefunction
        restart = str(own) if own.is_file() else restart
        over = dict(settings.cp2k) | ({"restart_file": str(Path(restart).resolve())} if restart else {})
        if edge:
            over |= {"pdos": True, "nlumo": max(EDGE_NLUMO, int(over.get("nlumo", 0)))}
        write_text(d / "gap.inp", cp2k_gap_input(geom.atoms, "gap", over))
        try:
            subprocess.run([settings.command, "-i", "gap.inp", "-o", "gap.out"], cwd=d, check=True,
                           timeout=timeout_s, capture_output=True)
        except FileNotFoundError as exc:
            raise QdlabError(f"CP2K executable {settings.command!r} not found: apt-get install cp2k") from exc
        except subprocess.CalledProcessError as exc:
            raise QdlabError(f"CP2K failed for {geom.name} (see {out})") from exc
    mo = read_cp2k_mos(out)[-1]
    text = out.read_text(errors="replace")
    secs = [float(ln.split()[-1]) for ln in text.splitlines() if ln.strip().startswith("CP2K  ") and len(ln.split()) > 5]
    steps = [int(ln.split("converged in")[1].split()[0]) for ln in text.splitlines() if "SCF run converged in" in ln]
    res = {"gap_eV": mo.gap_eV, "homo_eV": mo.homo_eV, "lumo_eV": mo.lumo_eV, "scf_steps": steps[-1] if steps else None,
           "converged": "SCF run NOT converged" not in text and bool(steps), "seconds": secs[0] if secs else None}
    if edge:
        from qdlab.engines.cp2k_mo import edge_gap, read_cp2k_pdos

        res |= edge_gap(read_cp2k_pdos(d))
    return res


@dataclass(frozen=True)
class ValidationRow:
    """One displaced geometry against the reference: gap changes (eV) and their comparison."""

    name: str
    label: str
    mode: int
    sign: int
    frequency_cm1: float
    dft_delta_eV: float
    tb_delta_eV: float

    @property
    def ratio(self) -> float:
        return self.tb_delta_eV / self.dft_delta_eV if self.dft_delta_eV else float("nan")

    @property
    def sign_agrees(self) -> bool:
        return bool(np.sign(self.tb_delta_eV) == np.sign(self.dft_delta_eV))


@dataclass(frozen=True)
class ValidationResult:
    """The comparison table; ``reference`` holds the undisplaced DFT and TB gaps (eV)."""

    rows: tuple[ValidationRow, ...]
    reference: dict
    tolerance: float
    amplitude_A: float

    def passes(self, row: ValidationRow) -> bool:
        return row.sign_agrees and abs(row.ratio - 1.0) <= self.tolerance

    def summary(self) -> dict:
        rows = [asdict(r) | {"ratio": r.ratio, "sign_agrees": r.sign_agrees, "within_tolerance": self.passes(r)}
                for r in self.rows]
        return {"reference": self.reference, "amplitude_A": self.amplitude_A, "tolerance": self.tolerance,
                "rows": rows, "n_pass": sum(self.passes(r) for r in self.rows), "n_rows": len(rows),
                "n_sign_agree": sum(r.sign_agrees for r in self.rows)}

    def table(self) -> str:
        """Markdown table of every row (meV)."""
        head = ("| mode | character | ω (cm⁻¹) | sign | ΔE_g DFT (meV) | ΔE_g TB (meV) | TB/DFT | sign | within "
                f"{self.tolerance:.0%} |\n|---|---|---|---|---|---|---|---|---|")
        lines = [f"| {r.mode} | {r.label} | {r.frequency_cm1:.1f} | {'+' if r.sign > 0 else '−'} | "
                 f"{1e3 * r.dft_delta_eV:+.1f} | {1e3 * r.tb_delta_eV:+.1f} | {r.ratio:.2f} | "
                 f"{'yes' if r.sign_agrees else 'no'} | {'yes' if self.passes(r) else 'no'} |" for r in self.rows]
        return "\n".join([head, *lines])


def assemble(plan: list[GapGeometry], chars: dict[int, ModeCharacter], records: dict[str, dict],
             settings: GapValidationSettings) -> ValidationResult:
    """Rows for every displaced geometry whose record is complete (the reference must be)."""
    if "ref" not in records:
        raise QdlabError("the reference geometry has no result yet")
    ref = records["ref"]
    rows = [ValidationRow(g.name, g.label, int(g.mode), g.sign, chars[g.mode].frequency_cm1,
                          dft_gap_of(records[g.name]["dft"], settings) - dft_gap_of(ref["dft"], settings),
                          records[g.name]["tb_gap_eV"] - ref["tb_gap_eV"])
            for g in plan if g.mode is not None and g.name in records]
    return ValidationResult(tuple(rows), {"dft_gap_eV": dft_gap_of(ref["dft"], settings), "tb_gap_eV": ref["tb_gap_eV"]},
                            settings.tolerance, settings.amplitude_A)


def run_validation(atoms: Atoms, frequencies_cm1: np.ndarray, modes: np.ndarray, masses: np.ndarray,
                   workdir: str | os.PathLike, settings: GapValidationSettings | None = None, *,
                   dft: Callable[[GapGeometry, str | None], dict] | None = None,
                   progress: Callable[[str, dict], None] | None = None, max_new: int | None = None) -> ValidationResult:
    """Plan, evaluate every geometry (checkpoint ``workdir/records.json`` after each), assemble.

    ``max_new``: evaluate at most this many geometries not yet in the checkpoint (0: only assemble
    what is finished, e.g. while a run is still going).

    ``dft(geometry, restart_wfn)`` replaces the CP2K call (tests); by default the displaced
    geometries restart from the reference's converged wavefunction.
    """
    from qdlab.store.files import write_atoms, write_text

    settings = settings or GapValidationSettings()
    wd = Path(workdir)
    plan, chosen = plan_validation(atoms, frequencies_cm1, modes, masses, settings)
    ckpt = wd / "records.json"
    # the DFT records depend on the geometries and the DFT settings only: another TB set, SOC or tolerance
    # reuses them (the TB gaps are recomputed below, milliseconds each)
    # (``periodic`` enters only when True, so a cluster run's checkpoint keeps the key it had before the option)
    key = {"settings": settings.model_dump(mode="json", exclude={"params", "soc", "tolerance"}
                                           | (set() if settings.periodic else {"periodic"})),
           "geometries": [g.name for g in plan],
           "n_atoms": len(atoms), "positions_sha": _sha(atoms.positions)}
    saved = json.loads(ckpt.read_text()) if ckpt.is_file() else {}
    records: dict[str, dict] = saved.get("records", {}) if saved.get("key") == key else {}
    chars = {c.index: c for c in chosen}
    write_text(wd / "modes.json", json.dumps([asdict(c) for c in chosen], indent=1))
    loaded = set(records)
    todo = [g for g in plan if g.name not in records]
    for g in todo[:max_new]:
        write_atoms(wd / g.name / "geometry.extxyz", g.atoms)
        restart = str(wd / "ref" / "gap-RESTART.wfn") if g.mode is not None else None
        if dft is not None:
            res = dft(g, restart)
        else:
            res = evaluate_dft(g, wd, settings, restart if restart and Path(restart).is_file() else None)
        records[g.name] = {"label": g.label, "mode": g.mode, "sign": g.sign, "dft": res,
                           "tb_gap_eV": evaluate_tb(g, settings)}
        write_text(ckpt, json.dumps({"key": key, "records": records}, indent=1))
        if progress:
            progress(g.name, records[g.name])
    for g in plan:   # records of earlier runs: TB with this run's set (new ones were just computed)
        if g.name in loaded:
            records[g.name]["tb_gap_eV"] = evaluate_tb(g, settings)
    return assemble(plan, chars, records, settings)


def _sha(x: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.round(np.asarray(x, float), 8).tobytes()).hexdigest()[:16]
