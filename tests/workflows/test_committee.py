"""Phonon committee: identical members → zero spread; two members → exactly their individual results."""

import numpy as np
import pytest

from qdlab.analysis.dos import find_peak, phonon_dos
from qdlab.build import PerovskiteRecipe, build
from qdlab.engines.classical import LJCoulomb, SEED003_LJ
from qdlab.errors import QdlabError
from qdlab.workflows.committee import CommitteePhonons, EngineChoice, committee_phonons, parse_engine
from qdlab.workflows.phonons import phonons
from qdlab.workflows.relax import relax

LJ2 = {**SEED003_LJ, "I": (4.10, 0.060), "Cs": (3.50, 0.080)}  # a second parameter set
REGION = {"P": (1.0, 400.0, 10.0)}  # one wide region: the highest DOS maximum of the spectrum


def member(lj=None, label=None):
    return EngineChoice(name="classical", options={"lj": lj} if lj else {}, display=label)


@pytest.fixture(scope="module")
def systems():
    out = {}
    for name, a in (("a629", 6.29), ("a640", 6.40)):
        atoms = build(PerovskiteRecipe(composition="CsPbI3", size="2", lattice=a, neutrality="surface-charge"))
        out[name] = relax(atoms, LJCoulomb(), fmax=1e-3, steps=300).atoms
        out[name].constraints = []
    return out


def individual(atoms, lj):
    ph = phonons(atoms, LJCoulomb(lj=lj) if lj else LJCoulomb(), method="analytic")
    dos = phonon_dos(ph.frequencies_cm1, sigma_cm1=3.0)
    return ph.frequencies_cm1, find_peak(dos.grid_cm1, dos.total, *REGION["P"], name="P").centre_cm1


def test_identical_members_zero_spread(systems, tmp_path):
    cp = committee_phonons(systems, [member(label="x"), member(label="y")], tmp_path, regions=REGION)
    for s in cp.systems:
        _, spread = cp.frequency_spread(s)
        assert np.all(spread == 0.0)
        assert cp.peaks[s]["P"].spread == 0.0
    assert cp.shifts["a640"]["P"].difference.spread == 0.0


def test_two_members_give_their_individual_results(systems, tmp_path):
    cp = committee_phonons(systems, [member(), member(LJ2, "set2")], tmp_path, regions=REGION)
    for s, atoms in systems.items():
        f1, p1 = individual(atoms, None)
        f2, p2 = individual(atoms, LJ2)
        mean, spread = cp.frequency_spread(s)
        assert np.allclose(mean, (f1 + f2) / 2, atol=1e-9) and np.allclose(spread, np.abs(f1 - f2) / 2, atol=1e-9)
        assert abs(p1 - p2) > 0.1  # the two sets really differ
        assert cp.peaks[s]["P"].mean == pytest.approx((p1 + p2) / 2, abs=1e-9)
        assert cp.peaks[s]["P"].spread == pytest.approx(abs(p1 - p2) / 2, abs=1e-9)
    sh = cp.shifts["a640"]["P"]
    d = [individual(systems["a640"], lj)[1] - individual(systems["a629"], lj)[1] for lj in (None, LJ2)]
    assert sh.paired and sh.difference.values == pytest.approx(tuple(d), abs=1e-9)
    assert sh.within_uncertainty == (abs(np.mean(d)) <= np.std(d))
    cp.save(tmp_path / "c.json")
    back = CommitteePhonons.load(tmp_path / "c.json")
    assert back.to_dict() == cp.to_dict() and np.array_equal(back.frequencies_cm1["a629"]["set2"],
                                                             cp.frequencies_cm1["a629"]["set2"])


def test_parse_engine():
    assert parse_engine("chgnet:0.2.0").model_dump(include={"name", "model"}) == {"name": "chgnet", "model": "0.2.0"}
    c = parse_engine("chgnet@ft/best.pth.tar+d3")
    assert c.checkpoint == "ft/best.pth.tar" and c.d3 and c.title == "chgnet@best.pth.tar+D3"
    with pytest.raises(QdlabError):
        parse_engine("chgnet:0.2.0 extra words")


def test_units_cached_and_invalidated(systems, tmp_path):
    one = {"a629": systems["a629"]}
    cp = committee_phonons(one, [member()], tmp_path, regions=REGION)
    unit = next(tmp_path.glob("a629__*.npz"))
    mtime = unit.stat().st_mtime_ns
    assert committee_phonons(one, [member()], tmp_path, regions=REGION).to_dict() == cp.to_dict()
    assert unit.stat().st_mtime_ns == mtime  # reused
    moved = systems["a629"].copy()
    moved.positions[0, 0] += 0.05  # another structure under the same name: recomputed
    cp2 = committee_phonons({"a629": moved}, [member()], tmp_path, regions=REGION)
    assert unit.stat().st_mtime_ns != mtime
    assert not np.allclose(cp2.frequencies_cm1["a629"]["classical"], cp.frequencies_cm1["a629"]["classical"])
