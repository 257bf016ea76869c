"""A killed gap-states search resumes to the same states, to the last bit: block Davidson from any of
its snapshots, the moving-centre search from its in-progress checkpoint (interrupted inside and
between solver calls, several times), and ``qdlab electronic states`` after real SIGKILLs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from qdlab.electronic.eigensolvers import folded_davidson
from qdlab.electronic.pseudopotential.bulk import cubic_cell
from qdlab.electronic.pseudopotential.engine import StatesSettings, gap_states, kinetic_preconditioner, load_states
from qdlab.electronic.pseudopotential.hamiltonian import grid_hamiltonian
from qdlab.electronic.pseudopotential.params import BOHR_A
from qdlab.electronic.pseudopotential.partial import PartialWriter, load_partial, partial_path


class _Kill(Exception):
    pass


@pytest.fixture(scope="module")
def small_grid():
    at = cubic_cell()
    H = grid_hamiltonian(np.asarray(at.cell) / BOHR_A, at.get_scaled_positions(), at.get_chemical_symbols(),
                         np.zeros(5), shape=(7, 7, 7), r_cut=5.0, chunk=64)
    w = np.linalg.eigvalsh(H.dense())
    return H, w, kinetic_preconditioner(H, 3.0)


def _copy(snap: dict) -> dict:
    return {k: np.array(v, copy=True) for k, v in snap.items()}


def test_davidson_resumed_from_any_snapshot_equals_the_uninterrupted_run(small_grid):
    H, w, pre = small_grid
    ref = 0.5 * (w[25] + w[26])
    snaps: list[dict] = []
    kw = dict(precond=pre, tol=1e-8, maxiter=1500, nvec=6, max_dim=18)
    full = folded_davidson(H.apply, H.dim, 4, ref, snapshot=lambda s: snaps.append(_copy(s)), **kw)
    assert full.converged and len(snaps) >= 4 and snaps[0]["it"] == 1
    for snap in (snaps[1], snaps[len(snaps) // 2], snaps[-1]):
        again = folded_davidson(H.apply, H.dim, 4, ref, resume=dict(snap), **kw)  # V, HV are consumed
        assert again.iterations == full.iterations and again.n_apply == full.n_apply
        np.testing.assert_array_equal(again.values, full.values)
        np.testing.assert_array_equal(again.vectors, full.vectors)


def _search(H, pre, ref, s, path, limit=None):
    """One process's share: gap_states continuing from ``path``, killed after ``limit`` H·X."""
    count = [0]

    def apply(X):
        count[0] += X.shape[1]
        if limit is not None and count[0] > limit:
            raise _Kill
        return H.apply(X)

    writer = PartialWriter(path, "key", H.dim, s.checkpoint_s)
    return gap_states(H, ref, 2, 8, s, apply=apply, precond=pre, partial=writer,
                      resume=load_partial(path, "key", H.dim))


def test_search_killed_inside_and_between_calls_resumes_to_the_same_states(small_grid, tmp_path):
    """Reference just above the valence edge, 3 states per call: several centres. Five kills after
    a few hundred H·X each (inside a call, at call boundaries), then a run to the end: the energies
    and vectors equal the uninterrupted search's exactly; the checkpoint records progress."""
    H, w, pre = small_grid
    ref = w[25] + 0.05 * (w[26] - w[25])
    s = StatesSettings(tol_Ha=1e-7, extra=4, maxiter=150, block=3, checkpoint_s=0.0)
    e0, v0, _ = gap_states(H, ref, 2, 8, s, apply=H.apply, precond=pre)
    path = tmp_path / "x.states.partial.npz"
    attempts = []
    for limit in (700, 1200, 900, 1500, 1100):  # of 9,252 H·X in all (6 calls)
        with pytest.raises(_Kill):
            _search(H, pre, ref, s, path, limit)
        st = load_partial(path, "key", H.dim)
        attempts.append((st.attempt, None if st.inner is None else int(st.inner["it"])))
    assert attempts == sorted(attempts, key=lambda a: (a[0], a[1] or 0)) and attempts[-1][0] >= 2, attempts
    assert any(a[1] is not None and a[1] > 1 for a in attempts)  # some kills resumed inside a call
    e1, v1, _ = _search(H, pre, ref, s, path)
    np.testing.assert_array_equal(e1, e0)
    np.testing.assert_array_equal(v1, v0)
    assert load_partial(path, "other inputs", H.dim) is None
    path.write_bytes(b"PK\x03\x04 torn")  # unreadable: ignored, the search starts over
    assert load_partial(path, "key", H.dim) is None


