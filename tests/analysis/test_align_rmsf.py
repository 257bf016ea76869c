"""Kabsch alignment and RMSF: known rotations, scipy's align_vectors, exact synthetic RMSF, MDAnalysis."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from analysis.trajectories import cube, cube_frames, pbs, pbs_frames  # noqa: F401 (fixtures)
from analysis.trajectories import mda_universe
from qdlab.analysis.align import align_frames, kabsch
from qdlab.analysis.rmsf import rmsf, rmsf_from_positions
from qdlab.errors import QdlabError


def rigid_frames(x, seed):
    """Apply an independent random rotation (about the origin) and translation to every frame."""
    rng = np.random.default_rng(seed)
    rots = Rotation.random(len(x), random_state=rng).as_matrix()
    shifts = rng.normal(scale=5.0, size=(len(x), 1, 3))
    return np.einsum("fij,fnj->fni", rots, x) + shifts, rots


def rigid_free(y, w, u):
    """Project displacements u (F, N, 3) onto Σ w u = 0, Σ w y × u = 0 (per frame) and Σ_t u_t = 0.

    These are exact linear constraints. For X_t = y + u_t with Σ w y = 0 the covariance
    Σ w x yᵀ = yᵀWy + uᵀWy is then symmetric positive definite, so the identity is the optimal Kabsch
    rotation of every frame onto y, and y is the mean: the aligned frames are exactly y + u_t and the
    RMSF is exactly √⟨|u_i|²⟩.
    """
    n = len(y)
    c = np.zeros((6, 3 * n))
    for k in range(3):  # Σ w u_k = 0
        c[k, k::3] = w
    for k in range(3):  # (Σ w y × u)_k = Σ w (y_a u_b − y_b u_a)
        a, b = (k + 1) % 3, (k + 2) % 3
        c[3 + k, b::3] = w * y[:, a]
        c[3 + k, a::3] = -w * y[:, b]
    proj = np.eye(3 * n) - c.T @ np.linalg.solve(c @ c.T, c)
    v = u.reshape(len(u), -1) @ proj
    v -= v.mean(0)
    v = v.reshape(u.shape)
    assert np.abs(np.einsum("n,fnk->fk", w, v)).max() < 1e-10
    assert np.abs(np.einsum("n,fnk->fk", w, np.cross(y[None], v))).max() < 1e-9
    return v


def test_kabsch_recovers_known_rotations(cube):
    y = cube.positions - cube.positions.mean(0)
    x, rots = rigid_frames(np.repeat(y[None], 8, 0), seed=3)
    r, xbar, ybar = kabsch(x, y)
    np.testing.assert_allclose(r, rots.transpose(0, 2, 1), atol=1e-12)
    assert np.allclose(np.linalg.det(r), 1.0)
    al = align_frames(x, reference=y)
    np.testing.assert_allclose(al.positions_A, np.repeat(y[None], 8, 0), atol=1e-10)
    assert al.rmsd_A.max() < 1e-10


@pytest.mark.parametrize("weighted", [False, True])
def test_kabsch_matches_scipy_align_vectors(cube, weighted):
    rng = np.random.default_rng(5)
    y = cube.positions.copy()
    x, _ = rigid_frames(y[None] + rng.normal(scale=0.3, size=(4,) + y.shape), seed=6)
    w = cube.get_masses() if weighted else np.ones(len(y))
    r, xbar, ybar = kabsch(x, y, w if weighted else None)
    for f in range(4):
        ref, _ = Rotation.align_vectors(y - ybar, x[f] - xbar[f], weights=w)
        np.testing.assert_allclose(r[f], ref.as_matrix(), atol=1e-10)
        np.testing.assert_allclose(xbar[f], (w[:, None] * x[f]).sum(0) / w.sum(), atol=1e-12)


def test_kabsch_never_reflects():
    y = np.random.default_rng(0).normal(size=(10, 3))
    mirrored = y * np.array([1.0, 1.0, -1.0])
    r, _, _ = kabsch(mirrored[None], y)
    assert np.linalg.det(r[0]) == pytest.approx(1.0)


@pytest.mark.parametrize("mass_weighted", [False, True])
def test_rmsf_exact_on_synthetic_trajectory(cube, mass_weighted):
    """Known fluctuations + random rigid motions of every frame: RMSF recovered to 1e-10 Å."""
    w = cube.get_masses() if mass_weighted else np.ones(len(cube))
    y = cube.positions - (w[:, None] * cube.positions).sum(0) / w.sum()
    rng = np.random.default_rng(11)
    amp = rng.uniform(0.02, 0.3, size=len(y))[None, :, None]  # atom-dependent amplitudes
    u = rigid_free(y, w, rng.normal(size=(30,) + y.shape) * amp)
    expected = np.sqrt((u ** 2).sum(2).mean(0))
    moved, _ = rigid_frames(y[None] + u, seed=13)
    frames = []
    for p in moved:
        a = cube.copy()
        a.positions = p
        frames.append(a)
    res = rmsf(frames, mass_weighted=mass_weighted, reference="mean")
    assert np.abs(res.rmsf_A - expected).max() < 1e-10
    # without alignment the rigid motions dominate
    assert rmsf(frames, align=False).rmsf_A.mean() > 1.0
    # per-element and per-depth summaries are consistent with the per-atom values
    sym = np.array(cube.get_chemical_symbols())
    for e, s in res.by_element.items():
        assert s.mean_A == pytest.approx(expected[sym == e].mean(), abs=1e-10) and s.n_atoms == (sym == e).sum()
    depth = cube.arrays["depth"]
    for d, s in res.by_depth["Br"].items():
        assert s.mean_A == pytest.approx(expected[(sym == "Br") & (depth == d)].mean(), abs=1e-10)
    for e, (edges, counts) in res.histograms.items():
        assert counts.sum() == (sym == e).sum()


def test_rmsf_from_positions_definition():
    x = np.random.default_rng(1).normal(size=(7, 5, 3))
    ref = np.array([np.sqrt(np.mean([np.sum((x[t, i] - x[:, i].mean(0)) ** 2) for t in range(7)])) for i in range(5)])
    np.testing.assert_allclose(rmsf_from_positions(x), ref, rtol=1e-13)


def test_rmsf_matches_mdanalysis(cube_frames):
    """MDAnalysis AlignTraj (to the first frame, all atoms, unweighted) + RMSF on the same float32 frames."""
    from MDAnalysis.analysis import align, rms

    pos = np.stack([f.positions for f in cube_frames])
    moved, _ = rigid_frames(pos, seed=21)
    moved = moved.astype(np.float32).astype(float)
    u = mda_universe(moved, cube_frames[0])
    align.AlignTraj(u, u, select="all", in_memory=True).run()
    ref = rms.RMSF(u.atoms).run().results.rmsf
    frames = []
    for p in moved:
        a = cube_frames[0].copy()
        a.positions = p
        frames.append(a)
    ours = rmsf(frames, reference="first").rmsf_A
    assert np.abs(ours - ref).max() < 2e-5  # float32 storage in MDAnalysis; measured ~3e-7 Å


def test_mean_reference_converges(cube_frames):
    pos = np.stack([f.positions for f in cube_frames])
    moved, _ = rigid_frames(pos, seed=4)
    al = align_frames(moved, reference="mean")
    again = align_frames(al.positions_A, reference=al.reference_A)
    np.testing.assert_allclose(again.positions_A, al.positions_A, atol=1e-8)
    assert al.iterations > 1
    np.testing.assert_allclose(al.positions_A.mean(0), al.reference_A, atol=1e-12)


def test_fit_selection_moves_all_atoms(cube_frames):
    pos = np.stack([f.positions for f in cube_frames])
    moved, _ = rigid_frames(pos, seed=8)
    core = np.array(cube_frames[0].get_chemical_symbols()) == "Pb"
    al = align_frames(moved, fit_mask=core, reference="first")
    # the rigid motion is removed for all atoms, fitted on Pb only: inter-frame differences are the rattling
    assert np.abs(al.positions_A - al.positions_A[0]).max() < 1.5
    assert np.abs(moved - moved[0]).max() > 3.0


def test_errors(cube_frames):
    with pytest.raises(QdlabError, match="at least 2 frames"):
        rmsf(cube_frames[:1])
    with pytest.raises(QdlabError, match="reference"):
        rmsf(cube_frames, reference="median")
    with pytest.raises(QdlabError, match="shape"):
        align_frames(np.zeros((3, 4)))


def test_rmsf_saved_one_way_and_read_back(cube_frames, tmp_path):
    """RMSF.save writes rmsf.csv + rmsf.json (CLI and campaign alike); load_rmsf_table reads them back."""
    import json

    from qdlab.analysis.rmsf import NO_DEPTH, load_rmsf_table

    res = rmsf(cube_frames)
    files = res.save(tmp_path, {"note": "x"})
    rho, sym, depth = load_rmsf_table(tmp_path)
    np.testing.assert_allclose(rho, res.rmsf_A, rtol=1e-7)  # 8 significant digits in the CSV
    assert list(sym) == list(res.symbols) and np.array_equal(depth, res.depth)
    summary = json.loads(files["json"].read_text())
    assert summary["note"] == "x" and summary["by_element"]["Pb"]["mean_A"] == pytest.approx(res.by_element["Pb"].mean_A)
    unlabelled = rmsf([f.copy() for f in cube_frames])
    object.__setattr__(unlabelled, "depth", None)
    unlabelled.save(tmp_path / "u")
    assert load_rmsf_table(tmp_path / "u" / "rmsf.csv")[2] is None
    assert f",{NO_DEPTH}," in (tmp_path / "u" / "rmsf.csv").read_text()
