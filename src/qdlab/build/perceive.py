"""Perception of structures made elsewhere: the labels qdlab's builder writes, recovered from
elements and positions alone (plain xyz, POSCAR, CIF).

1. Molecular fragments: covalent bonds between non-metal atoms (distance < 1.25 × the sum of
   covalent radii, ``ase.data.covalent_radii``); connected components of ≥ 2 atoms are ligands.
2. Each fragment is matched to the ligand library by graph: the library SMILES (bound form,
   explicit H, RDKit) and the fragment are element-labelled graphs compared by isomorphism
   (networkx VF2). A match gives the ligand name, its motif atoms and its per-atom charges
   (Gasteiger, summing to the ligand's formal charge); no match is reported by formula as unknown.
3. Core roles: halide/chalcogen → ``X``, alkali/alkaline-earth → ``A``, other metals → ``B``.
   Perovskite (A or A-site ligands present, halide X) or rock salt (chalcogen X, no A).
4. Depth (half unit cells, 0 = surface) and facets from the lattice: axes from the B–B (perovskite)
   or B–X (rock salt) neighbour vectors, lattice constant from their median length. Perovskite:
   an A–X-terminated cuboid as in :func:`qdlab.build.perovskite.depth_and_facet`; rock salt:
   an octahedron bounded by {111} (depth = m − (|i|+|j|+|k|), octant facet labels, as
   :func:`qdlab.build.rocksalt.octahedron`) or a {100} cuboid, whichever predicts the core's atom
   count better. Ligand atoms get depth −1 and the facet of the nearest core atom.
5. Charges: formal ionic charges of the core (B from neutrality) plus the ligands' charges;
   ``info["charge"]`` is their rounded sum.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from qdlab.build.model import NONE, new_labels

NONMETALS = {"H", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Br", "I", "Se", "Te", "As"}
HALOGENS = {"F", "Cl", "Br", "I"}
CHALCOGENS = {"O", "S", "Se", "Te"}
A_CATIONS = {"Li", "Na", "K", "Rb", "Cs", "Be", "Mg", "Ca", "Sr", "Ba"}
BOND_SCALE = 1.25
AXES = "xyz"


@dataclass(frozen=True)
class Perception:
    """What was recognised in a structure (counts are per role / ligand name / fragment formula)."""

    kind: str
    roles: dict[str, int]
    ligands: dict[str, int]
    unknown_fragments: dict[str, int]
    lattice_A: float | None
    shape: str | None
    layers: dict[int, int] = field(default_factory=dict)
    facets: dict[str, int] = field(default_factory=dict)
    charge: int | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = {str(k): v for k, v in self.layers.items()}
        return d


def hill(symbols) -> str:
    c = Counter(symbols)
    order = sorted(c, key=lambda s: (s != "C", s != "H", s))
    return "".join(f"{s}{c[s] if c[s] > 1 else ''}" for s in order)


def fragments(atoms: Atoms) -> list[np.ndarray]:
    """Index arrays of the molecular fragments (covalently bonded non-metal atoms, ≥ 2 atoms)."""
    sym = np.array(atoms.get_chemical_symbols())
    nm = np.flatnonzero(np.isin(sym, list(NONMETALS)))
    if nm.size < 2:
        return []
    r = covalent_radii[atoms.numbers[nm]]
    pairs = cKDTree(atoms.positions[nm]).query_pairs(BOND_SCALE * 2 * r.max(), output_type="ndarray")
    if len(pairs) == 0:
        return []
    i, j = pairs.T
    d = np.linalg.norm(atoms.positions[nm[i]] - atoms.positions[nm[j]], axis=1)
    ok = d < BOND_SCALE * (r[i] + r[j])
    graph = coo_matrix((np.ones(ok.sum()), (i[ok], j[ok])), shape=(nm.size, nm.size))
    n, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp, minlength=n)
    return [nm[comp == c] for c in range(n) if sizes[c] >= 2]


def _fragment_graph(atoms: Atoms, idx: np.ndarray):
    import networkx as nx

    g = nx.Graph()
    sym = atoms.get_chemical_symbols()
    for k, a in enumerate(idx):
        g.add_node(k, el=sym[a])
    pos = atoms.positions[idx]
    r = covalent_radii[atoms.numbers[idx]]
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    ii, jj = np.nonzero(np.triu(d < BOND_SCALE * (r[:, None] + r[None]), 1))
    g.add_edges_from(zip(ii.tolist(), jj.tolist()))
    return g


@functools.lru_cache(maxsize=256)
def _library_entry(name: str, smiles: str, motif: str):
    """(formula, graph, motif mask, Gasteiger charges) of a library ligand in its bound form."""
    import networkx as nx
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from qdlab.build.ligands import _mol_from_smiles, _motif_indices

    mol = Chem.AddHs(_mol_from_smiles(smiles, name))
    g = nx.Graph()
    for a in mol.GetAtoms():
        g.add_node(a.GetIdx(), el=a.GetSymbol())
    g.add_edges_from((b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds())
    mask = np.zeros(mol.GetNumAtoms(), bool)
    mask[_motif_indices(mol, motif, name)] = True
    AllChem.ComputeGasteigerCharges(mol)
    q = np.array([a.GetDoubleProp("_GasteigerCharge") for a in mol.GetAtoms()])
    if not np.isfinite(q).all():
        q = np.array([a.GetFormalCharge() for a in mol.GetAtoms()], float)
    q += (Chem.GetFormalCharge(mol) - q.sum()) / len(q)
    return hill(a.GetSymbol() for a in mol.GetAtoms()), g, mask, q


def match_fragment(atoms: Atoms, idx: np.ndarray, library: dict):
    """``(ligand, motif mask, charges)`` in fragment order for the library ligand whose graph is
    isomorphic to the fragment's, else None."""
    from networkx.algorithms.isomorphism import GraphMatcher

    formula = hill(atoms.symbols[idx])
    g = None
    for lig in library.values():
        try:
            lf, lg, mask, q = _library_entry(lig.name, lig.smiles, lig.motif)
        except Exception:  # noqa: BLE001 - a broken user ligand never stops perception
            continue
        if lf != formula:
            continue
        g = g if g is not None else _fragment_graph(atoms, idx)
        gm = GraphMatcher(g, lg, node_match=lambda a, b: a["el"] == b["el"])
        if gm.is_isomorphic():
            order = np.array([gm.mapping[k] for k in range(len(idx))])
            return lig, mask[order], q[order]
    return None


