"""Carboxylate binding geometry on a metal-rich surface (seed 001 Fig. 2; SCIENCE.md §6).

For every carboxylate group (the two O bonded to one C: median C–O < 1.6 Å over a few frames;
its ``ligand_id`` label is kept when present), in every frame:

* Pb* = the metal atom closest to the mean position of the two O;
* r1 < r2: the two Pb*–O distances;
* r3: the shortest O–Pb distance over both O to any metal atom other than Pb*.

Classification with one distance threshold t (default 3.0 Å, "short" means ≤ t):
chelate = short r2, long r3; bridge = long r2, short r3; tilted bridge = both short;
unidentate = both long. Seed 001 avoids a threshold by clustering (r2, r3) with k-means (2
clusters, scikit-learn, seeded); the cluster with the larger mean r2 is the bridge, the other the
tilted bridge (001: 37 % / 63 %). Also reported: the share of ligand-frames with an O farther than
3 Å from every metal atom (001: ~2 %), and 2D histograms r1–r3 and r2–r3. Distances in Å.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qdlab.analysis.trajectory import Frames, Trajectory, load_trajectory
from qdlab.errors import QdlabError

CLASS_NAMES = ("bridge", "tilted_bridge", "chelate", "unidentate")
_BRIDGE, _TILTED, _CHELATE, _UNIDENTATE = range(4)
_BLOCK_BYTES = 48 * 2 ** 20


@dataclass(frozen=True)
class BindingGeometry:
    """Per carboxylate group g and frame f: ``r1_A``, ``r2_A``, ``r3_A`` (F, G), ``metal_star``
    (F, G) atom index of Pb*, ``classes`` (F, G) index into ``CLASS_NAMES`` by the threshold.

    ``o_indices`` (G, 2), ``c_indices`` (G,), ``ligand_id`` (G,) (−1 without labels);
    ``fractions`` by class (threshold), ``kmeans`` {"bridge", "tilted_bridge" fractions,
    "centres_A" [[r2, r3] bridge, [r2, r3] tilted]}; ``far_o_fraction`` share of ligand-frames with
    an O farther than ``far_cutoff_A`` from every metal atom; ``histograms`` {"r1-r3", "r2-r3"}:
    (counts (nx, ny), x edges, y edges).
    """

    r1_A: np.ndarray
    r2_A: np.ndarray
    r3_A: np.ndarray
    metal_star: np.ndarray
    classes: np.ndarray
    o_indices: np.ndarray
    c_indices: np.ndarray
    ligand_id: np.ndarray
    threshold_A: float
    fractions: dict[str, float]
    kmeans: dict
    far_o_fraction: float
    far_cutoff_A: float
    histograms: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(repr=False)
    n_frames: int = 0

    def summary(self) -> dict:
        """JSON-ready summary (fractions, k-means split, means of r1, r2, r3)."""
        return {"n_groups": int(self.r1_A.shape[1]), "n_frames": self.n_frames, "threshold_A": self.threshold_A,
                "fractions": self.fractions, "kmeans": self.kmeans, "far_o_fraction": self.far_o_fraction,
                "far_cutoff_A": self.far_cutoff_A,
                "mean_A": {"r1": float(self.r1_A.mean()), "r2": float(self.r2_A.mean()), "r3": float(self.r3_A.mean())}}


def find_carboxylates(atoms_or_traj: Frames, oxygen: str = "O", carbon: str = "C", bond_A: float = 1.6
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(O pairs (G, 2), carboxyl C (G,)) of every C bonded to exactly two O.

    A C–O pair is bonded when its median distance over up to 11 evenly spaced frames is below
    ``bond_A`` (robust to a single strongly displaced frame).
    """
    traj = atoms_or_traj if isinstance(atoms_or_traj, Trajectory) else load_trajectory(atoms_or_traj)
    io, ic = np.flatnonzero(traj.mask(oxygen)), np.flatnonzero(traj.mask(carbon))
    if len(io) < 2 or len(ic) == 0:
        return np.zeros((0, 2), int), np.zeros(0, int)
    frames = np.unique(np.linspace(0, traj.n_frames - 1, min(11, traj.n_frames)).astype(int))
    x = traj.positions_A[frames]
    d = np.median(np.linalg.norm(x[:, ic][:, :, None] - x[:, io][:, None], axis=3), axis=0)  # (C, O)
    bonded = d < bond_A
    two = bonded.sum(1) == 2
    carb = ic[two]
    opairs = np.nonzero(bonded[two])[1].reshape(-1, 2)  # row-wise nonzero: two O per carboxyl C
    return io[opairs], carb


