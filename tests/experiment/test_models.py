"""Regression models + SHAP: known features ranked first, reproducible with a fixed seed."""

import numpy as np
import pandas as pd
import pytest

from qdlab.experiment.models import (ModelError, fit_models, plot_beeswarm, shap_ranking, shap_values,
                                    training_table)
from qdlab.experiment.synthetic import SYNTHESIS_FEATURES, synthetic_synthesis_table

FAST = dict(n_estimators=40, cv=3)


@pytest.fixture(scope="module")
def table():
    return synthetic_synthesis_table(160, seed=3)


@pytest.fixture(scope="module")
def peak_report(table):
    return fit_models(table, "peak_nm", features=SYNTHESIS_FEATURES, seed=0, **FAST)


def test_rmse_table(peak_report):
    r = peak_report.rmse
    assert set(r.model) == {"linear", "random_forest", "svr", "mlp", "gradient_boosting"}
    assert list(r.columns) == ["model", "rmse_test", "cv_rmse_mean", "cv_rmse_std", "r2_test"]
    assert r.rmse_test.is_monotonic_increasing and peak_report.best == r.model.iloc[0]
    assert len(peak_report.X_test) == 32 and len(peak_report.X_train) == 128  # 80/20
    # the target is linear in the features with 0.5 nm noise: the linear model reaches the noise floor
    lin = r.set_index("model").loc["linear"]
    assert 0.3 < lin.rmse_test < 0.8 and lin.r2_test > 0.99
    assert (r.r2_test > 0.8).all()


@pytest.mark.parametrize("model", ["random_forest", "linear", "gradient_boosting", "mlp"])
def test_shap_ranks_known_features_first(peak_report, model):
    # (the first permutation-explainer call, here MLP, pays shap's one-time ~5 s numba compilation)
    rank = shap_ranking(shap_values(peak_report, model, max_explain=50, max_background=25))
    assert set(rank.feature[:3]) == {"toluene", "chloroform", "OLAm"}
    d = rank.set_index("feature").direction
    assert d["toluene"] > 0.9 and d["chloroform"] < -0.9 and d["OLAm"] > 0.8  # signs as constructed
    top, rest = rank.mean_abs_shap[:3].min(), rank.mean_abs_shap[3:].max()
    assert top > 3 * rest


def test_shap_svr_permutation(peak_report):
    rank = shap_ranking(shap_values(peak_report, "svr", max_explain=20, max_background=10))
    assert set(rank.feature[:3]) == {"toluene", "chloroform", "OLAm"}


def test_shap_intensity_target(table):
    rep = fit_models(table, "intensity", features=SYNTHESIS_FEATURES, seed=1, models=["random_forest", "linear"], **FAST)
    rank = shap_ranking(shap_values(rep, "random_forest", max_explain=80))
    assert set(rank.feature[:3]) == {"ligand_ratio", "PbBr2", "OLAm"}
    d = rank.set_index("feature").direction
    assert d["ligand_ratio"] < 0 and d["PbBr2"] > 0 and d["OLAm"] < 0


def test_reproducible_with_seed(table, peak_report):
    again = fit_models(table, "peak_nm", features=SYNTHESIS_FEATURES, seed=0, **FAST)
    pd.testing.assert_frame_equal(again.rmse, peak_report.rmse)
    a = shap_values(again, "random_forest", max_explain=40).values
    b = shap_values(peak_report, "random_forest", max_explain=40).values
    np.testing.assert_array_equal(a, b)
    other = fit_models(table, "peak_nm", features=SYNTHESIS_FEATURES, seed=5, models=["random_forest"], **FAST)
    assert not other.X_test.index.equals(peak_report.X_test.index)


def test_beeswarm_png(peak_report, tmp_path):
    out = plot_beeswarm(shap_values(peak_report, "linear", max_explain=40), tmp_path / "bee.png", title="peak")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_training_table_from_fits():
    from qdlab.experiment.plate import PlateDesign, design_plate, wellmap_frame

    wm = wellmap_frame(design_plate(PlateDesign(amine_ratios=[0.1, 1.0])))  # A1..D1
    fits = pd.DataFrame({"well": ["A1", "A1", "B1", "B1", "C1", "C1", "D1"], "time_min": [0, 10, 0, 10, 0, 10, 10],
                         "center_nm": [515, 516, 500, 501, 514, 515, 499], "height": [9, 8, 7, 6, 5, 4, 3],
                         "fwhm_nm": [25.0] * 7, "ok": [True, True, True, True, False, True, True]})
    t = training_table(fits, wm, time_min=2.0)
    assert list(t.well) == ["A1", "B1", "D1"] and t.attrs["dropped_wells"] == 1    # C1 flagged at t = 0
    assert list(t.peak_nm) == [515, 500, 499] and list(t.intensity) == [9, 7, 3]   # D1: only read is 10 min
    assert {"OAc", "OLAm", "toluene", "chloroform", "ligand_ratio"} <= set(t.columns)
    assert t.set_index("well").loc["B1", "chloroform"] == 180


def test_model_errors(table):
    with pytest.raises(ModelError, match="no target column 'peak'"):
        fit_models(table, "peak")
    with pytest.raises(ModelError, match="not in the table: DMF"):
        fit_models(table, "peak_nm", features=["DMF"])
    with pytest.raises(ModelError, match="too few"):
        fit_models(table.head(8), "peak_nm")
    with pytest.raises(ModelError, match="unknown model"):
        fit_models(table, "peak_nm", models=["knn"])
