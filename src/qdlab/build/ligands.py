"""Ligand library: organic ligands from SMILES through RDKit.

Each ligand is its bound (ionic) form with a binding motif given as SMARTS whose atom-mapped atoms
(``[O-:1]C=[O:2]``) are the atoms that sit at the surface site. Geometry: add H, ETKDG embedding,
MMFF optimisation (UFF fallback), all seeded; for flexible ligands several conformers are embedded
and the most extended one (largest distance of any heavy atom from the motif) is kept, so long
chains stand up from the surface instead of curling into it.

The built-in table follows ``LIGANDS.md`` (seed 000 Table S1, seeds 001/002). Users add their own
ligands with :func:`register_ligand`, a ligand file (TOML or JSON, see :func:`load_ligand_file`) or
``qdlab ligands add`` which writes the user library (``$QDLAB_LIGAND_FILE`` or
``~/.config/qdlab/ligands.json``).
"""

from __future__ import annotations

import functools
import json
import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from qdlab.errors import LigandError

# Binding-motif SMARTS (atom-mapped atoms are the motif).
AMMONIUM = "[NX4+:1]"
CARBOXYLATE = "[O-:1]C=[O:2]"
CARBOXYLIC_ACID = "[OX2H1:1]C=[O:2]"
THIOLATE = "[S-:1]"
THIOL = "[SX2H1:1]"
PHOSPHONATE = "[O-:1]P=[O:2]"
SULFONATE = "[O-:1]S(=O)=[O:2]"
AROMATIC_N = "[n:1]"
AROMATIC_S = "[s:1]"


@dataclass(frozen=True)
class Ligand:
    """A ligand species: bound form (SMILES), binding motif (SMARTS) and the site it takes.

    ``site`` is ``"A"`` (replaces an A-site cation) or ``"X"`` (replaces an anion / binds a metal).
    ``charge`` (e) is the total formal charge of the SMILES.
    """

    name: str
    smiles: str
    motif: str
    site: str
    full_name: str = ""
    aliases: tuple[str, ...] = ()
    charge: int = 0
    source: str = "built-in"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["aliases"] = list(self.aliases)
        return d


@dataclass(frozen=True)
class LigandGeometry:
    """3D geometry of a ligand in its local frame (Å).

    The motif centroid is at the origin and the ligand axis (motif centroid → centroid of the other
    heavy atoms) points along +z; the first motif atom lies in the xz plane.
    """

    symbols: tuple[str, ...]
    positions: np.ndarray = field(repr=False)
    motif_mask: np.ndarray = field(repr=False)
    charges: np.ndarray = field(repr=False)  # Gasteiger partial charges, summing to the formal charge

    @property
    def extent(self) -> float:
        """Largest distance of an atom from the motif centroid (Å)."""
        return float(np.linalg.norm(self.positions, axis=1).max())


def _L(name, full, site, smiles, motif, *aliases):
    return Ligand(name=name, smiles=smiles, motif=motif, site=site, full_name=full, aliases=tuple(aliases))


