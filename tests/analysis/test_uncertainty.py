"""Committee statistics against hand-computed means, spreads and orderings."""

import numpy as np
import pytest

from qdlab.analysis.uncertainty import (CommitteeValue, committee_arrays, committee_shift, committee_value, ordering,
                                        peak_committee)
from qdlab.errors import QdlabError


def test_identical_members_have_zero_spread():
    v = committee_value([31.25, 31.25, 31.25], ["a", "b", "c"], "M1")
    assert v.spread == 0.0 and v.mean == 31.25 and v.minimum == v.maximum == 31.25


def test_two_members_spread_is_half_the_difference():
    v = committee_value([30.0, 34.0], ["a", "b"], "M1")
    assert v.mean == pytest.approx(32.0, abs=1e-12)
    assert v.spread == pytest.approx(2.0, abs=1e-12)  # population std of two values = |a − b| / 2
    assert v.text() == "32.0 ± 2.0"
    # against numpy's population standard deviation on random data
    x = np.random.default_rng(1).normal(size=7)
    w = committee_value(x)
    assert w.spread == pytest.approx(float(np.std(x)), abs=1e-14) and w.mean == pytest.approx(float(np.mean(x)))
    assert CommitteeValue.from_dict(w.to_dict()) == w


def test_bad_values_raise():
    with pytest.raises(QdlabError):
        committee_value([])
    with pytest.raises(QdlabError):
        committee_value([1.0, np.nan])
    with pytest.raises(QdlabError):
        committee_value([1.0, 2.0], ["only-one"])


def test_paired_shift_and_flag():
    a = committee_value([35.0, 33.0], ["m1", "m2"], "A")
    b = committee_value([31.0, 32.0], ["m1", "m2"], "B")
    s = committee_shift(a, b, "M1")
    # member-wise differences 4 and 1: mean 2.5, spread 1.5 → a real shift, both members agree
    assert s.paired and s.difference.mean == pytest.approx(2.5) and s.threshold == pytest.approx(1.5)
    assert not s.within_uncertainty and s.sign_agrees
    c = committee_value([33.0, 30.0], ["m1", "m2"], "C")  # differences +2 and −2: mean 0, spread 2
    s2 = committee_shift(c, b)
    assert s2.within_uncertainty and not s2.sign_agrees
    # unpaired: the difference of the means against √(sA² + sB²)
    d = committee_value([36.0, 34.0], ["x", "y"], "D")
    s3 = committee_shift(d, b)
    assert not s3.paired and s3.difference.mean == pytest.approx(35.0 - 31.5)
    assert s3.threshold == pytest.approx(np.hypot(1.0, 0.5))


def test_single_member_shift_never_flagged():
    a, b = committee_value([2.0], ["m"]), committee_value([1.9], ["m"])
    assert not committee_shift(a, b).within_uncertainty


def test_ordering_robust_and_separated():
    vals = {"PhP": committee_value([-3.0, -3.2], ["a", "b"]), "BzO": committee_value([-2.0, -2.1], ["a", "b"]),
            "PhS": committee_value([-1.0, -1.4], ["a", "b"])}
    o = ordering(vals)
    assert o["order"] == ["PhP", "BzO", "PhS"] and o["robust"] and o["separated"]
    vals["BzO"] = committee_value([-3.1, -2.0], ["a", "b"])  # member a puts BzO first
    o = ordering(vals)
    assert not o["robust"] and o["per_member"]["a"][0] == "BzO"


def test_arrays_and_peaks():
    m, s = committee_arrays([np.array([1.0, 2.0]), np.array([3.0, 2.0])])
    assert np.allclose(m, [2.0, 2.0]) and np.allclose(s, [1.0, 0.0])
    with pytest.raises(QdlabError):
        committee_arrays([np.ones(2), np.ones(3)])
    pk = peak_committee({"a": {"M1": 30.0, "M2": 90.0}, "b": {"M1": 32.0}})
    assert pk["M1"].spread == pytest.approx(1.0) and pk["M2"].members == ("a",)
