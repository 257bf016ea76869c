"""RDF and ADF of finite clusters: brute-force O(N²) references, MDAnalysis InterRDF, exact lattice cases."""

import itertools

import numpy as np
import pytest

from analysis.trajectories import cube, cube_frames, pbs, pbs_frames  # noqa: F401 (fixtures)
from analysis.trajectories import mda_universe, rattled_frames
from qdlab.analysis.rdf import adf, cluster_volume, rdf
from qdlab.analysis.trajectory import load_trajectory
from qdlab.errors import QdlabError


def brute_rdf_counts(frames, a, b, edges):
    """Ordered-pair distance histogram by explicit loops over frames and atom pairs (a ≠ b)."""
    dists = []
    for atoms in frames:
        sym = atoms.get_chemical_symbols()
        x = atoms.positions
        for i in range(len(atoms)):
            if sym[i] != a:
                continue
            for j in range(len(atoms)):
                if j != i and sym[j] == b:
                    dists.append(float(np.sqrt(((x[j] - x[i]) ** 2).sum())))
    return np.histogram(dists, edges)[0]


def brute_angles(frames, a, b, c, cut_ab, cut_cb):
    """All angles a–b–c (deg) with |ab| < cut_ab, |cb| < cut_cb, a ≠ c; unordered if a and c are one element."""
    out = []
    for atoms in frames:
        sym = atoms.get_chemical_symbols()
        x = atoms.positions
        for j in range(len(atoms)):
            if sym[j] != b:
                continue
            na = [i for i in range(len(atoms)) if i != j and sym[i] == a and np.linalg.norm(x[i] - x[j]) < cut_ab]
            nc = [k for k in range(len(atoms)) if k != j and sym[k] == c and np.linalg.norm(x[k] - x[j]) < cut_cb]
            pairs = itertools.combinations(na, 2) if (a == c and cut_ab == cut_cb) else \
                ((i, k) for i in na for k in nc if i != k)
            for i, k in pairs:
                u, v = x[i] - x[j], x[k] - x[j]
                cosang = np.dot(u, v) / np.sqrt(np.dot(u, u) * np.dot(v, v))
                out.append(np.degrees(np.arccos(np.clip(cosang, -1, 1))))
    return np.array(out)


@pytest.mark.parametrize("pair", ["Pb-Br", "Pb-Pb", "Br-Cs", "Br-Br"])
def test_rdf_matches_brute_force(cube_frames, pair):
    a, b = pair.split("-")
    res = rdf(cube_frames, pair, r_max=8.0, dr=0.05, volume=1000.0)
    ref = brute_rdf_counts(cube_frames, a, b, res.edges_A)
    np.testing.assert_array_equal(res.counts, ref)  # exact integer counts
    n_a = sum(s == a for s in cube_frames[0].get_chemical_symbols())
    n_b = sum(s == b for s in cube_frames[0].get_chemical_symbols())
    n_pairs = n_a * n_b - (n_a if a == b else 0)
    shell = 4 / 3 * np.pi * (res.edges_A[1:] ** 3 - res.edges_A[:-1] ** 3)
    np.testing.assert_allclose(res.g, ref / (len(cube_frames) * n_pairs / 1000.0 * shell), rtol=1e-12)
    np.testing.assert_allclose(res.coordination, np.cumsum(ref) / (len(cube_frames) * n_a), rtol=1e-12)


@pytest.mark.parametrize("pair", ["Pb-O", "Pb-C", "Pb-S", "Pb-Pb"])
def test_rdf_pbs_acetate_pairs(pbs_frames, pair):
    a, b = pair.split("-")
    res = rdf(pbs_frames, pair, r_max=6.0, dr=0.04)
    np.testing.assert_array_equal(res.counts, brute_rdf_counts(pbs_frames, a, b, res.edges_A))
    assert res.volume_mode == "hull" and res.volume_A3 > 0


@pytest.mark.parametrize("pair", ["Pb-Br", "Pb-Pb", "Br-Cs"])
def test_rdf_matches_mdanalysis_interrdf(cube_frames, pair):
    """Same frames (float32, as MDAnalysis stores them), same bins; a box of volume V with ≥ 2 r_max of
    vacuum so minimum images never matter, and our volume=V: InterRDF's g must equal ours."""
    from MDAnalysis.analysis.rdf import InterRDF

    a, b = pair.split("-")
    pos = np.stack([f.positions for f in cube_frames]).astype(np.float32).astype(float)
    frames32 = []
    for f, p in zip(cube_frames, pos):
        g = f.copy()
        g.positions = p
        frames32.append(g)
    r_max, nbins = 8.0, 160
    box_len = float(np.ptp(pos.reshape(-1, 3), axis=0).max() + 4 * r_max)
    u = mda_universe(pos, cube_frames[0], box=[box_len] * 3 + [90.0] * 3)
    g1, g2 = u.select_atoms(f"name {a}"), u.select_atoms(f"name {b}")
    kw = {"exclusion_block": (1, 1)} if a == b else {}
    ref = InterRDF(g1, g2, nbins=nbins, range=(0.0, r_max), **kw).run()
    ours = rdf(frames32, pair, r_max=r_max, dr=r_max / nbins, volume=box_len ** 3)
    np.testing.assert_allclose(ours.edges_A, ref.results.edges, atol=1e-12)
    # measured: identical counts, |Δg| ≤ 3e-14 (g up to ~150 with this huge box volume)
    np.testing.assert_array_equal(ours.counts, ref.results.count)
    np.testing.assert_allclose(ours.g, ref.results.rdf, rtol=1e-10, atol=1e-12)
    # coordination number from MDAnalysis' cumulative count (per A atom and frame)
    cdf = np.cumsum(ref.results.count) / (len(cube_frames) * len(g1))
    np.testing.assert_allclose(ours.coordination, cdf, rtol=1e-12)


