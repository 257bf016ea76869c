"""Datasets and labelling in a database server by URL (PostgreSQL through ASE): skipped unless
QDLAB_TEST_POSTGRES_URL is set (.ci/run sets it). The tests work in their own schema so that they
never touch other tables of the test database."""

import os

import numpy as np
import pytest

from learn.conftest import Counting, classical_frames
from qdlab.store.db import labels, read_frames, write_frames
from qdlab.workflows.label import label

SCHEMA = "qdlab_learn_test"


@pytest.fixture()
def pg_url():
    url = os.environ.get("QDLAB_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL test server: set QDLAB_TEST_POSTGRES_URL=postgresql://user:pw@host:5432/db")
    try:
        import psycopg2

        con = psycopg2.connect(url, connect_timeout=3)
    except Exception as exc:  # not installed or not reachable
        pytest.skip(f"PostgreSQL test server not usable: {exc}")
    with con, con.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA};")
    con.close()
    yield url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{SCHEMA}"
    con = psycopg2.connect(url, connect_timeout=3)
    with con, con.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;")
    con.close()


def test_round_trip_and_resumed_labelling_by_url(pg_url):
    frames = classical_frames(3)
    write_frames(pg_url, frames)
    back = read_frames(pg_url)
    assert [a.info["frame_key"] for a in back] == [a.info["frame_key"] for a in frames]
    for a, b in zip(frames, back):
        assert labels(a)[0] == labels(b)[0] and np.array_equal(labels(a)[1], labels(b)[1])
    write_frames(pg_url, frames[:1])  # not appending: replaces the rows
    assert len(read_frames(pg_url)) == 1
    bare = [a.copy() for a in classical_frames(4)]
    first = Counting(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        label(bare, first, pg_url, engine="classical", restart=False)
    second = Counting()
    res = label(bare, second, pg_url, engine="classical")
    assert second.calls == 2 and res.n_resumed == 2 and res.n_labelled == 4
