"""Dipole sources: seed 001 site charges, fixed-charge dipoles, the latent-charge model and its training."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import molecule

from qdlab.engines.dipoles import ChargeDipole, get_dipole_source, initial_charges, pb_site_classes, seed001_charges
from qdlab.errors import QdlabError


@pytest.fixture(scope="module")
def pbs19():
    from qdlab.build.recipes import PbSRecipe, build_pbs

    return build_pbs(PbSRecipe(size=2, ligand="OAc", seed=0))


def test_pb_site_classes_and_seed001_charges(pbs19):
    cls = pb_site_classes(pbs19)
    pb = np.array(pbs19.get_chemical_symbols()) == "Pb"
    counts = {c: int((cls[pb] == c).sum()) for c in ("vertex", "edge", "interior")}
    assert counts == {"vertex": 6, "edge": 12, "interior": 1}  # rock-salt Pb19S6 octahedron
    q = seed001_charges(pbs19)
    assert q.sum() == pytest.approx(0.0, abs=1e-9)
    assert set(np.round(q[pb], 2)) == {0.72, 0.94, 0.58}
    assert np.all(q[np.array(pbs19.get_chemical_symbols()) == "S"] == -1.0)
    # ligand charges keep the builder's (Gasteiger) pattern, scaled
    lig = ~np.isin(pbs19.get_chemical_symbols(), ["Pb", "S"])
    ratio = q[lig] / pbs19.get_initial_charges()[lig]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)


def test_charge_dipole_origin_free_and_born():
    a = molecule("H2O")
    q = np.array([-0.8, 0.4, 0.4])
    src = ChargeDipole(q)
    mu = src.dipoles(a, a.positions)[0]
    np.testing.assert_allclose(mu, (q[:, None] * a.positions).sum(0), atol=1e-12)
    np.testing.assert_allclose(src.dipoles(a, a.positions + 3.0)[0], mu, atol=1e-12)
    np.testing.assert_allclose(src.born_charges(a)[:, 0, 0], q)


def test_no_charges_is_an_error():
    with pytest.raises(QdlabError, match="no partial charges"):
        initial_charges(molecule("H2O"))
    with pytest.raises(QdlabError, match="unknown dipole source"):
        get_dipole_source("nonsense", molecule("H2O"))


def _dataset(n: int = 40, seed: int = 0):
    """Rattled formaldehyde with geometry-dependent 'reference' charges (a bond-length dependent
    charge transfer): a fixed-charge model cannot fit it, the latent-charge model can."""
    rng = np.random.default_rng(seed)
    base = molecule("H2CO")
    frames = []
    for _ in range(n):
        a = base.copy()
        a.positions += rng.normal(scale=0.08, size=a.positions.shape)
        r_co = a.get_distance(0, 1)
        dq = 2.0 * (r_co - 1.2)                      # e per Å of C=O stretch
        q = np.array([-0.45 - dq, 0.25 + dq, 0.10, 0.10])
        a.info["dipole_eA"] = ChargeDipole(q).dipoles(a, a.positions)[0].tolist()
        frames.append(a)
    return frames


def test_latent_charge_model_learns_and_beats_fixed_charges(tmp_path):
    from qdlab.engines.dipole_model import load_dipole_model
    from qdlab.workflows.dipole_fit import DipoleFitSettings, fit_dipole_model

    frames = _dataset()
    fixed = ChargeDipole(np.array([-0.45, 0.25, 0.10, 0.10]))
    res = fit_dipole_model(frames, tmp_path / "mu.pt", DipoleFitSettings(epochs=400, hidden=32, n_radial=8, seed=1),
                           baselines={"fixed": fixed.dipoles})
    assert res.n_test == 8 and res.rms_dipole_D > 1.0
    assert res.rmse_D < 0.1 * res.rms_dipole_D
    assert res.rmse_D < 0.5 * res.baseline_rmse_D["fixed"]
    model = load_dipole_model(tmp_path / "mu.pt")
    # no descriptor is scaled by a vanishing training spread (that made Born charges explode)
    assert float(model.net.std.min()) >= 1e-3
    a = frames[res.test_indices[0]]
    np.testing.assert_allclose(model.dipoles(a, a.positions[None])[0] / units.Debye, res.predicted_D[0], atol=1e-10)
    assert model.charges(a).sum() == pytest.approx(0.0, abs=1e-10)  # total charge enforced


def test_model_derivative_and_elements(tmp_path):
    from qdlab.engines.dipole_model import LatentChargeNet, LearnedDipole

    net = LatentChargeNet(["C", "H", "O"], n_radial=6, hidden=8)
    model = LearnedDipole(net)
    a = molecule("H2CO")
    v = np.random.default_rng(0).normal(size=a.positions.shape)
    h = 1e-5
    fd = (model.dipoles(a, a.positions + h * v) - model.dipoles(a, a.positions - h * v)) / (2 * h)
    np.testing.assert_allclose(model.dipole_derivatives(a, a.positions[None], v[None]), fd, rtol=1e-6, atol=1e-9)
    with pytest.raises(QdlabError, match="has N as well"):
        model.dipoles(Atoms("NH3", positions=np.eye(4, 3)), np.eye(4, 3)[None])


@pytest.mark.parametrize("suffix", [".extxyz", ".db"])
def test_label_stores_xtb_dipoles_and_resumes(tmp_path, suffix):
    """The labelling workflow keeps the engine's dipole (e·Å) per frame in both output kinds; a rerun resumes."""
    pytest.importorskip("tblite")
    from qdlab.engines.xtb import XTB
    from qdlab.store.db import read_frames
    from qdlab.workflows.dipole_fit import frame_dipoles
    from qdlab.workflows.label import label

    frames = [molecule("H2O") for _ in range(3)]
    for k, a in enumerate(frames):
        a.positions[0, 0] += 0.03 * k
    out = tmp_path / f"w{suffix}"
    label(frames[:2], XTB("gfn2"), out, engine="xtb")
    res = label(frames, XTB("gfn2"), out, engine="xtb")
    assert res.n_resumed == 2 and res.n_computed == 1
    got = frame_dipoles(read_frames(out, labelled=True))
    ref = []
    for a in frames:
        b = a.copy()
        b.calc = XTB("gfn2")
        ref.append(b.get_dipole_moment())
    np.testing.assert_allclose(got, ref, atol=1e-8)
