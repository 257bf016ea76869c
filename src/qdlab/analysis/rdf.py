"""Radial and angular distribution functions of a finite cluster (seeds 000, 001; SCIENCE.md §6).

RDF. For atom selections A and B, ordered pairs (a, b) with a ≠ b are histogrammed over all
analysed frames into bins of width dr on [0, r_max) (Å). A cluster in vacuum has no box, so the
ideal-gas reference density needs a chosen volume V:

    g_AB(r) = C(r) / (F · N_pairs / V · 4π/3 (r₊³ − r₋³)),   N_pairs = N_A N_B − |A ∩ B|,

with C(r) the pair count in the shell [r₋, r₊) and F the number of frames (the convention of
MDAnalysis ``InterRDF`` with a box of volume V). ``volume="hull"`` (default) uses the convex-hull
volume of all atoms (mean over up to 20 evenly spaced frames), ``"sphere"`` a sphere of radius
max |r_i − r_centroid| (first frame), or a number in Å³. g → 1 at large r only in a bulk; in a
cluster it falls to 0 beyond the particle size. The coordination number

    n_AB(r) = (number of B within r of an A atom, averaged over A atoms and frames)
            = Σ_{shells ≤ r} C / (F · N_A)

does not depend on V and is what to compare between systems.

ADF. For triplets A–B–C with the angle at the central atom B: every B atom's A neighbours within
``cutoffs[0]`` and C neighbours within ``cutoffs[1]`` (Å); every pair of distinct neighbours (a, c)
gives one angle ∠a–b–c. When A and C are the same selection with one cutoff, each unordered pair
{a, c} counts once; otherwise ordered pairs (a within r_AB, c within r_CB, a ≠ c) are counted. Histogram in degrees on
[0, 180], normalised to a probability density (∫ p dθ = 1), plus the mean number of angles per frame.

Distances are computed directly (differences, no r² = |a|² + |b|² − 2a·b cancellation) over blocks
of frames with numpy; no loops over atoms or atom pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qdlab.analysis.trajectory import Frames, Trajectory, load_trajectory
from qdlab.errors import QdlabError

#: bytes of temporary distance arrays per block of frames
_BLOCK_BYTES = 48 * 2 ** 20


@dataclass(frozen=True)
class RDF:
    """g_AB(r) on bin centres ``r_A`` (Å); ``coordination`` n_AB(r) at the bins' upper edges ``edges_A[1:]``.

    ``counts`` are the summed ordered-pair counts per bin over all frames; ``volume_A3`` the
    normalisation volume; ``n_a``/``n_b`` the selection sizes; ``n_pairs`` = N_A N_B − |A ∩ B|.
    """

    pair: str
    r_A: np.ndarray
    edges_A: np.ndarray
    g: np.ndarray
    coordination: np.ndarray
    counts: np.ndarray
    n_frames: int
    n_a: int
    n_b: int
    n_pairs: int
    volume_A3: float
    volume_mode: str

    def first_peak(self) -> float:
        """Position (Å) of the maximum of g(r)."""
        return float(self.r_A[int(np.argmax(self.g))])

    def first_minimum(self, smooth_A: float = 0.1) -> float:
        """Position (Å) of the first minimum after the main peak of g(r) smoothed by a Gaussian of
        σ = ``smooth_A`` (the usual coordination-shell boundary); NaN if g has no minimum there."""
        from scipy.ndimage import gaussian_filter1d
        from scipy.signal import find_peaks

        dr = self.edges_A[1] - self.edges_A[0]
        gs = gaussian_filter1d(self.g.astype(float), max(smooth_A / dr, 1e-9), mode="nearest")
        top = int(np.argmax(gs))
        minima, props = find_peaks(-gs[top:], prominence=0.02 * float(gs[top]), plateau_size=1)
        # a flat g = 0 gap between shells counts from its start
        return float(self.r_A[top + props["left_edges"][0]]) if len(minima) else float("nan")

    def coordination_at(self, r: float) -> float:
        """n_AB(r): B neighbours within r of an A atom (linear interpolation between bin edges)."""
        return float(np.interp(r, self.edges_A, np.r_[0.0, self.coordination]))


@dataclass(frozen=True)
class ADF:
    """Angle distribution p(θ) (deg⁻¹, ∫ p dθ = 1) on bin centres ``theta_deg``."""

    triplet: str
    theta_deg: np.ndarray
    edges_deg: np.ndarray
    density: np.ndarray
    counts: np.ndarray
    n_frames: int
    cutoffs_A: tuple[float, float]
    angles_per_frame: float

    def mean_deg(self) -> float:
        """Mean angle (deg) over all counted triplets."""
        tot = self.counts.sum()
        return float((self.counts * self.theta_deg).sum() / tot) if tot else float("nan")


def parse_pair(spec: str, n: int = 2) -> list[str]:
    """``"Pb-Br"`` → ["Pb", "Br"]; ``"Pb-Br-Pb"`` → three parts (``n`` of them)."""
    parts = [p.strip() for p in str(spec).split("-")]
    if len(parts) != n or not all(parts):
        kind = "pair like Pb-Br" if n == 2 else "triplet like Pb-Br-Pb"
        raise QdlabError(f"{spec!r} is not an element {kind}")
    return parts


def _frames_per_block(n_per_frame: int) -> int:
    return max(1, int(_BLOCK_BYTES // max(1, 8 * 4 * n_per_frame)))


def cluster_volume(traj: Trajectory, mode: str | float = "hull") -> float:
    """Normalisation volume (Å³) of the cluster: ``"hull"``, ``"sphere"`` or a number (module docstring)."""
    if not isinstance(mode, str):
        v = float(mode)
        if not v > 0:
            raise QdlabError(f"RDF volume must be > 0 Å³, got {v}")
        return v
    if mode == "hull":
        from scipy.spatial import ConvexHull

        if traj.n_atoms < 4:
            raise QdlabError("a convex-hull volume needs at least 4 atoms; pass the volume in Å³")
        frames = np.unique(np.linspace(0, traj.n_frames - 1, min(20, traj.n_frames)).astype(int))
        return float(np.mean([ConvexHull(traj.positions_A[f]).volume for f in frames]))
    if mode == "sphere":
        x = traj.positions_A[0]
        radius = np.sqrt(((x - x.mean(0)) ** 2).sum(1).max())
        return float(4.0 / 3.0 * np.pi * radius ** 3)
    raise QdlabError(f"RDF volume must be 'hull', 'sphere' or a number in Å³, not {mode!r}")


def _pair_counts(pos: np.ndarray, ia: np.ndarray, ib: np.ndarray, same: bool, edges: np.ndarray) -> np.ndarray:
    """Ordered-pair histogram (a ≠ b) of |r_b − r_a| over all frames (vectorised over frame blocks)."""
    nbins = len(edges) - 1
    dr = edges[1] - edges[0]
    rmax2 = edges[-1] ** 2
    counts = np.zeros(nbins, np.int64)
    if same:  # unordered pairs i < j counted twice
        iu, ju = np.triu_indices(len(ia), k=1)
        pa, pb = ia[iu], ia[ju]
        step = _frames_per_block(len(pa))
        for s in range(0, pos.shape[0], step):
            d = pos[s:s + step, pb] - pos[s:s + step, pa]
            r2 = np.einsum("fpk,fpk->fp", d, d)
            r = np.sqrt(r2[r2 < rmax2])
            counts += 2 * np.bincount(np.minimum((r / dr).astype(np.int64), nbins - 1), minlength=nbins)
        return counts
    overlap = np.intersect1d(ia, ib)
    step = _frames_per_block(len(ia) * len(ib))
    xa, xb = pos[:, ia], pos[:, ib]
    for s in range(0, pos.shape[0], step):
        d = xb[s:s + step, None, :, :] - xa[s:s + step, :, None, :]
        r2 = np.einsum("fabk,fabk->fab", d, d)
        if len(overlap):  # exclude self pairs of atoms in both selections
            r2[:, np.searchsorted(ia, overlap), np.searchsorted(ib, overlap)] = np.inf
        r = np.sqrt(r2[r2 < rmax2])
        counts += np.bincount(np.minimum((r / dr).astype(np.int64), nbins - 1), minlength=nbins)
    return counts


def rdf(frames: Frames, pair: str | tuple, r_max: float = 10.0, dr: float = 0.02, volume: str | float = "hull",
        skip: int = 0, skip_ps: float | None = None, stride: int = 1) -> RDF:
    """g_AB(r) and n_AB(r) for the pair ``"A-B"`` (element symbols or label selections).

    ``frames``: a :class:`~qdlab.analysis.trajectory.Trajectory`, list of ``Atoms`` or path;
    ``r_max``, ``dr`` in Å; ``volume`` as in :func:`cluster_volume`; ``skip``/``skip_ps``/``stride``
    as in :func:`~qdlab.analysis.trajectory.load_trajectory`.
    """
    traj = load_trajectory(frames, skip=skip, skip_ps=skip_ps, stride=stride)
    a, b = (parse_pair(pair) if isinstance(pair, str) else list(pair))
    if r_max <= 0 or dr <= 0 or dr > r_max:
        raise QdlabError(f"need 0 < dr ≤ r_max (got dr={dr}, r_max={r_max} Å)")
    ma, mb = traj.mask(a), traj.mask(b)
    ia, ib = np.flatnonzero(ma), np.flatnonzero(mb)
    if len(ia) == 0 or len(ib) == 0:
        missing = a if len(ia) == 0 else b
        raise QdlabError(f"no {missing} atoms in the trajectory ({_formula(traj)})")
    same = np.array_equal(ia, ib)
    n_pairs = len(ia) * len(ib) - int((ma & mb).sum())
    if n_pairs <= 0:
        raise QdlabError(f"pair {a}-{b} has no two distinct atoms")
    nbins = int(round(r_max / dr))
    edges = np.linspace(0.0, nbins * dr, nbins + 1)
    counts = _pair_counts(traj.positions_A, ia, ib, same, edges)
    vol = cluster_volume(traj, volume)
    shell = 4.0 / 3.0 * np.pi * np.diff(edges ** 3)
    g = counts / (traj.n_frames * n_pairs / vol * shell)
    coord = np.cumsum(counts) / (traj.n_frames * len(ia))
    return RDF(f"{a}-{b}", 0.5 * (edges[1:] + edges[:-1]), edges, g, coord, counts, traj.n_frames,
               len(ia), len(ib), n_pairs, vol, volume if isinstance(volume, str) else "given")


def _formula(traj: Trajectory) -> str:
    return traj.atoms(0).get_chemical_formula()


def _neighbours(pos: np.ndarray, centres: np.ndarray, others: np.ndarray, cutoff: float, kmax: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``kmax`` nearest ``others`` of each centre: vectors (F, C, k, 3), within-cutoff flags
    (F, C, k) and their positions in ``others`` (F, C, k)."""
    d = pos[:, others][:, None, :, :] - pos[:, centres][:, :, None, :]  # (F, C, O, 3)
    r2 = np.einsum("fcok,fcok->fco", d, d)
    r2[:, centres[:, None] == others[None, :]] = np.inf  # an atom is not its own neighbour
    k = min(kmax, len(others))
    order = np.argpartition(r2, k - 1, axis=2)[:, :, :k] if k < len(others) else np.broadcast_to(
        np.arange(k), r2.shape[:2] + (k,))
    r2k = np.take_along_axis(r2, order, 2)
    vec = np.take_along_axis(d, order[..., None], 2)
    return vec, r2k < cutoff ** 2, order