def test_a_search_out_of_calls_continues_with_more_calls(small_grid, tmp_path):
    """``max_calls`` is a budget, not an input of the states: a search that runs out (2 of its 6 calls)
    stops with one line naming the missing states and ``--max-calls``, and saves the next call's start; a
    rerun with the default budget continues there, redoes nothing (H·X of both runs = the uninterrupted
    run's) and ends with the uninterrupted run's states, to the last bit."""
    from qdlab.errors import QdlabError

    H, w, pre = small_grid
    ref = w[25] + 0.05 * (w[26] - w[25])
    s = StatesSettings(tol_Ha=1e-7, extra=4, maxiter=150, block=3, checkpoint_s=1e9)
    counts = []

    def run(settings, partial=None, resume=None):
        n = [0]

        def apply(X):
            n[0] += X.shape[1]
            return H.apply(X)
        try:
            return gap_states(H, ref, 2, 8, settings, apply=apply, precond=pre, partial=partial, resume=resume)
        finally:
            counts.append(n[0])

    e0, v0, _ = run(s)
    path = tmp_path / "x.states.partial.npz"
    with pytest.raises(QdlabError, match=r"after 2 solver calls .*--max-calls") as err:
        run(s.model_copy(update={"max_calls": 2}), PartialWriter(path, "key", H.dim, s.checkpoint_s))
    assert "\n" not in str(err.value)
    st = load_partial(path, "key", H.dim)
    assert st.attempt == 2 and st.inner is None
    e1, v1, _ = run(s, PartialWriter(path, "key", H.dim, s.checkpoint_s), st)
    np.testing.assert_array_equal(e1, e0)
    np.testing.assert_array_equal(v1, v0)
    assert counts[1] + counts[2] == counts[0]


D = 3.15
PBI6 = Atoms("PbI6", positions=[[0, 0, 0], [D, 0, 0], [-D, 0, 0], [0, D, 0], [0, -D, 0], [0, 0, D], [0, 0, -D]])


