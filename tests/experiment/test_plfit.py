"""Vectorised Gaussian fits against lmfit's GaussianModel and against known synthetic parameters."""

import numpy as np
import pytest

from qdlab.experiment.plfit import FWHM_PER_SIGMA, fit_gaussians, fit_table
from qdlab.experiment.synthetic import cytation_grid, synthetic_run

X = cytation_grid()  # 400–650 nm, 2 nm, 126 points


def _spectra(n, seed, noise=0.0, baseline=(0.0, 0.0)):
    rng = np.random.default_rng(seed)
    c, s, h = rng.uniform(490, 530, n), rng.uniform(8, 15, n), rng.uniform(200, 5000, n)
    y = h[:, None] * np.exp(-0.5 * ((X - c[:, None]) / s[:, None]) ** 2) + baseline[0] + baseline[1] * (X - 525)
    if noise:
        y = y + rng.normal(0, noise, y.shape)
    return y, c, s, h


def test_fwhm_constant():
    assert FWHM_PER_SIGMA == pytest.approx(2.354820045, abs=1e-9)


@pytest.mark.parametrize("baseline", ["none", "linear"])
def test_matches_lmfit_on_clean_spectra(baseline):
    from lmfit.models import GaussianModel, LinearModel

    # clean spectra, the second set on a sloping baseline
    y, c, s, h = _spectra(12, 1, baseline=(0.0, 0.0) if baseline == "none" else (30.0, 0.2))
    fits = fit_gaussians(X, y, baseline=baseline)
    assert fits.converged.all() and fits.ok.all()
    for k in range(len(y)):
        model = GaussianModel()
        if baseline == "linear":
            model = model + LinearModel()
        pars = model.make_params(amplitude=h[k] * s[k] * 2.5 * 0.9, center=c[k] + 3, sigma=s[k] * 1.2)
        if baseline == "linear":
            pars["slope"].set(value=0.0)
            pars["intercept"].set(value=0.0)
        r = model.fit(y[k], pars, x=X)
        assert abs(fits.center_nm[k] - r.params["center"].value) < 1e-3
        assert abs(fits.fwhm_nm[k] - r.params["fwhm"].value) < 1e-3
        assert fits.height[k] == pytest.approx(r.params["height"].value, rel=1e-5)
        assert fits.area[k] == pytest.approx(r.params["amplitude"].value, rel=1e-5)
    # and both recover the exact truth
    np.testing.assert_allclose(fits.center_nm, c, atol=1e-6)
    np.testing.assert_allclose(fits.fwhm_nm, FWHM_PER_SIGMA * s, atol=1e-6)
    np.testing.assert_allclose(fits.r2, 1.0, atol=1e-12)


def test_matches_lmfit_on_noisy_spectra():
    from lmfit.models import GaussianModel

    y, c, s, h = _spectra(6, 2, noise=40.0)
    fits = fit_gaussians(X, y, baseline="none")
    for k in range(len(y)):
        r = GaussianModel().fit(y[k], x=X, center=c[k], sigma=s[k], amplitude=h[k] * s[k] * 2.5)
        assert abs(fits.center_nm[k] - r.params["center"].value) < 1e-3
        assert abs(fits.fwhm_nm[k] - r.params["fwhm"].value) < 1e-3
        # our standard errors are lmfit's (same covariance estimate)
        assert fits.center_err_nm[k] == pytest.approx(r.params["center"].stderr, rel=1e-3)


def test_noisy_recovery_within_statistical_error():
    y, c, s, h = _spectra(3000, 3, noise=25.0, baseline=(40.0, -0.05))
    fits = fit_gaussians(X, y, baseline="linear")
    assert fits.converged.all()
    zc = (fits.center_nm - c) / fits.center_err_nm
    zf = (fits.fwhm_nm - FWHM_PER_SIGMA * s) / fits.fwhm_err_nm
    zh = (fits.height - h) / fits.height_err
    for z in (zc, zf, zh):
        assert abs(z.mean()) < 0.1          # unbiased (3000 spectra: SE of the mean ≈ 0.02)
        assert 0.9 < z.std() < 1.1          # errors are the real scatter
        assert np.mean(np.abs(z) < 2) > 0.93
    assert np.median(np.abs(fits.center_nm - c)) < 0.1  # nm


