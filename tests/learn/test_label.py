"""Labelling: exact agreement with direct engine calls, resume without recomputation (engine calls
counted), failures recorded, provenance and guards."""

import json

import numpy as np
import pytest
from ase import Atoms

from learn.conftest import Counting, classical_frames
from qdlab.engines.classical import LJCoulomb
from qdlab.errors import QdlabError
from qdlab.store.db import has_labels, labels, read_frames
from qdlab.workflows.label import label




@pytest.fixture(scope="module")
def frames():
    out = classical_frames(6)
    for a in out:
        a.calc = None
    return out


def test_labels_equal_direct_engine_results(frames, tmp_path):
    res = label(frames, LJCoulomb(), tmp_path / "l.db", engine="classical")
    assert (res.n_labelled, res.n_failed, res.n_computed, res.n_resumed) == (6, 0, 6, 0)
    back = read_frames(tmp_path / "l.db", labelled=True)
    assert [a.info["label_index"] for a in back] == list(range(6))
    for a, b in zip(frames, back):
        direct = a.copy()
        direct.calc = LJCoulomb()
        e, f = labels(b)
        assert e == direct.get_potential_energy()  # bit for bit
        np.testing.assert_array_equal(f, direct.get_forces())
        assert b.info["engine"] == "classical" and json.loads(b.info["settings"])["calculator"] == "LJCoulomb"
        np.testing.assert_array_equal(b.positions, a.positions)
        np.testing.assert_array_equal(b.arrays["depth"], a.arrays["depth"])


@pytest.mark.parametrize("suffix", [".db", ".extxyz"])
def test_interrupted_labelling_resumes_without_recomputing(frames, tmp_path, suffix):
    out = tmp_path / f"l{suffix}"
    first = Counting(stop_after=4)
    with pytest.raises(KeyboardInterrupt):
        label(frames, first, out, engine="classical")
    assert first.calls == 4
    assert len(read_frames(out)) == 4
    second = Counting()
    seen = []
    res = label(frames, second, out, engine="classical", progress=lambda d, t: seen.append((d, t)))
    assert second.calls == 2  # only the two missing frames
    assert (res.n_resumed, res.n_computed, res.n_labelled) == (4, 2, 6)
    assert seen[0] == (4, 6) and seen[-1] == (6, 6)
    third = Counting()
    assert label(frames, third, out, engine="classical").n_computed == 0 and third.calls == 0
    back = read_frames(out, labelled=True)
    assert sorted(a.info["label_index"] for a in back) == list(range(6))


def test_failed_frames_are_recorded_and_retried(frames, tmp_path):
    bad = frames[2].copy()
    bad.symbols[0] = "Br"  # no LJ parameters for Br: the engine raises
    batch = [frames[0], frames[1], bad, frames[3]]
    out = tmp_path / "l.db"
    res = label(batch, LJCoulomb(), out, engine="classical")
    assert res.n_labelled == 3 and res.n_failed == 1 and list(res.failed) == [2]
    assert "no parameters for Br" in res.failed[2]
    rows = read_frames(out)
    failed = [a for a in rows if a.info.get("status") == "failed"]
    assert len(failed) == 1 and not has_labels(failed[0]) and failed[0].info["label_index"] == 2
    assert len(read_frames(out, labelled=True)) == 3
    # a rerun keeps the failure; --retry-failed computes it again (with parameters for Br it works)
    again = Counting()
    assert label(batch, again, out, engine="classical").n_failed == 1 and again.calls == 0
    fixed = LJCoulomb(lj={"Cs": (3.584, 0.07728), "Pb": (3.21, 0.001086), "I": (4.014, 0.06389),
                          "Br": (3.8, 0.05)})
    res = label(batch, fixed, out, engine="classical", retry_failed=True)
    assert res.n_failed == 0 and res.n_computed == 1 and res.n_labelled == 4
    assert len(read_frames(out, labelled=True)) == 4


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_guards(frames, tmp_path):
    out = tmp_path / "l.db"
    label(frames[:2], LJCoulomb(), out, engine="classical")
    with pytest.raises(QdlabError, match="engine 'classical'"):
        label(frames[:2], LJCoulomb(), out, engine="xtb")
    with pytest.raises(QdlabError, match="another input"):
        label(frames[3:5], LJCoulomb(), out, engine="classical")
    assert label(frames[3:5], LJCoulomb(), out, engine="classical", restart=False).n_computed == 2
    with pytest.raises(QdlabError, match="no frames"):
        label([], LJCoulomb(), tmp_path / "x.db")
    with pytest.raises(QdlabError, match="database"):
        label(frames, LJCoulomb(), tmp_path / "x.cif")
    nan = Atoms("Cs2", positions=[[0, 0, 0], [0, 0, 0]], cell=[20] * 3)  # overlapping atoms: non-finite
    nan.set_initial_charges([1, 1])
    res = label([nan], LJCoulomb(), tmp_path / "nan.db", engine="classical")
    assert res.n_failed == 1
