"""CHGNet binding energies on a periodic slab: a ligand far above the slab binds zero (within float32 noise)."""

import numpy as np
import pytest

pytest.importorskip("chgnet")

from qdlab.build import SlabRecipe, build  # noqa: E402
from qdlab.workflows.binding import BindingSettings, plan_binding, run_plan  # noqa: E402


def test_far_ligand_on_slab(tmp_path):
    host = build(SlabRecipe(size="3x3x1", seed=0))  # Cs18Pb9Br36, periodic in x, y
    s = BindingSettings(ligands=["PhS"], engine={"name": "chgnet", "model": "0.3.0"}, relax=False)
    plan = plan_binding(host, s)
    near = run_plan(plan, s, tmp_path / "near")
    cplx = plan.structures["complex_PhS"]
    lig = cplx.arrays["role"] == "ligand"
    cplx.cell[2, 2] += 60.0
    cplx.positions[lig, 2] += 40.0  # 40 Å straight up: far beyond CHGNet's 5 Å graph cutoff
    far = run_plan(plan, s, tmp_path / "far")
    print(f"E_bind near {near.binding['PhS'].mean:.4f} eV, far {far.binding['PhS'].mean:.2e} eV")
    assert abs(far.binding["PhS"].mean) < 1e-4  # float32 noise (measured 7.6e-6 eV)
    assert near.binding["PhS"].mean < -0.5
    assert np.isfinite(near.ion_binding["X"].mean)
