"""Carboxylate binding geometry (seed 001): hand-built bridge / chelate / tilted bridge / unidentate,
brute-force r1, r2, r3 on the builder's acetate-capped Pb19S6, k-means split on known clusters."""

import numpy as np
import pytest
from ase import Atoms

from analysis.trajectories import cube, cube_frames, pbs, pbs_frames  # noqa: F401 (fixtures)
from analysis.trajectories import rattled_frames
from qdlab.analysis.coordination import CLASS_NAMES, binding_geometry, find_carboxylates, kmeans_split
from qdlab.errors import QdlabError

CO, HALF = 1.26, np.radians(62.5)  # C–O bond (Å) and half the O–C–O angle (125°)
O_PLUS = np.array([CO * np.sin(HALF), 0.0, -CO * np.cos(HALF)])  # carboxyl C at the origin, O pointing −z
O_MINUS = O_PLUS * np.array([-1.0, 1.0, 1.0])


def acetate(shift):
    """CH3COO⁻ atoms (C, O, O, CH3) with the carboxyl C at ``shift``; both O below it (−z)."""
    pos = [[0, 0, 0], O_PLUS, O_MINUS, [0, 0, 1.52], [0.51, 0.88, 1.88], [0.51, -0.88, 1.88], [-1.02, 0, 1.88]]
    return Atoms("COOCHHH", positions=np.array(pos, float) + shift)


def geometry(kind):
    """Two Pb near one acetate in the named binding mode; returns (Pb positions, expected r1, r2, r3)."""
    if kind == "chelate":  # Pb on the bisector, 2.5 Å from both O; the second Pb far away
        z = O_PLUS[2] - np.sqrt(2.5 ** 2 - O_PLUS[0] ** 2)
        pb = np.array([[0, 0, z], [0, 6.0, z]])
    elif kind == "bridge":  # syn–syn bridge over two Pb 4.2 Å apart, Pb–O 2.5 Å
        dx = 2.1 - O_PLUS[0]
        z = O_PLUS[2] - np.sqrt(2.5 ** 2 - dx ** 2)
        pb = np.array([[-2.1, 0, z], [2.1, 0, z]])
    elif kind == "tilted_bridge":  # Pb1 under both O (2.5 / 2.75 Å), O+ also bound to Pb2 (2.6 Å)
        pb1 = _point_at(O_PLUS, 2.5, O_MINUS, 2.75)
        pb2 = O_PLUS + 2.6 * np.array([0.8, 0.0, -0.6])
        pb = np.array([pb1, pb2])
    elif kind == "unidentate":  # Pb along the C–O+ bond at 2.4 Å, everything else far
        pb = np.array([O_PLUS + 2.4 * O_PLUS / CO, [0.0, 7.0, -3.0]])
    else:
        raise ValueError(kind)
    d = np.linalg.norm(pb[:, None] - np.array([O_PLUS, O_MINUS])[None], axis=2)  # (Pb, O)
    star = np.argmin(np.linalg.norm(pb - 0.5 * (O_PLUS + O_MINUS), axis=1))
    return pb, np.sort(d[star]), d[1 - star].min()


def _point_at(a, ra, b, rb):
    """A point in the xz-plane below a and b with |p − a| = ra and |p − b| = rb."""
    from scipy.optimize import brentq

    def f(x):
        z = a[2] - np.sqrt(ra ** 2 - (x - a[0]) ** 2)
        return np.hypot(x - b[0], z - b[2]) - rb

    x = brentq(f, a[0] - ra + 1e-9, a[0])
    return np.array([x, 0.0, a[2] - np.sqrt(ra ** 2 - (x - a[0]) ** 2)])


KINDS = ["bridge", "tilted_bridge", "chelate", "unidentate"]


@pytest.fixture(scope="module")
def hand_built():
    """Four acetates 30 Å apart, each with its own two Pb in one binding mode."""
    system = Atoms()
    expected = {}
    for k, kind in enumerate(KINDS):
        shift = np.array([30.0 * k, 0, 0])
        pb, (r1, r2), r3 = geometry(kind)
        system += acetate(shift)
        system += Atoms("Pb2", positions=pb + shift)
        expected[kind] = (r1, r2, r3)
    return system, expected


def test_hand_built_geometries_classified(hand_built):
    system, expected = hand_built
    res = binding_geometry([system])
    assert res.r1_A.shape == (1, 4) and res.n_frames == 1
    for g, kind in enumerate(KINDS):  # groups come in the order of their carboxyl C
        r1, r2, r3 = expected[kind]
        assert (res.r1_A[0, g], res.r2_A[0, g], res.r3_A[0, g]) == pytest.approx((r1, r2, r3), abs=1e-12)
        assert CLASS_NAMES[res.classes[0, g]] == kind, (kind, r1, r2, r3)
    # the distances have the published signatures (seed 001 Fig. 2a)
    assert expected["chelate"][1] < 3.0 < expected["chelate"][2]
    assert expected["bridge"][2] < 3.0 < expected["bridge"][1]
    assert max(expected["tilted_bridge"]) < 3.0
    assert min(expected["unidentate"][1:]) > 3.0
    assert res.fractions == {k: 0.25 for k in CLASS_NAMES}
    assert res.far_o_fraction == 0.25  # only the unidentate has an O > 3 Å from every Pb
    # no builder labels here: the four acetates are perceived as four molecules (issue 13)
    assert sorted(res.ligand_id.tolist()) == [0, 1, 2, 3]