def test_flags_meaningless_fits():
    y, c, s, h = _spectra(5, 4, noise=5.0)
    rng = np.random.default_rng(0)
    y[1] = 50 + rng.normal(0, 5, X.size)                               # no peak: tiny height
    y[2] = 3000 * np.exp(-0.5 * ((X - 525) / 200) ** 2)                # FWHM ≫ the 250 nm window
    y[3] = 3000 * np.exp(-0.5 * ((X - 700) / 20) ** 2) + rng.normal(0, 5, X.size)  # centre beyond the window
    fits = fit_gaussians(X, y, baseline="constant")
    assert fits.ok[0] and fits.ok[4]
    assert "low_height" in fits.flag[1] and not fits.ok[1]
    assert "too_wide" in fits.flag[2]
    assert "centre_outside" in fits.flag[3] or "too_wide" in fits.flag[3]
    assert not fits.ok[1:4].any()
    few = fit_gaussians(X, y[:1], baseline="none", max_iter=1)
    assert not few.converged[0] and "not_converged" in few.flag[0]


def test_nan_points_get_zero_weight():
    y, c, s, h = _spectra(4, 5)
    y[:, 40:44] = np.nan  # saturated (OVRFLW) points near the peak
    fits = fit_gaussians(X, y, baseline="none")
    np.testing.assert_allclose(fits.center_nm, c, atol=1e-6)
    assert fits.ok.all()


def test_batch_equals_single_spectrum_fits():
    y, *_ = _spectra(20, 6, noise=30.0)
    batch = fit_gaussians(X, y)
    for k in (0, 7, 19):
        one = fit_gaussians(X, y[k:k + 1])
        assert one.center_nm[0] == pytest.approx(batch.center_nm[k], abs=1e-9)
        assert one.fwhm_nm[0] == pytest.approx(batch.fwhm_nm[k], abs=1e-9)


def test_fit_table_every_well_and_read():
    tidy, truth = synthetic_run(6, 5, noise=8.0, seed=2)
    tidy["antisolvent"] = np.where(tidy["well"].isin(["A1", "B1"]), "toluene", "chloroform")
    fits = fit_table(tidy, window_nm=(440, 600))
    assert len(fits) == 30 and fits["ok"].all()
    assert set(fits.columns) >= {"well", "read", "time_min", "center_nm", "fwhm_nm", "height", "area", "r2", "flag",
                                 "antisolvent"}
    m = fits.merge(truth, on=["well", "read"], suffixes=("", "_true"))
    assert np.all(np.abs(m.center_nm - m.center_nm_true) < 5 * m.center_err_nm + 1e-9)
    assert (fits.loc[fits.well == "A1", "antisolvent"] == "toluene").all()


def test_bad_input_errors():
    from qdlab.experiment.plfit import FitError

    with pytest.raises(FitError, match="columns"):
        fit_gaussians(X, np.ones((2, 10)))
    with pytest.raises(FitError, match="valid points"):
        fit_gaussians(X, np.full((1, X.size), np.nan))
    with pytest.raises(FitError, match="baseline"):
        fit_gaussians(X, np.ones((1, X.size)), baseline="cubic")


def test_empty_spectrum_flagged_not_fatal():
    y, c, s, h = _spectra(3, 7)
    y[1] = np.nan                      # an all-OVRFLW / empty well
    fits = fit_gaussians(X, y, baseline="linear")
    assert list(fits.flag) == ["", "too_few_points", ""] and list(fits.ok) == [True, False, True]
    assert np.isnan(fits.center_nm[1]) and fits.center_nm[[0, 2]] == pytest.approx(c[[0, 2]], abs=1e-6)
