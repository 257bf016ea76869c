"""Seed 004 harmonic route: units checked on an analytic Hessian; the end-to-end series on a tiny cube (slow)."""

import numpy as np
import pytest
from ase import Atoms

from qdlab.workflows.seed004 import PAPER_TABLE_S1, harmonic_coupling, table_s1


def test_harmonic_reorganization_energy_of_independent_springs():
    # Φ = κ·1 on every coordinate: a linear gap term g·u on springs κ relaxes by Λ = |g|²/(2κ) (eV),
    # whatever the masses; one atom frozen so no rigid-body projection applies
    rng = np.random.default_rng(0)
    n, kappa = 5, 2.5
    atoms = Atoms("Pb5", positions=rng.normal(size=(n, 3)) * 3)
    masses = rng.uniform(50, 210, n)
    g = rng.normal(0, 0.2, (n, 3))
    free = np.ones(n, bool)
    free[0] = False
    out = harmonic_coupling(atoms, kappa * np.eye(3 * n), masses, g, free=free, T_K=300.0)
    lam = np.sum(g[free] ** 2) / (2 * kappa)
    assert out["reorganization_meV"] == pytest.approx(lam * 1e3, rel=1e-9)
    assert out["gamma_meV"] == pytest.approx(2.3548200450309493 * np.sqrt(2 * lam * 8.617333262e-5 * 300) * 1e3, rel=1e-6)


@pytest.mark.slow
def test_table_s1_tiny_series_runs(capsys):
    rows = table_s1(sizes=(1,), engine="chgnet", fmax=0.05, relax_steps=100, log=lambda m: None)
    assert rows[0].n_atoms == 11 and rows[0].gap_eV > 3.0 and rows[0].gamma_300K_meV > 0
    assert set(rows[0].bands) == {"2meV", "7meV", "17meV"} and "1.8 nm" in PAPER_TABLE_S1
