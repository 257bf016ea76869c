"""Attaching ligands to surface sites.

Cationic ligands take surface A sites, anionic (and neutral X-type) ligands surface X sites
(outward-pointing X of the surface octahedra; for PbS the empty anion sites of the next shell).
Counts: ``ceil(f × available sites)`` for a coverage ``f`` in (0, 1], an integer > 1 is a count.
Sites are spread by farthest-point sampling with per-facet quotas; with both cations and anions
present each anion is first paired with the nearest free X site of a cation (mixed pairs adjacent).
A ligand's motif centroid sits at the site, its axis along the outward normal; the rotation about
the normal (and, if needed, a small tilt and outward shift) is chosen to maximise the closest
distance to the core and to already placed ligands, which must not fall below ``min_distance``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from scipy.spatial import cKDTree

from qdlab.build.ligands import Ligand, LigandGeometry, ligand_geometry, rotation_from_z
from qdlab.build.model import NONE
from qdlab.errors import BuildError, LigandError

MIN_DISTANCE = 1.8  # Å, closest allowed ligand–core / ligand–ligand distance
COMFORT = 2.2  # Å, an untilted orientation at least this far from everything is taken as is


@dataclass
class SitePool:
    """Candidate surface sites of one kind (``"A"`` or ``"X"``).

    ``atom_index`` is the core atom a ligand replaces (−1 for an empty site, e.g. on PbS) and
    ``ion_charge`` (e) the formal charge of that atom (0 for empty sites).
    """

    kind: str
    positions: np.ndarray
    normals: np.ndarray
    facets: np.ndarray
    atom_index: np.ndarray
    ion_charge: np.ndarray

    def __len__(self) -> int:
        return len(self.positions)


@dataclass(frozen=True)
class LigandRequest:
    """A ligand and its coverage: fraction in (0, 1] of the available sites or an integer count."""

    ligand: Ligand
    coverage: float = 1.0
    n: int | None = None  # exact count; overrides ``coverage``

    def count(self, available: int) -> int:
        if self.n is not None:
            if self.n > available:
                raise LigandError(f"{self.ligand.name}: {self.n} ligands requested but only {available} "
                                  f"sites are available")
            return int(self.n)
        f = self.coverage
        if not math.isfinite(f) or f <= 0:
            raise LigandError(f"coverage of {self.ligand.name} must be > 0, got {f}")
        if f <= 1:
            n = math.ceil(f * available - 1e-9)
        elif float(f).is_integer():
            n = int(f)
        else:
            raise LigandError(f"coverage {f} of {self.ligand.name}: use a fraction in (0, 1] or an integer count")
        if n > available:
            raise LigandError(f"{self.ligand.name}: {n} ligands requested but only {available} "
                              f"{'A' if self.ligand.site == 'A' else 'X'} sites are available")
        return n


def parse_ligand_spec(spec: str) -> tuple[str, float]:
    """``"MA:0.5"`` → ("MA", 0.5); ``"BzO:12"`` → ("BzO", 12.0); a bare name means full coverage."""
    name, sep, cov = spec.rpartition(":")
    if not sep:
        return spec, 1.0
    try:
        value = float(cov)
    except ValueError:
        raise LigandError(f"ligand spec {spec!r}: coverage {cov!r} is not a number") from None
    return name, value


def quotas(groups: np.ndarray, n: int) -> dict[str, int]:
    """Split ``n`` picks over facet groups proportionally to their sizes (largest remainder)."""
    labels, sizes = np.unique(groups, return_counts=True)
    exact = n * sizes / sizes.sum()
    base = np.floor(exact).astype(int)
    order = np.lexsort((labels, -(exact - base)))
    base[order[: n - base.sum()]] += 1
    return dict(zip(labels.tolist(), np.minimum(base, sizes).tolist()))


def farthest_points(pos: np.ndarray, groups: np.ndarray, n: int, rng: np.random.Generator,
                    fixed: np.ndarray | None = None, available: np.ndarray | None = None) -> list[int]:
    """Pick ``n`` sites spread evenly: farthest-point sampling with per-group quotas.

    ``fixed`` are points already taken (distances count from them); ``available`` masks sites that
    may be picked. Ties are broken by a seeded random order.
    """
    avail = np.ones(len(pos), bool) if available is None else available.copy()
    if n > avail.sum():
        raise BuildError(f"cannot pick {n} sites from {int(avail.sum())} available")
    quota = quotas(groups[avail], n)
    left = np.array([quota.get(g, 0) for g in groups])
    perm = rng.permutation(len(pos))
    p = pos[perm]
    g_left = left[perm]
    ok = avail[perm]
    dmin = np.full(len(p), np.inf)
    if fixed is not None and len(fixed):
        dmin = cKDTree(fixed).query(p)[0]
    chosen: list[int] = []
    group_perm = groups[perm]
    for _ in range(n):
        score = np.where(ok & (g_left > 0), dmin, -1.0)
        k = int(np.argmax(score))
        chosen.append(int(perm[k]))
        ok[k] = False
        g_left[group_perm == group_perm[k]] -= 1
        dmin = np.minimum(dmin, np.linalg.norm(p - p[k], axis=1))
    return chosen


def _candidate_rotations(offset: float, n_azimuth: int = 24, tilts_deg=(15.0, 30.0),
                         n_tilt_dirs: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Local-frame rotations: azimuth about z, then a tilt of the axis. Returns (R, tilted flag)."""
    phis = offset + np.arange(n_azimuth) * 2 * np.pi / n_azimuth
    mats, tilted = [], []
    for tilt in (0.0, *tilts_deg):
        t = np.radians(tilt)
        for tdir in ([0.0] if tilt == 0 else np.arange(n_tilt_dirs) * 2 * np.pi / n_tilt_dirs):
            ct, st = np.cos(t), np.sin(t)
            # tilt about the in-plane axis (cos tdir, sin tdir, 0)
            u = np.array([np.cos(tdir), np.sin(tdir), 0.0])
            K = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
            T = np.eye(3) + st * K + (1 - ct) * K @ K
            for phi in phis:
                c, s = np.cos(phi), np.sin(phi)
                Rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
                mats.append(T @ Rz)
                tilted.append(tilt > 0)
    return np.array(mats), np.array(tilted)