def test_perfect_lattice_coordination(cube):
    """Ideal CsPbBr3 cube: every Pb has 6 Br at a/2 and 6 Pb at a; n(r) exact."""
    res = rdf([cube], "Pb-Br", r_max=4.0, dr=0.01)
    half = 5.95 / 2
    k = np.searchsorted(res.edges_A, half) - 1
    assert res.coordination[k - 1] == 0 and res.coordination[k] == pytest.approx(6.0, abs=1e-12)
    assert res.first_peak() == pytest.approx(half, abs=0.01)
    pbpb = rdf([cube], "Pb-Pb", r_max=6.5, dr=0.01)
    assert pbpb.coordination[-1] == pytest.approx(2 * 54 / 27)  # 54 nearest Pb–Pb bonds in a 3×3×3 grid


def test_coordination_independent_of_volume(cube_frames):
    r1 = rdf(cube_frames, "Pb-Br", volume="hull")
    r2 = rdf(cube_frames, "Pb-Br", volume="sphere")
    r3 = rdf(cube_frames, "Pb-Br", volume=12345.0)
    np.testing.assert_array_equal(r1.coordination, r2.coordination)
    np.testing.assert_array_equal(r1.coordination, r3.coordination)
    np.testing.assert_allclose(r1.g * r3.volume_A3 / r1.volume_A3, r3.g, rtol=1e-12)
    # the hull of a 3×3×3 cube of edge ~17.85 Å (Cs corners removed) is slightly below the full cube
    traj = load_trajectory(cube_frames)
    assert 0.8 * 17.85 ** 3 < cluster_volume(traj, "hull") < 1.05 * 17.85 ** 3


@pytest.mark.parametrize("triplet,cuts", [("Pb-Br-Pb", 3.6), ("Br-Pb-Br", 3.6), ("Pb-Br-Cs", (3.6, 4.6)),
                                          ("Br-Pb-Br", (3.3, 3.6))])
def test_adf_matches_brute_force(cube_frames, triplet, cuts):
    a, b, c = triplet.split("-")
    ca, cc = (cuts, cuts) if np.isscalar(cuts) else cuts
    res = adf(cube_frames, triplet, cutoffs=cuts, dtheta=2.0)
    ang = brute_angles(cube_frames, a, b, c, ca, cc)
    ref = np.histogram(ang, res.edges_deg)[0]
    np.testing.assert_array_equal(res.counts, ref)
    assert res.angles_per_frame == pytest.approx(len(ang) / len(cube_frames))
    assert (res.density * 2.0).sum() == pytest.approx(1.0, abs=1e-12)  # ∫ p dθ = 1 (bin width 2°)


def test_adf_perfect_lattice(cube):
    """Pb–Br–Pb is 180° for every bridging Br; Br–Pb–Br gives 12 × 90° and 3 × 180° per PbBr6."""
    pbp = adf([cube], "Pb-Br-Pb", cutoffs=3.2)
    assert pbp.counts.sum() == 54 and pbp.counts[-1] == 54  # 54 Pb–Br–Pb links in a 3×3×3 grid
    bpb = adf([cube], "Br-Pb-Br", cutoffs=3.2)
    assert bpb.counts.sum() == 27 * 15
    assert bpb.counts[90] == 27 * 12 and bpb.counts[-1] == 27 * 3


def test_skip_and_stride(cube):
    frames = rattled_frames(cube, 10, 0.05, dt_fs=100.0)
    full = rdf(frames[4::3], "Pb-Br")
    assert rdf(frames, "Pb-Br", skip=4, stride=3).n_frames == 2
    np.testing.assert_array_equal(rdf(frames, "Pb-Br", skip_ps=0.4, stride=3).counts, full.counts)
    np.testing.assert_array_equal(rdf(frames, "Pb-Br", skip=4, stride=3).counts, full.counts)


def test_errors(cube_frames):
    with pytest.raises(QdlabError, match="no O atoms"):
        rdf(cube_frames, "Pb-O")
    with pytest.raises(QdlabError, match="unknown element 'Xx'"):
        rdf(cube_frames, "Pb-Xx")
    with pytest.raises(QdlabError, match="not an element pair"):
        rdf(cube_frames, "PbBr")
    with pytest.raises(QdlabError, match="triplet"):
        adf(cube_frames, "Pb-Br")
    with pytest.raises(QdlabError, match="no frames left"):
        rdf(cube_frames, "Pb-Br", skip=100)
    with pytest.raises(QdlabError, match="stride"):
        rdf(cube_frames, "Pb-Br", stride=0)