def _distances(pos: np.ndarray, o_idx: np.ndarray, im: np.ndarray, far_cutoff: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """r1, r2, r3, Pb* (index into ``im``) and the far-O flag, (F, G) each, over blocks of frames."""
    f, g = pos.shape[0], len(o_idx)
    r1, r2, r3 = (np.empty((f, g)) for _ in range(3))
    star = np.empty((f, g), int)
    far = np.empty((f, g), bool)
    step = max(1, int(_BLOCK_BYTES // (8 * 3 * 3 * g * len(im))))
    for s in range(0, f, step):
        sl = slice(s, s + step)
        xo = pos[sl][:, o_idx]  # (f, G, 2, 3)
        xm = pos[sl][:, im]  # (f, P, 3)
        d_mid = np.linalg.norm(xo.mean(2)[:, :, None, :] - xm[:, None, :, :], axis=3)  # (f, G, P)
        st = np.argmin(d_mid, axis=2)
        d_o = np.linalg.norm(xo[:, :, :, None, :] - xm[:, None, None, :, :], axis=4)  # (f, G, 2, P)
        d_star = np.take_along_axis(d_o, st[:, :, None, None], 3)[..., 0]  # (f, G, 2)
        r1[sl], r2[sl] = d_star.min(2), d_star.max(2)
        far[sl] = (d_o.min(3) > far_cutoff).any(2)  # an O farther than the cutoff from every metal atom
        np.put_along_axis(d_o, np.repeat(st[:, :, None, None], 2, 2), np.inf, 3)
        r3[sl] = d_o.min(axis=(2, 3))
        star[sl] = st
    return r1, r2, r3, star, far


def binding_geometry(frames: Frames, metal: str = "Pb", threshold_A: float = 3.0, far_cutoff_A: float = 3.0,
                     seed: int = 0, hist_range_A: tuple[float, float] = (1.8, 5.5), hist_bin_A: float = 0.05,
                     skip: int = 0, skip_ps: float | None = None, stride: int = 1) -> BindingGeometry:
    """r1, r2, r3 of every carboxylate in every frame, classes, k-means split and histograms.

    ``metal``: element (or selection) of the binding cations; ``threshold_A`` short/long
    distance; ``seed`` for k-means; frames and skip/stride as in
    :func:`~qdlab.analysis.trajectory.load_trajectory`.
    """
    traj = load_trajectory(frames, skip=skip, skip_ps=skip_ps, stride=stride)
    o_idx, c_idx = find_carboxylates(traj)
    if len(o_idx) == 0:
        raise QdlabError("no carboxylate groups (a C bonded to two O within 1.6 Å) in the trajectory")
    im = np.flatnonzero(traj.mask(metal))
    if len(im) < 2:
        raise QdlabError(f"binding geometry needs at least two {metal} atoms")
    if threshold_A <= 0 or far_cutoff_A <= 0:
        raise QdlabError("distance thresholds must be > 0 Å")
    r1, r2, r3, star, far = _distances(traj.positions_A, o_idx, im, far_cutoff_A)
    s2, s3 = r2 <= threshold_A, r3 <= threshold_A
    classes = np.select([~s2 & s3, s2 & s3, s2 & ~s3], [_BRIDGE, _TILTED, _CHELATE], _UNIDENTATE).astype(np.int8)
    fractions = {name: float((classes == k).mean()) for k, name in enumerate(CLASS_NAMES)}
    lig = traj.labels.get("ligand_id")
    ligand_id = np.asarray(lig)[o_idx[:, 0]].astype(int) if lig is not None else np.full(len(o_idx), -1)
    edges = np.arange(hist_range_A[0], hist_range_A[1] + 0.5 * hist_bin_A, hist_bin_A)
    hists = {"r1-r3": (np.histogram2d(r1.ravel(), r3.ravel(), [edges, edges])[0], edges, edges),
             "r2-r3": (np.histogram2d(r2.ravel(), r3.ravel(), [edges, edges])[0], edges, edges)}
    return BindingGeometry(r1, r2, r3, im[star], classes, o_idx, c_idx, ligand_id, float(threshold_A), fractions,
                           kmeans_split(r2, r3, seed), float(far.mean()), float(far_cutoff_A), hists, traj.n_frames)


def kmeans_split(r2: np.ndarray, r3: np.ndarray, seed: int = 0) -> dict:
    """k-means (k = 2, scikit-learn, seeded) on (r2, r3): bridge = cluster with the larger mean r2."""
    data = np.column_stack([np.ravel(r2), np.ravel(r3)])
    if len(np.unique(np.round(data, 6), axis=0)) < 2:
        return {"bridge": float("nan"), "tilted_bridge": float("nan"), "centres_A": None, "seed": seed}
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(data)
    bridge = int(np.argmax(km.cluster_centers_[:, 0]))
    frac_b = float((km.labels_ == bridge).mean())
    return {"bridge": frac_b, "tilted_bridge": 1.0 - frac_b,
            "centres_A": [km.cluster_centers_[bridge].tolist(), km.cluster_centers_[1 - bridge].tolist()], "seed": seed}
