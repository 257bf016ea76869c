"""One engine-settings object (EngineSpec) and the optional fast paths as typed protocols."""

from __future__ import annotations

import numpy as np
import pytest

from qdlab.build import PerovskiteRecipe, build
from qdlab.engines.classical import LJCoulomb
from qdlab.engines.dispersion import D3Sum, D3SumBatched, with_d3
from qdlab.engines.protocols import AnalyticHessian, BatchedForces, compute_forces
from qdlab.engines.spec import EngineSpec


class BatchedLJ(LJCoulomb):
    """LJCoulomb with a batched path (per-structure calls underneath), to test the protocol."""

    calls = 0

    def get_forces_batch(self, frames):
        BatchedLJ.calls += 1
        out = []
        for a in frames:
            b = a.copy()
            b.calc = LJCoulomb()
            out.append(b.get_forces())
        return out


@pytest.fixture(scope="module")
def frames():
    a = build(PerovskiteRecipe(composition="CsPbI3", size="2", neutrality="surface-charge"))
    rng = np.random.default_rng(1)
    out = []
    for _ in range(5):
        b = a.copy()
        b.positions += rng.normal(0, 0.02, b.positions.shape)
        out.append(b)
    return out


def test_force_label_is_entry_point_independent():
    """The CLI's options and the campaign's [[engines]] table give the same label (alias, device
    and threads do not change the forces); the model or D3 does."""
    cli = EngineSpec(name="ljcoul", device="cuda", threads=4)
    campaign = EngineSpec.model_validate({"name": "classical"})
    assert cli.force_label() == campaign.force_label()
    assert EngineSpec(name="classical", d3=True).force_label() != campaign.force_label()
    assert cli.identity() == EngineSpec(name="ljcoul").identity()  # task keys: device/threads excluded
    assert EngineSpec(name="sevenn", model="7net-0", d3=True).label() == "sevenn:7net-0+D3"
    assert isinstance(campaign.calculator(), LJCoulomb)


def test_protocols_and_compute_forces(frames):
    assert isinstance(LJCoulomb(), AnalyticHessian) and not isinstance(LJCoulomb(), BatchedForces)
    assert isinstance(BatchedLJ(), BatchedForces)
    serial = compute_forces(LJCoulomb(), frames)
    BatchedLJ.calls = 0
    batched = compute_forces(BatchedLJ(), frames, batch_size=2)
    assert BatchedLJ.calls == 3  # 5 frames in batches of 2
    np.testing.assert_array_equal(np.stack(serial), np.stack(batched))
    assert all(a.calc is None for a in frames)  # the frames are not modified


def test_d3_wrapper_keeps_batched_forces_and_drops_the_hessian(frames):
    """D3 + a batched engine stays batched and equals the plain sum per structure; D3 offers no
    analytic Hessian (phonons then use finite differences)."""
    pytest.importorskip("dftd3")
    plain = with_d3(LJCoulomb())
    batched = with_d3(BatchedLJ())
    assert type(plain) is D3Sum and type(batched) is D3SumBatched
    assert not isinstance(plain, AnalyticHessian) and not isinstance(plain, BatchedForces)
    assert isinstance(batched, BatchedForces)
    got = compute_forces(batched, frames, batch_size=5)
    ref = compute_forces(plain, frames)
    np.testing.assert_allclose(np.stack(got), np.stack(ref), atol=1e-10)
