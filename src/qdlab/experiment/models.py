"""Synthesis parameters → PL peak position / intensity: regression models and SHAP (seed 002).

Linear, random forest, SVR, MLP and gradient boosting (scikit-learn), one seeded 80/20 split
plus k-fold cross-validation on the training part; RMSE table; SHAP for the best model (lowest
test RMSE): a global ranking (mean |SHAP|, with the sign of the feature's effect) and a beeswarm
plot. Everything that draws random numbers takes ``seed``; the same table and seed give the same
models, RMSEs and SHAP values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from qdlab.errors import QdlabError

MODEL_NAMES = ("linear", "random_forest", "svr", "mlp", "gradient_boosting")


class ModelError(QdlabError):
    """A table that cannot be modelled (missing columns, too few rows, non-numeric features)."""


def training_table(fits: pd.DataFrame, wellmap: pd.DataFrame, *, time_min: float = 0.0) -> pd.DataFrame:
    """Synthesis features per well (µL; :func:`qdlab.experiment.plate.synthesis_table`) + PL targets.

    Targets from the read nearest ``time_min`` (min) in each well: ``peak_nm`` (fitted centre, nm),
    ``intensity`` (fitted height, counts) and ``fwhm_nm``. Wells whose fit at that read is flagged
    are left out (their count is in ``attrs["dropped_wells"]``).
    """
    from qdlab.experiment.plate import synthesis_table

    need = {"well", "time_min", "center_nm", "height", "fwhm_nm", "ok"}
    if need - set(fits.columns):
        raise ModelError(f"fit table lacks column(s) {', '.join(sorted(need - set(fits.columns)))}")
    f = fits.assign(_dt=(fits["time_min"] - time_min).abs())
    at = f.sort_values(["well", "_dt"], kind="stable").drop_duplicates("well")
    ok = at[at["ok"].astype(bool)]
    feats = synthesis_table(wellmap)
    targets = ok.set_index("well")[["center_nm", "height", "fwhm_nm"]].rename(
        columns={"center_nm": "peak_nm", "height": "intensity"})
    out = feats.join(targets, how="inner")
    if out.empty:
        raise ModelError("no well has both a well-map entry and an ok fit at that time")
    out.attrs["dropped_wells"] = int(len(at) - len(ok))
    return out.reset_index()


def make_model(name: str, seed: int = 0, n_estimators: int = 200):
    """A fresh scikit-learn regressor by name (SVR and MLP standardise their inputs)."""
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    if name == "linear":
        return LinearRegression()
    if name == "random_forest":
        return RandomForestRegressor(n_estimators=n_estimators, random_state=seed, n_jobs=1)
    if name == "svr":
        return make_pipeline(StandardScaler(), SVR(C=100.0, epsilon=0.1))
    if name == "mlp":
        from sklearn.compose import TransformedTargetRegressor

        mlp = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(64, 32), max_iter=2000,
                                                           early_stopping=False, random_state=seed))
        return TransformedTargetRegressor(regressor=mlp, transformer=StandardScaler())
    if name == "gradient_boosting":
        return GradientBoostingRegressor(n_estimators=n_estimators, random_state=seed)
    raise ModelError(f"unknown model {name!r} (known: {', '.join(MODEL_NAMES)})")


@dataclass
class ModelReport:
    """Fitted models and their scores. ``rmse`` has one row per model (target units, e.g. nm)."""

    target: str
    features: list[str]
    rmse: pd.DataFrame
    best: str
    models: dict = field(repr=False)
    X_train: pd.DataFrame = field(repr=False)
    X_test: pd.DataFrame = field(repr=False)
    y_test: pd.Series = field(repr=False)
    seed: int = 0


def _check_table(table: pd.DataFrame, target: str, features: list[str] | None) -> list[str]:
    if target not in table.columns:
        raise ModelError(f"the table has no target column {target!r} (columns: {', '.join(map(str, table.columns))})")
    feats = features or [c for c in table.columns if c != target and pd.api.types.is_numeric_dtype(table[c])]
    missing = [f for f in feats if f not in table.columns]
    if missing:
        raise ModelError(f"feature column(s) not in the table: {', '.join(missing)}")
    bad = [f for f in feats if not pd.api.types.is_numeric_dtype(table[f])]
    if bad:
        raise ModelError(f"non-numeric feature column(s): {', '.join(bad)}")
    if not feats:
        raise ModelError("no numeric feature columns")
    return feats


def fit_models(table: pd.DataFrame, target: str, *, features: list[str] | None = None,
               models: tuple[str, ...] | list[str] = MODEL_NAMES, seed: int = 0, test_size: float = 0.2,
               cv: int = 5, n_estimators: int = 200) -> ModelReport:
    """Fit every model on a seeded ``1 − test_size`` / ``test_size`` split and cross-validate.

    Columns of ``rmse``: model, rmse_test (on the held-out split), cv_rmse_mean, cv_rmse_std
    (``cv``-fold CV on the training part, seeded shuffling), r2_test. Rows with a missing target
    or feature are dropped. ``best`` is the model with the lowest test RMSE.
    """
    from sklearn.base import clone
    from sklearn.metrics import mean_squared_error, r2_score
    from sklearn.model_selection import KFold, cross_val_score, train_test_split

    feats = _check_table(table, target, features)
    data = table[[*feats, target]].dropna()
    if len(data) < max(10, 2 * cv):
        raise ModelError(f"{len(data)} complete rows are too few to fit and cross-validate ({cv}-fold)")
    X, y = data[feats].astype(float), data[target].astype(float)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, random_state=seed)
    rows, fitted = [], {}
    folds = KFold(n_splits=cv, shuffle=True, random_state=seed)
    for name in models:
        est = make_model(name, seed=seed, n_estimators=n_estimators)
        cv_scores = -cross_val_score(clone(est), X_tr, y_tr, cv=folds, scoring="neg_root_mean_squared_error")
        est.fit(X_tr, y_tr)
        pred = est.predict(X_te)
        rows.append({"model": name, "rmse_test": float(np.sqrt(mean_squared_error(y_te, pred))),
                     "cv_rmse_mean": float(cv_scores.mean()), "cv_rmse_std": float(cv_scores.std()),
                     "r2_test": float(r2_score(y_te, pred))})
        fitted[name] = est
    rmse = pd.DataFrame(rows).sort_values("rmse_test", kind="stable").reset_index(drop=True)
    return ModelReport(target=target, features=feats, rmse=rmse, best=str(rmse["model"].iloc[0]), models=fitted,
                       X_train=X_tr, X_test=X_te, y_test=y_te, seed=seed)


def shap_values(report: ModelReport, model: str | None = None, *, max_background: int = 50,
                max_explain: int = 200):
    """A ``shap.Explanation`` for ``model`` (default: the best) on the test rows (+ train rows up to max_explain).

    Tree models use the exact TreeExplainer, the linear model the LinearExplainer, SVR/MLP the
    permutation explainer on a seeded background sample of the training rows.
    """
    import shap

    name = model or report.best
    est = report.models[name]
    X_bg = report.X_train.sample(min(max_background, len(report.X_train)), random_state=report.seed)
    X_ex = pd.concat([report.X_test, report.X_train]).iloc[:max_explain]
    if name in ("random_forest", "gradient_boosting"):
        explainer = shap.TreeExplainer(est, data=X_bg, feature_perturbation="interventional")
        return explainer(X_ex, check_additivity=False)
    if name == "linear":
        return shap.LinearExplainer(est, X_bg)(X_ex)
    masker = shap.maskers.Independent(X_bg, max_samples=len(X_bg))
    explainer = shap.PermutationExplainer(est.predict, masker, seed=report.seed)
    return explainer(X_ex, max_evals=2 * X_ex.shape[1] + 1)


def shap_ranking(explanation) -> pd.DataFrame:
    """Global ranking: feature, mean |SHAP| (target units), and the sign of the effect.

    ``direction`` is the Pearson correlation between a feature's value and its SHAP value
    (+: larger values raise the target, −: lower it), NaN for a constant feature.
    """
    vals = np.asarray(explanation.values)
    data = np.asarray(explanation.data, dtype=float)
    names = list(explanation.feature_names)
    direction = []
    for j in range(vals.shape[1]):
        a, b = data[:, j], vals[:, j]
        direction.append(float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else np.nan)
    out = pd.DataFrame({"feature": names, "mean_abs_shap": np.abs(vals).mean(0), "direction": direction})
    return out.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)


def plot_beeswarm(explanation, path: str | Path, *, title: str | None = None, max_display: int = 12) -> Path:
    """SHAP beeswarm plot (seed 002 Fig. 4A/B) written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    from qdlab.store.files import atomic_path

    p = Path(path)
    plt.figure(figsize=(6.5, 4.5))
    shap.plots.beeswarm(explanation, max_display=max_display, show=False)
    fig = plt.gcf()
    if title:
        fig.axes[0].set_title(title)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return p