def _max_neighbours(pos: np.ndarray, centres: np.ndarray, others: np.ndarray, cutoff: float) -> int:
    step = _frames_per_block(len(centres) * len(others))
    kmax = 0
    for s in range(0, pos.shape[0], step):
        d = pos[s:s + step, others][:, None, :, :] - pos[s:s + step, centres][:, :, None, :]
        r2 = np.einsum("fcok,fcok->fco", d, d)
        r2[:, centres[:, None] == others[None, :]] = np.inf
        kmax = max(kmax, int((r2 < cutoff ** 2).sum(2).max(initial=0)))
    return kmax


def adf(frames: Frames, triplet: str | tuple, cutoffs: float | tuple[float, float] = 3.6, dtheta: float = 1.0,
        skip: int = 0, skip_ps: float | None = None, stride: int = 1) -> ADF:
    """Angle distribution of ``"A-B-C"`` (angle at B) with neighbour cutoffs (r_AB, r_CB) in Å.

    ``dtheta`` bin width in degrees; frames and skip/stride as in :func:`rdf`.
    """
    traj = load_trajectory(frames, skip=skip, skip_ps=skip_ps, stride=stride)
    a, b, c = (parse_pair(triplet, 3) if isinstance(triplet, str) else list(triplet))
    cut = (float(cutoffs), float(cutoffs)) if np.isscalar(cutoffs) else tuple(float(x) for x in cutoffs)
    if len(cut) != 2 or min(cut) <= 0:
        raise QdlabError("ADF cutoffs must be one or two positive distances (Å)")
    if not 0 < dtheta <= 180:
        raise QdlabError(f"ADF bin width must be in (0, 180] degrees, got {dtheta}")
    ia, ib, ic = (np.flatnonzero(traj.mask(s)) for s in (a, b, c))
    for s, idx in ((a, ia), (b, ib), (c, ic)):
        if len(idx) == 0:
            raise QdlabError(f"no {s} atoms in the trajectory ({_formula(traj)})")
    same = np.array_equal(ia, ic)
    nbins = int(round(180.0 / dtheta))
    edges = np.linspace(0.0, 180.0, nbins + 1)
    pos = traj.positions_A
    ka = _max_neighbours(pos, ib, ia, cut[0])
    kc = ka if same and cut[0] == cut[1] else _max_neighbours(pos, ib, ic, cut[1])
    counts = np.zeros(nbins, np.int64)
    if ka and kc:
        step = _frames_per_block(len(ib) * (len(ia) + len(ic)))
        # neighbour-slot pairs: unordered (p < q) for A = C with one cutoff, else all ordered pairs
        p, q = np.triu_indices(ka, k=1) if same and cut[0] == cut[1] else np.nonzero(np.ones((ka, kc), bool))
        for s in range(0, pos.shape[0], step):
            blk = pos[s:s + step]
            va, oka, ja = _neighbours(blk, ib, ia, cut[0], ka)
            if same and cut[0] == cut[1]:
                vc, okc, jc = va, oka, ja
            else:
                vc, okc, jc = _neighbours(blk, ib, ic, cut[1], kc)
            u, v = va[:, :, p], vc[:, :, q]
            ok = oka[:, :, p] & okc[:, :, q] & (ia[ja[:, :, p]] != ic[jc[:, :, q]])
            cosang = np.einsum("fcpk,fcpk->fcp", u, v) / np.sqrt(
                np.einsum("fcpk,fcpk->fcp", u, u) * np.einsum("fcpk,fcpk->fcp", v, v))
            ang = np.degrees(np.arccos(np.clip(cosang[ok], -1.0, 1.0)))
            counts += np.bincount(np.minimum((ang / dtheta).astype(np.int64), nbins - 1), minlength=nbins)
    total = counts.sum()
    density = counts / (total * dtheta) if total else np.zeros(nbins)
    return ADF(f"{a}-{b}-{c}", 0.5 * (edges[1:] + edges[:-1]), edges, density, counts, traj.n_frames, cut,
               float(total) / traj.n_frames)
