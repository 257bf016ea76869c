"""Datasets: ASE database / extxyz round trips, provenance, deduplication, seeded 68/12/20 split."""

import numpy as np
import pytest
from ase.io import write

from learn.conftest import classical_frames
from qdlab.errors import QdlabError
from qdlab.store.db import (collect, deduplicate, frame_key, has_labels, labels, read_frames, repair_xyz,
                            split_indices, summarize, write_frames)


def test_split_counts_seeded_and_disjoint():
    parts = split_indices(100, seed=3)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [68, 12, 20]
    allidx = np.concatenate(list(parts.values()))
    assert sorted(allidx.tolist()) == list(range(100))
    again = split_indices(100, seed=3)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    assert not np.array_equal(split_indices(100, seed=4)["test"], parts["test"])
    with pytest.raises(QdlabError):
        split_indices(10, (0.5, 0.5, 0.5))


def test_deduplicate_tolerance():
    frames = classical_frames(3)
    near = frames[1].copy()
    near.positions[0, 0] += 5e-5  # within 1e-4 Å: a duplicate
    far = frames[2].copy()
    far.positions[0, 0] += 5e-3  # not a duplicate
    kept, dropped = deduplicate(frames + [near, far], tol_A=1e-4)
    assert dropped == [3] and len(kept) == 4
    kept, dropped = deduplicate(frames + [near, far], tol_A=1e-2)
    assert dropped == [3, 4]


@pytest.mark.parametrize("suffix", [".db", ".extxyz"])
def test_round_trip_with_provenance(tmp_path, suffix):
    frames = classical_frames(3)
    frames[0].info["settings"] = '{"x": 1}'
    path = tmp_path / f"d{suffix}"
    write_frames(path, frames)
    back = read_frames(path)
    assert len(back) == 3
    for a, b in zip(frames, back):
        assert b.info["frame_key"] == a.info["frame_key"]  # stored, not recomputed from rounded text
        if suffix == ".db":
            assert frame_key(b) == frame_key(a)
        assert b.info["engine"] == "classical" and b.info["source"] == "rattle"
        np.testing.assert_array_equal(b.arrays["role"], a.arrays["role"])
        np.testing.assert_allclose(b.get_initial_charges(), a.get_initial_charges(), atol=1e-7)
        (ea, fa), (eb, fb) = labels(a), labels(b)
        if suffix == ".db":  # the database keeps float64 exactly
            assert ea == eb and np.array_equal(fa, fb)
        else:  # extxyz: 8 decimals
            assert abs(ea - eb) < 1e-6 and np.abs(fa - fb).max() < 1e-7
    assert back[0].info["settings"] == '{"x": 1}'


def test_collect_sources_dedup_split_and_append(tmp_path):
    frames = classical_frames(5)
    traj = tmp_path / "relax.extxyz"
    write(traj, frames, format="extxyz")
    unlabelled = [a.copy() for a in frames[:2]]  # the same geometries again, without labels
    write(tmp_path / "snap.extxyz", unlabelled, format="extxyz")
    out = tmp_path / "data.db"
    s = collect([traj, tmp_path / "snap.extxyz"], out, engine="classical", fractions=(0.6, 0.2, 0.2), seed=1)
    assert s.n_frames == 5 and s.dropped_duplicates == 2 and s.n_labelled == 5
    assert s.splits == {"train": 3, "val": 1, "test": 1}
    back = read_frames(out)
    assert {a.info["source"] for a in back} == {"rattle"}  # the frames' own source entry is kept
    assert all(has_labels(a) for a in back)
    more = classical_frames(2, seed0=10)
    write(tmp_path / "more.extxyz", more, format="extxyz")
    s2 = collect([tmp_path / "more.extxyz", traj], out, append=True, seed=2)
    assert s2.n_frames == 7 and s2.dropped_duplicates == 5
    assert len(read_frames(out, split="train")) + len(read_frames(out, split="val")) + \
        len(read_frames(out, split="test")) == 7
    # labels can be dropped; every-n-th frame
    s3 = collect([traj], tmp_path / "bare.extxyz", keep_labels=False, every=2, split=False)
    assert s3.n_frames == 3 and s3.n_labelled == 0 and s3.splits == {"none": 3}


def test_truncated_extxyz_is_repaired(tmp_path):
    frames = classical_frames(3)
    path = tmp_path / "t.extxyz"
    write_frames(path, frames)
    text = path.read_text()
    path.write_text(text[: len(text) - 400])  # the last frame cut off mid-write
    assert len(read_frames(path)) == 2
    assert repair_xyz(path) == 2
    assert len(read_frames(path)) == 2 and path.read_text().count("Properties") == 2


def test_bad_names_and_missing_files(tmp_path):
    with pytest.raises(QdlabError, match="does not exist"):
        read_frames(tmp_path / "none.db")
    with pytest.raises(QdlabError, match="extended XYZ"):
        write_frames(tmp_path / "x.cif", classical_frames(1))


def test_cp2k_set_collects_to_68_12_20(cp2k_path, tmp_path):
    s = collect([cp2k_path], tmp_path / "cp2k.db", engine="cp2k", seed=0)
    assert (s.n_frames, s.n_labelled) == (100, 100)
    assert s.splits == {"train": 68, "val": 12, "test": 20} and s.engines == {"cp2k": 100}
    assert s.formulas == {"Br240Cs112Pb64": 100}
    assert summarize(read_frames(tmp_path / "cp2k.db", split="test")).n_frames == 20


def test_frames_by_split_keeps_existing_splits():
    from qdlab.store.db import frames_by_split

    frames = classical_frames(5)
    frames[0].info["split"] = "test"
    parts = frames_by_split(frames, fractions=(0.5, 0.5, 0.0), seed=0)
    assert [a.info["frame_key"] for a in parts["test"]] == [frames[0].info["frame_key"]]
    assert len(parts["train"]) == 2 and len(parts["val"]) == 2
    assert all("split" not in a.info for a in frames[1:])  # the caller's frames are not modified
    assert all(has_labels(a) for p in parts.values() for a in p)
