"""MatterSim from a checkpoint path: loading code tested on a tiny m3gnet checkpoint made here."""

import numpy as np
import pytest

from engines.conftest import fd_forces, rigid_motion
from qdlab.build import PerovskiteRecipe, build
from qdlab.engines import get_calculator
from qdlab.engines.mlip import EngineError



@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch
    from mattersim.forcefield.m3gnet.m3gnet import M3Gnet

    torch.manual_seed(0)
    model = M3Gnet(num_blocks=1, units=16, max_l=2, max_n=2, cutoff=5.0, threebody_cutoff=4.0)
    path = tmp_path_factory.mktemp("ms") / "tiny_m3gnet.pth"
    torch.save({"model_name": "m3gnet", "model_args": model.model_args, "model": model.state_dict()}, path)
    return path


def test_loads_and_matches_package(checkpoint):
    from mattersim.forcefield import MatterSimCalculator, Potential

    a = build(PerovskiteRecipe(size="1"))
    a.positions += np.random.default_rng(0).normal(scale=0.05, size=a.positions.shape)
    b = a.copy()
    a.calc = get_calculator("mattersim", checkpoint=str(checkpoint))
    b.calc = MatterSimCalculator(potential=Potential.from_checkpoint(str(checkpoint), device="cpu",
                                                                     load_training_state=False), device="cpu")
    assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=1e-6)
    np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-6)
    ref = fd_forces(a, a.calc, [0, 8], h=1e-2)
    assert np.abs(a.get_forces()[[0, 8]] - ref).max() < 5e-3
    c, R = rigid_motion(a)
    c.calc = a.calc
    assert c.get_potential_energy() == pytest.approx(a.get_potential_energy(), abs=1e-4)


def test_bad_checkpoint(tmp_path):
    with pytest.raises(EngineError, match="does not exist"):
        get_calculator("mattersim", checkpoint=str(tmp_path / "none.pth"))
    import torch

    bad = tmp_path / "bad.pth"
    torch.save({"weights": 1}, bad)
    with pytest.raises(EngineError, match="not a MatterSim"):
        get_calculator("mattersim", checkpoint=str(bad))