_BUILTIN = [
    _L("MA", "methylammonium", "A", "C[NH3+]", AMMONIUM, "methylammonium"),
    _L("OLA", "oleylammonium", "A", "CCCCCCCC/C=C\\CCCCCCCC[NH3+]", AMMONIUM, "oleylammonium", "OLAm"),
    _L("OctAm", "octylammonium", "A", "CCCCCCCC[NH3+]", AMMONIUM, "octylammonium"),
    _L("BzO", "benzoate", "X", "[O-]C(=O)c1ccccc1", CARBOXYLATE, "benzoate"),
    _L("PhS", "thiophenolate", "X", "[S-]c1ccccc1", THIOLATE, "thiophenolate"),
    _L("PhP", "phenylphosphonate (mono-anion)", "X", "OP(=O)([O-])c1ccccc1", PHOSPHONATE, "phenylphosphonate"),
    _L("OP", "octylphosphonate (mono-anion)", "X", "CCCCCCCCP(=O)([O-])O", PHOSPHONATE, "octylphosphonate"),
    _L("PyS", "2-pyridinesulfonate", "X", "[O-]S(=O)(=O)c1ccccn1", SULFONATE, "2-pyridinesulfonate"),
    _L("DS", "dodecyl sulfate", "X", "CCCCCCCCCCCCOS(=O)(=O)[O-]", SULFONATE, "SDS", "dodecylsulfate"),
    _L("DBS", "dodecylbenzenesulfonate", "X", "CCCCCCCCCCCCc1ccc(cc1)S(=O)(=O)[O-]", SULFONATE,
       "dodecylbenzenesulfonate"),
    _L("BS", "benzenesulfonate", "X", "[O-]S(=O)(=O)c1ccccc1", SULFONATE, "benzenesulfonate"),
    _L("Pyr-2-COO", "pyrrole-2-carboxylate", "X", "[O-]C(=O)c1ccc[nH]1", CARBOXYLATE),
    _L("2-Fur", "2-furoate", "X", "[O-]C(=O)c1ccco1", CARBOXYLATE, "2-furoate", "furoate"),
    _L("TPC", "2-thiophenecarboxylate", "X", "[O-]C(=O)c1cccs1", CARBOXYLATE),
    _L("4-Br-2-TPC", "4-bromothiophene-2-carboxylate", "X", "[O-]C(=O)c1cc(Br)cs1", CARBOXYLATE),
    _L("INC", "isonicotinate", "X", "[O-]C(=O)c1ccncc1", CARBOXYLATE, "isonicotinate"),
    _L("ANT", "anthranilate (2-aminobenzoate)", "X", "[O-]C(=O)c1ccccc1N", CARBOXYLATE, "AbzO", "anthranilate"),
    _L("PIC", "picolinate", "X", "[O-]C(=O)c1ccccn1", CARBOXYLATE, "picolinate"),
    _L("5-Cl-PIC", "5-chloropicolinate", "X", "[O-]C(=O)c1ccc(Cl)cn1", CARBOXYLATE),
    _L("FUS", "fusarate (5-butylpicolinate)", "X", "CCCCc1ccc(nc1)C(=O)[O-]", CARBOXYLATE, "fusarate"),
    _L("2-MPy", "2-mercaptopyridine (thiolate)", "X", "[S-]c1ccccn1", THIOLATE),
    _L("Py", "pyridine (neutral)", "X", "c1ccncc1", AROMATIC_N, "pyridine"),
    _L("Th", "thiophene (neutral)", "X", "c1ccsc1", AROMATIC_S, "thiophene"),
    _L("2-ABA", "anthranilic acid (neutral)", "X", "OC(=O)c1ccccc1N", CARBOXYLIC_ACID, "anthranilic-acid"),
    _L("PDC", "2,5-pyrazinedicarboxylic acid (neutral)", "X", "OC(=O)c1cnc(cn1)C(=O)O", CARBOXYLIC_ACID),
    _L("Cys", "L-cysteine (neutral, as used in seed 000)", "X", "N[C@@H](CS)C(=O)O", THIOL, "cysteine"),
    _L("GSH", "glutathione (neutral, as used in seed 000)", "X",
       "N[C@@H](CCC(=O)N[C@@H](CS)C(=O)NCC(=O)O)C(=O)O", THIOL, "glutathione"),
    _L("OAc", "acetate", "X", "CC(=O)[O-]", CARBOXYLATE, "acetate"),
    _L("OA", "oleate", "X", "CCCCCCCC/C=C\\CCCCCCCC(=O)[O-]", CARBOXYLATE, "oleate"),
    _L("OctAc", "octanoate", "X", "CCCCCCCC(=O)[O-]", CARBOXYLATE, "octanoate"),
]


def _mol_from_smiles(smiles: str, name: str):
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None:
        raise LigandError(f"invalid SMILES for ligand '{name}': {smiles!r}")
    return mol


def _motif_indices(mol, motif: str, name: str) -> list[int]:
    from rdkit import Chem

    patt = Chem.MolFromSmarts(motif)
    if patt is None:
        raise LigandError(f"invalid motif SMARTS for ligand '{name}': {motif!r}")
    matches = mol.GetSubstructMatches(patt)
    if not matches:
        raise LigandError(f"motif {motif!r} does not match the SMILES of ligand '{name}'")
    match = matches[0]
    mapped = [match[a.GetIdx()] for a in patt.GetAtoms() if a.GetAtomMapNum() > 0]
    return mapped or list(match)