class _Placer:
    """Places ligand geometries one by one, keeping every new atom ≥ min_distance from the rest."""

    def __init__(self, core_positions: np.ndarray, rng: np.random.Generator, min_distance: float,
                 periodic_xy: tuple[float, float] | None = None):
        # periodic slabs: toroidal x, y through cKDTree's boxsize (z made effectively open)
        self.box = None
        if periodic_xy is not None:
            self.box = np.array([periodic_xy[0], periodic_xy[1], 1e6])
            self.z0 = 5e5 - core_positions[:, 2].mean()
        self.tree = self._tree(core_positions)
        self.placed = np.empty((0, 3))
        self.rng = rng
        self.min_distance = min_distance
        offset = float(rng.uniform(0, 2 * np.pi / 24))
        self.rot, self.tilted = _candidate_rotations(offset)
        self._wide = None  # larger search (more tilts, finer azimuth), built on first need
        self._offset = offset

    def _wrap(self, pts: np.ndarray) -> np.ndarray:
        if self.box is None:
            return pts
        out = np.mod(pts + np.array([0.0, 0.0, self.z0]), self.box)
        return np.where(out >= self.box, 0.0, out)  # mod can round up to the box length

    def _tree(self, pts: np.ndarray) -> cKDTree:
        return cKDTree(self._wrap(pts), boxsize=self.box)

    def _closest(self, pts: np.ndarray, center: np.ndarray, reach: float) -> np.ndarray:
        """Closest distance of each point (…, 3) to core atoms and placed ligand atoms."""
        flat = self._wrap(pts.reshape(-1, 3))
        d = self.tree.query(flat, distance_upper_bound=reach + 6.0)[0]
        if len(self.placed):
            near = self.placed
            if self.box is None:
                near = near[np.linalg.norm(near - center, axis=1) < 2 * reach + 7.0]
            if len(near):
                d = np.minimum(d, self._tree(near).query(flat, distance_upper_bound=reach + 6.0)[0])
        return d.reshape(pts.shape[:-1]).min(-1)

    def place(self, geom: LigandGeometry, site: np.ndarray, normal: np.ndarray, name: str) -> np.ndarray:
        R0 = rotation_from_z(normal)
        best_d, best_pos = -1.0, None
        for wide in (False, True):
            if wide and self._wide is None:
                self._wide = _candidate_rotations(self._offset, 36, (10.0, 20.0, 30.0, 40.0, 50.0), 8)
            rot, tilted = self._wide if wide else (self.rot, self.tilted)
            local = np.einsum("kij,aj->kai", rot, geom.positions)  # (K, m, 3)
            for shift in (0.0, 0.3, 0.6, 0.9):
                pts = site + shift * normal + local @ R0.T
                d = self._closest(pts, site, geom.extent)
                k_flat = int(np.argmax(np.where(~tilted, d, -1.0)))
                k = k_flat if d[k_flat] >= COMFORT else int(np.argmax(d))
                if d[k] > best_d:
                    best_d, best_pos = float(d[k]), pts[k]
                if best_d >= self.min_distance:
                    break
            if best_d >= self.min_distance:
                break
        if best_d < self.min_distance:
            raise LigandError(f"cannot place {name} at the site at {np.round(site, 2).tolist()} Å: closest "
                              f"distance {best_d:.2f} Å < {self.min_distance} Å; lower the coverage")
        self.placed = np.vstack([self.placed, best_pos])
        return best_pos