def _axes(vectors: np.ndarray) -> np.ndarray:
    """Orthonormal lattice axes (rows) from nearest-neighbour vectors of a cubic lattice."""
    if len(vectors) < 2:
        return np.eye(3)
    u = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cos = np.abs(u @ u.T)
    e1 = u[np.argmax((cos > 0.95).sum(1))]
    perp = u[np.abs(u @ e1) < 0.3]
    if len(perp) == 0:
        return np.eye(3)
    e2 = perp[np.argmax((np.abs(perp @ perp.T) > 0.95).sum(1))]
    e2 = e2 - (e2 @ e1) * e1
    e2 /= np.linalg.norm(e2)
    axes = np.array([e1, e2, np.cross(e1, e2)])
    # order and sign like the lab frame where possible (an axis-aligned model keeps x, y, z)
    perm = np.argmax(np.abs(axes), axis=1)
    if sorted(perm.tolist()) == [0, 1, 2]:
        axes = axes[np.argsort(perm)]
        axes *= np.where(np.diag(axes) < 0, -1.0, 1.0)[:, None]
    return axes


def _neighbour_vectors(p: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
    """Vectors from each point of ``p`` to its nearest point of ``q`` (or other point of ``p``) and
    every point within 1.2× that distance."""
    q = p if q is None else q
    tree = cKDTree(q)
    d, _ = tree.query(p, k=2 if q is p else 1)
    d0 = float(np.median(d[:, 1] if q is p else d))
    pairs = tree.query_ball_point(p, 1.2 * d0)
    vec = [q[j] - p[i] for i, js in enumerate(pairs) for j in js if q is not p or j != i]
    return np.asarray(vec).reshape(-1, 3), d0


def _cuboid_depth(u: np.ndarray, lo: np.ndarray, hi: np.ndarray, unit: float):
    """Depth (in ``unit`` steps) and builder-style facet labels inside the box [lo, hi] (frac coords)."""
    lo_d = u - lo
    hi_d = hi - u
    dist = np.minimum(lo_d, hi_d)
    dmin = dist.min(1)
    depth = np.rint(dmin / unit).astype(int)
    facet = np.full(len(u), NONE, dtype="U16")
    for i in np.flatnonzero(depth <= 1):
        label = ""
        for ax in range(3):
            if abs(dist[i, ax] - dmin[i]) > 0.25 * unit:
                continue
            if abs(lo_d[i, ax] - dmin[i]) <= 0.25 * unit:
                label += "-" + AXES[ax]
            if abs(hi_d[i, ax] - dmin[i]) <= 0.25 * unit:
                label += "+" + AXES[ax]
        facet[i] = label or NONE
    return depth, facet


def _core_geometry(atoms: Atoms, core: np.ndarray, role: np.ndarray, kind: str):
    """(depth, facet, lattice constant Å, shape) of the core atoms."""
    pos = atoms.positions[core]
    b = pos[role[core] == "B"]
    x = pos[role[core] == "X"]
    if kind == "perovskite" and len(b) >= 2:
        vec, a = _neighbour_vectors(b)
    elif len(b) >= 1 and len(x) >= 1:
        vec, half = _neighbour_vectors(b, x)
        a = 2 * half
    else:
        return np.zeros(len(core), int), np.full(len(core), NONE, dtype="U16"), None, None
    axes = _axes(vec)
    u = pos @ axes.T / a  # fractional coordinates along the lattice axes
    if kind == "perovskite":
        ub = b @ axes.T / a
        lo, hi = ub.min(0) - 0.5, ub.max(0) + 0.5
        depth, facet = _cuboid_depth(u, lo, hi, 0.5)
        return depth, facet, float(a), "cuboid"
    g = np.rint((u - u.mean(0)) * 2)  # integer a/2 grid of the rock-salt sites
    s = np.abs(g).sum(1)
    m = int(s.max())
    n_oct = sum(1 for i in range(-m, m + 1) for j in range(-m, m + 1) for k in range(-m, m + 1)
                if abs(i) + abs(j) + abs(k) <= m) if m < 40 else np.inf
    span = np.rint(g.max(0) - g.min(0)).astype(int) + 1
    n_box = int(np.prod(span))
    if abs(n_oct - len(core)) <= abs(n_box - len(core)):
        depth = (m - s).astype(int)
        gi = g.astype(int)
        facet = np.array(["".join("+" if v > 0 else "-" if v < 0 else "0" for v in p) if d <= 1 else NONE
                          for p, d in zip(gi, depth)], dtype="U16")
        return depth, facet, float(a), "octahedron"
    depth, facet = _cuboid_depth(g / 2, g.min(0) / 2, g.max(0) / 2, 0.5)
    return depth, facet, float(a), "cuboid"


def _core_roles(sym: np.ndarray, core: np.ndarray) -> np.ndarray:
    role = np.full(len(sym), "ligand", dtype="U8")
    cs = sym[core]
    role[core] = np.where(np.isin(cs, list(HALOGENS | CHALCOGENS)), "X", np.where(np.isin(cs, list(A_CATIONS)), "A", "B"))
    return role


def _formal_charges(sym: np.ndarray, role: np.ndarray, core: np.ndarray, kind: str) -> np.ndarray:
    q = np.zeros(len(sym))
    for i in core:
        if role[i] == "X":
            q[i] = -1 if sym[i] in HALOGENS else -2
        elif role[i] == "A":
            q[i] = 1 if sym[i] in {"Li", "Na", "K", "Rb", "Cs"} else 2
    b = core[role[core] == "B"]
    if b.size:
        x_charge = min((q[i] for i in core if role[i] == "X"), default=-1)
        q[b] = 2 if kind == "perovskite" and x_charge == -1 else -x_charge
    return q


def perceive(atoms: Atoms, library: dict | None = None) -> tuple[Atoms, Perception]:
    """A copy of ``atoms`` with the builder's label arrays, initial charges and ``info["charge"]``
    perceived from elements and positions, and a summary of what was found."""
    from qdlab.build.ligands import library as ligand_library

    lib = library if library is not None else ligand_library()
    out = atoms.copy()
    for key in ("role", "ligand", "ligand_id", "depth", "facet", "motif", "shell"):
        out.arrays.pop(key, None)  # partial labels are replaced as a whole
    sym = np.array(out.get_chemical_symbols())
    frags = fragments(out)
    in_frag = np.zeros(len(out), bool)
    for f in frags:
        in_frag[f] = True
    core = np.flatnonzero(~in_frag)
    role = _core_roles(sym, core)
    lig_name = np.full(len(out), NONE, dtype="U16")
    lig_id = np.full(len(out), -1, int)
    motif = np.zeros(len(out), bool)
    charges = np.zeros(len(out))
    found: Counter = Counter()
    unknown: Counter = Counter()
    a_site_ligands = False
    for k, f in enumerate(frags):
        lig_id[f] = k
        hit = match_fragment(out, f, lib)
        if hit is None:
            lig_name[f] = "unknown"
            unknown[hill(sym[f])] += 1
            continue
        lig, mask, q = hit
        lig_name[f], motif[f], charges[f] = lig.name, mask, q
        found[lig.name] += 1
        a_site_ligands |= lig.site == "A"
    has_a = bool((role[core] == "A").any()) or a_site_ligands
    x_halide = bool(np.isin(sym[core][role[core] == "X"], list(HALOGENS)).any())
    has_b = bool((role[core] == "B").any())
    has_x = bool((role[core] == "X").any())
    kind = ("perovskite" if (has_b and has_a and x_halide) else "rocksalt" if (has_b and has_x)
            else "molecular" if not core.size else "other")
    charges[core] = _formal_charges(sym, role, core, kind)[core]
    depth = np.full(len(out), -1, int)
    facet = np.full(len(out), NONE, dtype="U16")
    lattice = shape = None
    if core.size and kind in ("perovskite", "rocksalt"):
        depth[core], facet[core], lattice, shape = _core_geometry(out, core, role, kind)
        if in_frag.any():
            _, near = cKDTree(out.positions[core]).query(out.positions[in_frag])
            facet[in_frag] = facet[core][near]
    new_labels(out, role, depth, facet)
    out.arrays["ligand"] = lig_name
    out.arrays["ligand_id"] = lig_id
    out.arrays["motif"] = motif
    out.set_initial_charges(charges)
    net = int(round(float(charges.sum())))
    out.info.update(charge=net, perceived=True, **({"lattice_A": lattice} if lattice else {}))
    roles = {r: int(n) for r, n in sorted(Counter(role.tolist()).items())}
    layers = {int(d): int(n) for d, n in sorted(Counter(depth[core].tolist()).items())} if lattice else {}
    facets = dict(sorted(Counter(facet[core][depth[core] == 0].tolist()).items())) if lattice else {}
    return out, Perception(kind, roles, dict(sorted(found.items())), dict(sorted(unknown.items())), lattice, shape,
                           layers, {k: int(v) for k, v in facets.items()}, net)


def has_labels(atoms: Atoms) -> bool:
    """Whether ``atoms`` carries the builder's role and depth labels."""
    return "role" in atoms.arrays and "depth" in atoms.arrays


def ensure_labels(atoms: Atoms) -> Atoms:
    """``atoms`` itself when it carries labels, else a perceived copy."""
    return atoms if has_labels(atoms) else perceive(atoms)[0]


def describe(atoms: Atoms) -> tuple[dict, Atoms]:
    """The ``qdlab info`` summary of a model; for one without labels, what perception found
    (``perceived``) and the labelled copy (the model itself when it carries labels)."""
    from qdlab.build.model import summary

    if has_labels(atoms):
        return summary(atoms), atoms
    labelled, seen = perceive(atoms)
    s = summary(labelled)
    s["ligands"] = seen.ligands
    s["perceived"] = seen.to_dict()
    return s, labelled