def make_ligand(name: str, smiles: str, motif: str, site: str, full_name: str = "",
                aliases: tuple[str, ...] = (), source: str = "user") -> Ligand:
    """Validate a user ligand (SMILES parses, motif matches, site is A or X) and return it."""
    from rdkit import Chem

    if not name or any(c.isspace() for c in name) or ":" in name:
        raise LigandError(f"ligand name {name!r} must be non-empty without spaces or ':'")
    site = site.upper()
    if site not in ("A", "X"):
        raise LigandError(f"ligand '{name}': site must be 'A' (cation) or 'X' (anion), not {site!r}")
    mol = _mol_from_smiles(smiles, name)
    _motif_indices(mol, motif, name)
    charge = Chem.GetFormalCharge(mol)
    return Ligand(name=name, smiles=smiles, motif=motif, site=site, full_name=full_name or name,
                  aliases=tuple(aliases), charge=charge, source=source)


def _with_charge(lig: Ligand) -> Ligand:
    from rdkit import Chem

    q = Chem.GetFormalCharge(_mol_from_smiles(lig.smiles, lig.name))
    return Ligand(**{**asdict(lig), "charge": q, "aliases": lig.aliases})


@functools.cache
def _builtin_table() -> dict[str, Ligand]:
    return {lig.name: _with_charge(lig) for lig in _BUILTIN}


_registered: dict[str, Ligand] = {}


def register_ligand(ligand: Ligand) -> None:
    """Add a ligand for this process (overrides a built-in of the same name)."""
    _registered[ligand.name] = ligand


def user_library_path() -> Path:
    """Path of the persistent user ligand library (JSON)."""
    env = os.environ.get("QDLAB_LIGAND_FILE")
    return Path(env) if env else Path.home() / ".config" / "qdlab" / "ligands.json"