def test_states_cli_survives_random_sigkills(tmp_path):
    """`qdlab electronic states` (PbI6, 1.5 Bohr, 2 + 2 states in blocks of 2 — five solver calls, ≈ 8 s —
    checkpoint at every snapshot): three SIGKILLs at random moments, then the same command; the states
    npz equals the uninterrupted run's and the in-progress checkpoint is gone."""
    write(tmp_path / "nc.xyz", PBI6)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = os.environ | {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
                        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def cmd(out: str) -> list[str]:
        return [sys.executable, "-m", "qdlab", "electronic", "states", str(tmp_path / "nc.xyz"), "--spacing", "1.5",
                "--vacuum", "3", "--holes", "2", "--electrons", "2", "--block", "2", "--checkpoint-every", "0",
                "--json", "-o", str(tmp_path / out)]

    t0 = time.time()
    ref = subprocess.run(cmd("ref.npz"), env=env, capture_output=True, text=True)
    total = time.time() - t0
    assert ref.returncode == 0, ref.stderr
    part = partial_path(tmp_path / "run.npz")
    rnd = random.Random(3)
    for kill in range(3):
        proc = subprocess.Popen(cmd("run.npz"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t1 = time.time()
        while not part.exists() and proc.poll() is None and time.time() - t1 < 120:
            time.sleep(0.01)
        time.sleep(rnd.uniform(0.05, 0.3) * total)
        if proc.poll() is not None:
            pytest.fail(f"the run finished before kill {kill + 1}: {proc.stderr.read().decode()[-300:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (tmp_path / "run.npz").exists() and part.exists()
    done = subprocess.run(cmd("run.npz"), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a, b = load_states(tmp_path / "run.npz"), load_states(tmp_path / "ref.npz")
    np.testing.assert_array_equal(a.states.energies_eV, b.states.energies_eV)
    np.testing.assert_array_equal(a.psi, b.psi)
    assert a.states.info["resumed_at_call"] is not None and not part.exists()
    # the time reported covers the killed runs up to their last checkpoint too, not only the last run
    # (each killed run lived ≥ 0.05 × the uninterrupted time after its first checkpoint; three of them)
    assert a.states.info["seconds_total"] - a.states.info["seconds"] > 0.1 * total
    assert json.loads(done.stdout)["energies_eV"] == json.loads(ref.stdout)["energies_eV"]


def test_a_rerun_with_more_states_extends_the_saved_ones(tmp_path):
    """PbI6, 1.5 Bohr: 2 + 2 states saved, then 4 + 4 asked of the same checkpoint. The saved states are
    kept (deflated, not searched again) and the result equals a direct 4 + 4 search's energies to
    1e-6 eV (both converge residuals to 1e-6 Ha, so eigenvalues agree far better; the bound is loose
    against degenerate-level rounding). A saved run of other settings (another grid) is not extended."""
    from qdlab.electronic.pseudopotential.engine import nanocrystal_states

    s2 = StatesSettings(spacing_B=1.5, vacuum_B=3.0, n_below=2, n_above=2, tol_Ha=1e-6, block=2)
    s4 = s2.model_copy(update={"n_below": 4, "n_above": 4})
    small = nanocrystal_states(PBI6, s2, checkpoint=tmp_path / "s.npz")
    grown = nanocrystal_states(PBI6, s4, checkpoint=tmp_path / "s.npz")
    direct = nanocrystal_states(PBI6, s4, checkpoint=tmp_path / "d.npz")
    assert grown.states.info["extended_from"] == 4 and direct.states.info["extended_from"] is None
    np.testing.assert_allclose(grown.states.energies_eV, direct.states.energies_eV, atol=1e-6)
    inner = np.isin(np.arange(8), [2, 3, 4, 5])  # the 2 + 2 nearest the reference, as saved
    np.testing.assert_allclose(grown.states.energies_eV[inner], small.states.energies_eV, atol=1e-9)
    assert grown.states.info["n_apply_total"] < direct.states.info["n_apply_total"]
    other = nanocrystal_states(PBI6, s4.model_copy(update={"spacing_B": 1.4}), checkpoint=tmp_path / "s.npz")
    assert other.states.info["extended_from"] is None


def test_an_extension_killed_mid_search_resumes_to_the_same_states(tmp_path):
    """`qdlab electronic states` asked for 4 + 4 over a saved 2 + 2 (PbI6, 1.5 Bohr, blocks of 2,
    checkpoint at every snapshot): two SIGKILLs during the extension, then the same command; the states
    equal an uninterrupted extension of a copy of the same 2 + 2 file, bitwise, and the saved 2 + 2
    file is only replaced at the end (a kill leaves it as it was)."""
    import shutil

    write(tmp_path / "nc.xyz", PBI6)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = os.environ | {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
                        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def cmd(n: int, out: str) -> list[str]:
        return [sys.executable, "-m", "qdlab", "electronic", "states", str(tmp_path / "nc.xyz"), "--spacing", "1.5",
                "--vacuum", "3", "--holes", str(n), "--electrons", str(n), "--block", "2", "--checkpoint-every", "0",
                "-o", str(tmp_path / out)]

    assert subprocess.run(cmd(2, "run.npz"), env=env, capture_output=True).returncode == 0
    shutil.copy(tmp_path / "run.npz", tmp_path / "ref.npz")
    small = (tmp_path / "run.npz").read_bytes()
    t0 = time.time()
    assert subprocess.run(cmd(4, "ref.npz"), env=env, capture_output=True).returncode == 0
    total = time.time() - t0
    part = partial_path(tmp_path / "run.npz")
    for kill, frac in enumerate((0.5, 0.7)):
        proc = subprocess.Popen(cmd(4, "run.npz"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t1 = time.time()
        while not part.exists() and proc.poll() is None and time.time() - t1 < 120:
            time.sleep(0.01)
        time.sleep(frac * total * 0.5)
        if proc.poll() is not None:
            pytest.fail(f"the extension finished before kill {kill + 1}: {proc.stderr.read().decode()[-300:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert (tmp_path / "run.npz").read_bytes() == small and part.exists()
    done = subprocess.run(cmd(4, "run.npz"), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a, b = load_states(tmp_path / "run.npz"), load_states(tmp_path / "ref.npz")
    assert a.states.info["extended_from"] == 4 and b.states.info["extended_from"] == 4
    np.testing.assert_array_equal(a.states.energies_eV, b.states.energies_eV)
    np.testing.assert_array_equal(a.psi, b.psi)
    assert a.states.info["resumed_at_call"] is not None and not part.exists()