def test_threshold_is_configurable(hand_built):
    system, expected = hand_built
    # with a 2.45 Å threshold the tilted bridge's 2.5/2.75/2.6 Å are all "long": unidentate
    res = binding_geometry([system], threshold_A=2.45)
    assert CLASS_NAMES[res.classes[0, KINDS.index("tilted_bridge")]] == "unidentate"


def brute_r123(atoms, o_pair):
    """r1, r2, r3 and far flag of one carboxylate by explicit loops over Pb atoms."""
    x = atoms.positions
    pbs = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Pb"]
    mid = 0.5 * (x[o_pair[0]] + x[o_pair[1]])
    star = min(pbs, key=lambda i: np.linalg.norm(x[i] - mid))
    d_star = sorted(np.linalg.norm(x[star] - x[o]) for o in o_pair)
    r3 = min(np.linalg.norm(x[i] - x[o]) for i in pbs if i != star for o in o_pair)
    far = any(min(np.linalg.norm(x[i] - x[o]) for i in pbs) > 3.0 for o in o_pair)
    return d_star[0], d_star[1], r3, far, star


def test_builder_acetate_capped_pbs(pbs, pbs_frames):
    res = binding_geometry(pbs_frames)
    o_idx, c_idx = find_carboxylates(pbs_frames)
    assert res.r1_A.shape == (len(pbs_frames), 26) and len(o_idx) == 26
    # every group is the two O of one acetate: same ligand_id, the ids 0..25 once each
    lig = pbs.arrays["ligand_id"]
    assert np.all(lig[o_idx[:, 0]] == lig[o_idx[:, 1]]) and np.all(lig[c_idx] == lig[o_idx[:, 0]])
    assert sorted(res.ligand_id) == list(range(26))
    far = []
    for f, atoms in enumerate(pbs_frames):
        for g, pair in enumerate(o_idx):
            r1, r2, r3, fr, star = brute_r123(atoms, pair)
            assert (res.r1_A[f, g], res.r2_A[f, g], res.r3_A[f, g]) == pytest.approx((r1, r2, r3), abs=1e-12)
            assert res.metal_star[f, g] == star
            far.append(fr)
    assert res.far_o_fraction == pytest.approx(np.mean(far), abs=1e-15)
    assert np.all(res.r1_A <= res.r2_A)
    assert sum(res.fractions.values()) == pytest.approx(1.0)
    assert res.kmeans["bridge"] + res.kmeans["tilted_bridge"] == pytest.approx(1.0)
    for h, _, _ in res.histograms.values():
        assert h.sum() <= res.r1_A.size
    # deterministic: the same seed gives the same split
    again = binding_geometry(pbs_frames)
    assert again.kmeans == res.kmeans
    summary = res.summary()
    assert summary["n_groups"] == 26 and set(summary["fractions"]) == set(CLASS_NAMES)


def test_kmeans_split_recovers_known_clusters():
    """37 % bridges around (r2, r3) = (3.6, 2.5) Å and 63 % tilted bridges around (2.7, 2.6) Å (seed 001)."""
    rng = np.random.default_rng(3)
    n_b, n_t = 370, 630
    r2 = np.r_[rng.normal(3.6, 0.08, n_b), rng.normal(2.7, 0.08, n_t)]
    r3 = np.r_[rng.normal(2.5, 0.08, n_b), rng.normal(2.6, 0.08, n_t)]
    km = kmeans_split(r2, r3, seed=0)
    assert km["bridge"] == pytest.approx(0.37, abs=1e-12) and km["tilted_bridge"] == pytest.approx(0.63, abs=1e-12)
    assert km["centres_A"][0][0] == pytest.approx(3.6, abs=0.02)
    assert km["centres_A"][1][0] == pytest.approx(2.7, abs=0.02)


def test_skip_and_errors(pbs, cube_frames):
    frames = rattled_frames(pbs, 6, 0.05, seed=9, dt_fs=500.0)
    assert binding_geometry(frames, skip_ps=1.0, stride=2).n_frames == 2  # frames 2 and 4
    with pytest.raises(QdlabError, match="no carboxylate"):
        binding_geometry(cube_frames)
    with pytest.raises(QdlabError, match="at least two Cs"):
        binding_geometry(frames, metal="Cs")
