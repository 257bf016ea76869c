"""PNG views and the ratio × time map (flagged fits excluded)."""

import numpy as np
import pandas as pd
import pytest

from qdlab.errors import QdlabError
from qdlab.experiment.plfit import fit_table
from qdlab.experiment.synthetic import synthetic_run
from qdlab.experiment.views import plot_heatmaps, plot_ratio_map, plot_traces, ratio_time_map

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data():
    tidy, _ = synthetic_run(4, 4, noise=5.0, seed=4)
    fits = fit_table(tidy)
    fits["amine_per_acid"] = fits["well"].map({"A1": 0.1, "B1": 0.1, "C1": 1.0, "D1": 2.0})
    return tidy, fits


def test_ratio_time_map_means_ok_fits_only(data):
    _, fits = data
    f = fits.copy()
    f.loc[(f.well == "B1") & (f.read == 2), "ok"] = False
    m = ratio_time_map(f, value="height")
    assert list(m.index) == [0.1, 1.0, 2.0] and m.shape == (3, 4)
    a1 = f[(f.well == "A1")].set_index("read").height
    b1 = f[(f.well == "B1")].set_index("read").height
    assert m.loc[0.1, 10.0] == pytest.approx(a1[2])                 # B1 read 2 flagged: A1 alone
    assert m.loc[0.1, 0.0] == pytest.approx((a1[1] + b1[1]) / 2)
    with pytest.raises(QdlabError, match="join the well map"):
        ratio_time_map(fits.drop(columns="amine_per_acid"))


def test_pngs(data, tmp_path):
    tidy, fits = data
    for out in (plot_heatmaps(tidy, tmp_path / "h.png"), plot_traces(fits, tmp_path / "t.png"),
                plot_ratio_map(fits, tmp_path / "r.png", title="OAc:OLAm toluene")):
        assert out.read_bytes()[:8] == PNG and out.stat().st_size > 5000
    with pytest.raises(QdlabError, match="well H9 has no spectra"):
        plot_heatmaps(tidy, tmp_path / "x.png", wells=["H9"])
    assert not (tmp_path / "x.png").exists()
