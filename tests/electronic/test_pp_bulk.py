"""Bulk plane-wave check of Table S4 and the conventions: cubic CsPbI3 masses at R vs seed 003."""

import pytest

from qdlab.electronic.pseudopotential.bulk import cubic_cell, effective_masses


@pytest.mark.slow
def test_cubic_effective_masses_within_10_percent_of_seed():
    """Seed 003 (its own fit, converged plane waves): m_h 0.289, m_e 0.309 at R; we use E_cut 6 Ha
    (gap 1.957 eV; 1.951 eV at 8 Ha, 1.929 eV at 10 Ha). Tolerance 10 % (the issue's acceptance)."""
    r = effective_masses(cubic_cell(), "cubic", (0.5, 0.5, 0.5), ecut_Ha=6.0, directions=("x", "111"))
    assert r.m_h == pytest.approx(0.289, rel=0.10)
    assert r.m_e == pytest.approx(0.309, rel=0.10)
    # cubic symmetry: the band-edge curvature at R is isotropic
    assert r.m_h_dirs["x"] == pytest.approx(r.m_h_dirs["111"], rel=0.02)
    assert 1.5 < r.gap_eV < 2.5