@dataclass
class AttachResult:
    """Outcome of :func:`attach_ligands`."""

    atoms: Atoms
    counts: dict[str, int]
    removed_atoms: int


def _pair_sites(a_pos: np.ndarray, x_pool: SitePool, cation_sites: list[int], n: int,
                avail: np.ndarray) -> list[int]:
    """For each cation site in order, the nearest free X site (ties: farthest from chosen X)."""
    chosen: list[int] = []
    for ci in cation_sites[:n]:
        free = np.flatnonzero(avail)
        if not len(free):
            break
        d = np.linalg.norm(x_pool.positions[free] - a_pos[ci], axis=1)
        near = free[d <= d.min() + 0.1]
        if chosen and len(near) > 1:
            dc = cKDTree(x_pool.positions[chosen]).query(x_pool.positions[near])[0]
            near = near[np.argsort(-dc, kind="stable")]
        chosen.append(int(near[0]))
        avail[near[0]] = False
    return chosen


def _assign(names: list[str], counts: list[int]) -> list[str]:
    """Interleave species over an ordered site list so each is spread evenly (round-robin)."""
    seq: list[str] = []
    left = dict(zip(names, counts))
    while any(left.values()):
        for nm in names:
            if left[nm] > 0:
                seq.append(nm)
                left[nm] -= 1
    return seq


def _requests_by_site(requests: Sequence[LigandRequest], pools: dict[str, SitePool]
                      ) -> dict[str, list[tuple[Ligand, int]]]:
    """(ligand, count) per site kind, checked against the sites the model offers."""
    by_site: dict[str, list[tuple[Ligand, int]]] = {"A": [], "X": []}
    for req in requests:
        pool = pools.get(req.ligand.site)
        if pool is None or len(pool) == 0:
            raise LigandError(f"{req.ligand.name} binds {req.ligand.site} sites, which this model does not offer")
        by_site[req.ligand.site].append((req.ligand, req.count(len(pool))))
    for kind, reqs in by_site.items():
        total = sum(c for _, c in reqs)
        if reqs and total > len(pools[kind]):
            raise LigandError(f"{total} ligands requested on {kind} sites but only {len(pools[kind])} are available")
    return by_site


def _assigned(sites: list[int], reqs: list[tuple[Ligand, int]]) -> list[tuple[int, Ligand]]:
    table = {lig.name: lig for lig, _ in reqs}
    seq = _assign([lig.name for lig, _ in reqs], [c for _, c in reqs])
    return [(s, table[nm]) for s, nm in zip(sites, seq)]


def _choose_x_sites(pools: dict[str, SitePool], reqs: list[tuple[Ligand, int]], a_sites: list[int],
                    rng: np.random.Generator, pair_adjacent: bool) -> tuple[list[tuple[int, Ligand]], list[int]]:
    """X sites for the X-binding ligands (next to the chosen A sites first, then spread out) and
    the atoms of further X sites a dianion vacates to keep the charge."""
    pool = pools["X"]
    n = sum(c for _, c in reqs)
    avail = np.ones(len(pool), bool)
    x_sites: list[int] = []
    if pair_adjacent and a_sites:
        x_sites = _pair_sites(pools["A"].positions, pool, a_sites, n, avail)
    rest = n - len(x_sites)
    if rest:
        fixed = np.vstack([pools["A"].positions[a_sites]] + ([pool.positions[x_sites]] if x_sites else [])) \
            if a_sites else (pool.positions[x_sites] if x_sites else None)
        x_sites += farthest_points(pool.positions, pool.facets, rest, rng, fixed=fixed, available=avail)
        avail[x_sites] = False
    chosen = _assigned(x_sites, reqs)
    extra_removed: list[int] = []
    for s, lig in chosen:  # dianions on X: also vacate the nearest free X
        q_ion = pool.ion_charge[s]
        if q_ion < 0 and lig.charge < q_ion:
            for _ in range(int(round((lig.charge - q_ion) / q_ion))):
                free = np.flatnonzero(avail)
                if not len(free):
                    raise LigandError(f"no free X site left to compensate the charge of {lig.name}")
                j = free[np.argmin(np.linalg.norm(pool.positions[free] - pool.positions[s], axis=1))]
                avail[j] = False
                extra_removed.append(int(pool.atom_index[j]))
    return chosen, extra_removed