def load_ligand_file(path: str | os.PathLike[str]) -> list[Ligand]:
    """Read ligands from TOML (``[[ligand]]`` tables) or JSON (a list of objects).

    Each entry needs ``name``, ``smiles``, ``motif`` (SMARTS, mapped atoms bind) and ``site``
    (``A`` or ``X``); ``full_name`` and ``aliases`` are optional.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise LigandError(f"cannot read ligand file {p}: {exc.strerror}") from None
    try:
        if p.suffix == ".toml":
            entries = tomllib.loads(text).get("ligand", [])
        else:
            entries = json.loads(text) if text.strip() else []
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise LigandError(f"malformed ligand file {p}: {exc}") from None
    out = []
    for i, e in enumerate(entries):
        missing = {"name", "smiles", "motif", "site"} - set(e)
        if missing:
            raise LigandError(f"ligand file {p}: entry {i} lacks {', '.join(sorted(missing))}")
        out.append(make_ligand(e["name"], e["smiles"], e["motif"], e["site"], e.get("full_name", ""),
                               tuple(e.get("aliases", ())), source=str(p)))
    return out


def user_ligands() -> list[Ligand]:
    """Ligands of the persistent user library (empty if it does not exist)."""
    p = user_library_path()
    return load_ligand_file(p) if p.exists() else []


def save_user_ligand(ligand: Ligand) -> Path:
    """Add or replace ``ligand`` in the persistent user library; returns the library path."""
    from qdlab.store.files import write_text

    p = user_library_path()
    entries = [lig.to_dict() for lig in user_ligands() if lig.name != ligand.name]
    d = ligand.to_dict()
    entries.append({k: d[k] for k in ("name", "smiles", "motif", "site", "full_name", "aliases")})
    write_text(p, json.dumps(entries, indent=2) + "\n")
    return p


def library() -> dict[str, Ligand]:
    """All known ligands by name: built-ins, then the user library, then registered ones."""
    table = dict(_builtin_table())
    for lig in user_ligands():
        table[lig.name] = lig
    table.update(_registered)
    return table


def get_ligand(name: str) -> Ligand:
    """Look a ligand up by name or alias (case-insensitive)."""
    table = library()
    if name in table:
        return table[name]
    key = name.lower()
    for lig in table.values():
        if lig.name.lower() == key or key in (a.lower() for a in lig.aliases):
            return lig
    raise LigandError(f"unknown ligand '{name}' (see `qdlab ligands list`, or add it with "
                      f"`qdlab ligands add NAME SMILES --motif SMARTS --site A|X`)")


def rotation_from_z(n: np.ndarray) -> np.ndarray:
    """Rotation matrix taking +z onto unit vector ``n`` (Rodrigues; its transpose takes ``n`` onto +z)."""
    z = np.array([0.0, 0.0, 1.0])
    c = float(n @ z)
    if c > 1 - 1e-12:
        return np.eye(3)
    if c < -1 + 1e-12:
        return np.diag([1.0, -1.0, -1.0])
    k = np.cross(z, n)
    s = np.linalg.norm(k)
    k = k / s
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * K + (1 - c) * K @ K


@functools.lru_cache(maxsize=256)
def _geometry(smiles: str, motif: str, name: str, seed: int) -> LigandGeometry:
    from rdkit import Chem
    from rdkit.Chem import AllChem, rdMolDescriptors

    mol = Chem.AddHs(_mol_from_smiles(smiles, name))
    motif_idx = _motif_indices(mol, motif, name)
    n_rot = rdMolDescriptors.CalcNumRotatableBonds(mol)
    n_conf = 1 if n_rot <= 2 else min(12, 2 + 2 * n_rot)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed) & 0x7FFFFFFF
    params.numThreads = 1
    conf_ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_conf, params=params))
    if not conf_ids:
        params.useRandomCoords = True
        conf_ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_conf, params=params))
    if not conf_ids:
        raise LigandError(f"RDKit could not embed ligand '{name}' ({smiles})")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=2000)
    elif AllChem.UFFHasAllMoleculeParams(mol):
        AllChem.UFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=2000)
    heavy = np.array([a.GetAtomicNum() > 1 for a in mol.GetAtoms()])
    motif_mask = np.zeros(mol.GetNumAtoms(), dtype=bool)
    motif_mask[motif_idx] = True

    best, best_ext = None, -1.0
    for cid in conf_ids:
        pos = mol.GetConformer(cid).GetPositions()
        ext = float(np.linalg.norm(pos[heavy] - pos[motif_mask].mean(0), axis=1).max())
        if ext > best_ext + 1e-9:
            best, best_ext = pos, ext
    pos = best - best[motif_mask].mean(0)
    rest = heavy & ~motif_mask
    if not rest.any():
        rest = ~motif_mask
    axis = pos[rest].mean(0) if rest.any() else np.zeros(3)
    m = pos[motif_mask]
    if len(m) == 2:  # both binding atoms at the same height: axis perpendicular to their line
        u = (m[1] - m[0]) / np.linalg.norm(m[1] - m[0])
        axis = axis - (axis @ u) * u
    elif len(m) >= 3:  # binding atoms in the surface plane: axis along the plane normal
        normal = np.linalg.svd(m - m.mean(0))[2][-1]
        axis = normal if normal @ axis >= 0 else -normal
    if np.linalg.norm(axis) < 1e-6:
        axis = np.array([0.0, 0.0, 1.0])
    pos = pos @ rotation_from_z(axis / np.linalg.norm(axis))
    # fix the azimuth: first motif atom in the xz plane (makes rotations about z reproducible)
    m0 = pos[motif_idx[0]]
    phi = np.arctan2(m0[1], m0[0]) if np.hypot(m0[0], m0[1]) > 1e-6 else 0.0
    c, s = np.cos(-phi), np.sin(-phi)
    pos = pos @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T

    AllChem.ComputeGasteigerCharges(mol)
    q = np.array([a.GetDoubleProp("_GasteigerCharge") for a in mol.GetAtoms()])
    formal = float(Chem.GetFormalCharge(mol))
    if not np.all(np.isfinite(q)):
        q = np.array([a.GetFormalCharge() for a in mol.GetAtoms()], dtype=float)
    q += (formal - q.sum()) / len(q)  # exact total charge
    symbols = tuple(a.GetSymbol() for a in mol.GetAtoms())
    return LigandGeometry(symbols=symbols, positions=pos, motif_mask=motif_mask, charges=q)


def ligand_geometry(ligand: Ligand, seed: int = 0) -> LigandGeometry:
    """Seeded 3D geometry of ``ligand`` in its local frame (cached per SMILES, motif and seed)."""
    return _geometry(ligand.smiles, ligand.motif, ligand.name, int(seed))


def ligand_atoms(ligand: Ligand, seed: int = 0):
    """The ligand alone as :class:`ase.Atoms` (local frame, motif at the origin)."""
    from ase import Atoms

    g = ligand_geometry(ligand, seed)
    atoms = Atoms(g.symbols, positions=g.positions)
    atoms.set_initial_charges(g.charges)
    atoms.new_array("motif", g.motif_mask.copy())
    atoms.info.update(name=ligand.name, smiles=ligand.smiles, charge=ligand.charge)
    return atoms