def _ligand_block(lig: Ligand, geom, pos: np.ndarray, lig_id: int, facet: str | None) -> Atoms:
    """One placed ligand with its per-atom labels."""
    blk = Atoms(geom.symbols, positions=pos)
    m = len(blk)
    blk.set_initial_charges(geom.charges)
    blk.new_array("role", np.full(m, "ligand", dtype="U8"))
    blk.new_array("ligand", np.full(m, lig.name, dtype="U16"))
    blk.new_array("ligand_id", np.full(m, lig_id, dtype=int))
    blk.new_array("depth", np.full(m, -1, dtype=int))
    blk.new_array("facet", np.full(m, facet or NONE, dtype="U16"))
    blk.new_array("motif", geom.motif_mask.copy())
    blk.new_array("shell", np.zeros(m, dtype=bool))
    return blk


def _place_all(atoms: Atoms, core: Atoms, chosen: dict[str, list[tuple[int, Ligand]]], pools: dict[str, SitePool],
               rng: np.random.Generator, seed: int, min_distance: float,
               progress: Callable[[int, int], None] | None) -> list[Atoms]:
    """Ligand blocks placed on their sites without clashes (periodic in x, y for slabs)."""
    periodic_xy = None
    if atoms.pbc[0] and atoms.pbc[1]:
        if not atoms.cell.orthorhombic or atoms.pbc[2]:
            raise BuildError("ligands on periodic models need an orthogonal cell periodic in x and y only")
        periodic_xy = (atoms.cell[0, 0], atoms.cell[1, 1])
    placer = _Placer(core.positions, rng, min_distance, periodic_xy)
    blocks: list[Atoms] = []
    total = len(chosen["A"]) + len(chosen["X"])
    for kind in ("A", "X"):
        pool = pools.get(kind)
        for s, lig in chosen[kind]:
            geom = ligand_geometry(lig, seed)
            pos = placer.place(geom, pool.positions[s], pool.normals[s], lig.name)
            blocks.append(_ligand_block(lig, geom, pos, len(blocks), pool.facets[s]))
            if progress:
                progress(len(blocks), total)
    return blocks


def attach_ligands(atoms: Atoms, requests: Sequence[LigandRequest], pools: dict[str, SitePool],
                   seed: int, *, min_distance: float = MIN_DISTANCE, pair_adjacent: bool = True,
                   progress: Callable[[int, int], None] | None = None) -> AttachResult:
    """Replace surface sites by ligands; returns a new :class:`Atoms` with ligand labels.

    Charge bookkeeping: each ligand carries its own formal charge (Gasteiger partial charges per
    atom); the replaced ion is removed. A ligand whose charge is more negative than the ion it
    replaces (a dianion on an X site) also removes the nearest free X site of the pool.
    """
    rng = np.random.default_rng(seed)
    by_site = _requests_by_site(requests, pools)
    chosen: dict[str, list[tuple[int, Ligand]]] = {"A": [], "X": []}
    a_sites: list[int] = []
    if by_site["A"]:
        pool = pools["A"]
        a_sites = farthest_points(pool.positions, pool.facets, sum(c for _, c in by_site["A"]), rng)
        chosen["A"] = _assigned(a_sites, by_site["A"])
    extra_removed: list[int] = []
    if by_site["X"]:
        chosen["X"], extra_removed = _choose_x_sites(pools, by_site["X"], a_sites, rng, pair_adjacent)
    remove = [int(pools[k].atom_index[s]) for k in ("A", "X") for s, _ in chosen[k] if pools[k].atom_index[s] >= 0]
    remove += [i for i in extra_removed if i >= 0]
    keep = np.ones(len(atoms), bool)
    keep[remove] = False
    core = atoms[keep]
    blocks = _place_all(atoms, core, chosen, pools, rng, seed, min_distance, progress)
    out = core.copy()
    for extra in [k for k in out.arrays if k not in ("numbers", "positions", "role", "ligand", "ligand_id",
                                                        "depth", "facet", "motif", "shell", "initial_charges")]:
        del out.arrays[extra]
    for blk in blocks:
        out.extend(blk)
    counts: dict[str, int] = {}
    for k in ("A", "X"):
        for _, lig in chosen[k]:
            counts[lig.name] = counts.get(lig.name, 0) + 1
    return AttachResult(atoms=out, counts=counts, removed_atoms=len(remove))
