"""The campaign results store: one ASE-database row per (recipe, workflow step), keyed by a content hash.

``ResultStore(url)`` wraps :func:`ase.db.connect`: a SQLite file by default (``results.db``) or a
PostgreSQL server by URL (``postgresql://user:password@host:5432/dbname``, through the
``ase-db-backends`` package and ``psycopg2``) when many processes on many machines write at once.

Each row holds

- the atoms of the step's output structure (relaxed geometry, last MD frame, ...);
- searchable key-value pairs: ``task_key`` (SHA-256 of the step's inputs, see :func:`content_hash`),
  ``campaign``, ``step``, ``workflow``, ``status`` (``done`` | ``failed``), ``recipe_key``,
  ``engine``, ``composition``, ``size``, ``passivation``, ``seed``, ``n_atoms`` and the step's
  scalar results (``M1_cm1``, ``energy_eV``, ...);
- ``data``: recipe, settings, engine, provenance (qdlab and package versions, engine model hash,
  host, timings), the full result dictionary, the error of a failed task, and ``files``: paths of
  large arrays (modes, DOS, trajectories) relative to the store's files folder.

Writes are *upserts by key*: a finished row is never written twice and a failed row is replaced by
the retry. The check and the write run in one transaction under a lock so that concurrent writers
lose nothing and create no duplicates — an exclusive ``fcntl`` lock on ``<db>.lock`` plus
SQLite's own locking (with retries on ``database is locked``) for files, a transaction-scoped
advisory lock (``pg_advisory_xact_lock``) for PostgreSQL.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from ase import Atoms

from qdlab.errors import QdlabError

DONE, FAILED = "done", "failed"
T = TypeVar("T")
#: PostgreSQL errors of concurrent writers that a retry resolves
_PG_TRANSIENT = ("deadlock", "could not serialize", "already exists", "duplicate key", "concurrently",
                 "could not obtain lock")
#: key-value pair names reserved by ASE's database
_ASE_RESERVED = {"id", "unique_id", "ctime", "mtime", "user", "calculator", "energy", "forces", "stress",
                 "magmom", "charge", "natoms", "formula", "mass", "fmax", "smax", "volume", "pbc", "age"}


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, no spaces, numpy scalars/arrays as lists)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer, np.floating, np.bool_)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "model_dump"):
        return o.model_dump()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def content_hash(obj: Any, length: int = 24) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (hex, first ``length`` characters)."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def is_url(store: str | os.PathLike) -> bool:
    """Whether ``store`` names a database server (``postgresql://``, ``postgres://``) rather than a file."""
    return "://" in str(store)


def redact(url: str) -> str:
    """A store name safe to print: the password of a URL replaced by ``***``."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    cred, host = rest.rsplit("@", 1)
    user = cred.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in cred else url


@dataclass(frozen=True)
class TaskRow:
    """One stored result: ``key`` the task's content hash, ``status`` done/failed, ``kvp`` the
    searchable columns, ``data`` recipe/settings/provenance/results/files, ``atoms`` the structure."""

    key: str
    status: str
    kvp: dict
    data: dict
    atoms: Atoms | None = field(default=None, repr=False)
    id: int = 0

    @property
    def results(self) -> dict:
        return self.data.get("results", {})

    @property
    def files(self) -> dict:
        return self.data.get("files", {})


def _kvp_value(v: Any) -> Any:
    """A value ASE accepts as a key-value pair (str, int, float, bool), or None to leave it out."""
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        v = v.item()
    if isinstance(v, str):
        from ase.db.core import convert_str_to_int_float_bool_or_str

        return convert_str_to_int_float_bool_or_str(v)  # ASE refuses numbers written as text
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if np.isfinite(v) else None
    return None


def _clean_kvp(kvp: dict) -> dict:
    out = {}
    for k, v in kvp.items():
        key = str(k)
        if key in _ASE_RESERVED:
            key = f"r_{key}"
        if not key.isidentifier():
            continue
        val = _kvp_value(v)
        if val is not None:
            out[key] = val
    return out


class ResultStore:
    """Campaign results in an ASE database (SQLite file or PostgreSQL URL) plus a files folder.

    ``files`` is the folder for large arrays (default: ``<db stem>_files`` beside a SQLite file,
    ``./qdlab_files`` for a server); rows reference files by paths relative to it.
    """

    def __init__(self, url: str | os.PathLike, files: str | os.PathLike | None = None, *, retries: int = 40):
        self.url = str(url)
        self.server = is_url(self.url)
        if not self.server:
            p = Path(self.url)
            if p.suffix.lower() not in (".db", ".sqlite", ".sqlite3"):
                raise QdlabError(f"results store {self.url}: use a .db (SQLite) file or a postgresql:// URL")
            self.url = str(p.resolve())
        if self.server and not self.url.startswith(("postgresql://", "postgres://")):
            raise QdlabError(f"results store {redact(self.url)}: only postgresql:// URLs are supported for servers")
        default_files = (Path(self.url).with_name(Path(self.url).stem + "_files") if not self.server
                         else Path("qdlab_files"))
        self.files = Path(files).resolve() if files is not None else default_files.resolve()
        self.retries = retries

    # -- connection and locking ---------------------------------------------------------------
    def _connect(self):
        from ase.db import connect

        if self.server:
            try:
                db = connect(self.url)
            except ImportError as exc:
                raise QdlabError("PostgreSQL stores need `pip install ase-db-backends psycopg2-binary` "
                                 f"({exc})") from None
            # ase-db-backends reads the new row's id as the sequence's global last_value, which is
            # another writer's id when two insert at once (species rows then point at the wrong
            # system or at an uncommitted one); currval() is this session's own value
            db.get_last_id = _session_last_id
            return db
        # our own lock file serialises writers; ASE's lock file would be a second, coarser lock
        return connect(self.url, use_lock_file=False)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self.server:
            yield
            return
        Path(self.url).parent.mkdir(parents=True, exist_ok=True)
        with open(self.url + ".lock", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def transact(self, fn: Callable[[Any], T], lock_key: str | None = None) -> T:
        """Run ``fn(db)`` on an ASE database connection inside one transaction (committed when
        ``fn`` returns, rolled back if it raises), holding the writers' lock: the store-wide file
        lock for SQLite, an advisory lock on ``lock_key`` for PostgreSQL. Transient lock and
        serialisation errors are retried with jittered back-off (``fn`` must be repeatable)."""
        err: Exception | None = None
        for attempt in range(self.retries):
            try:
                if self.server:
                    return self._pg_transact(fn, lock_key)
                with self._file_lock():
                    db = self._connect()
                    with db:
                        return fn(db)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                err = exc
            except Exception as exc:  # psycopg2 serialisation / concurrent DDL errors are retried
                if not self.server or type(exc).__module__.split(".")[0] != "psycopg2":
                    raise
                if not any(w in str(exc).lower() for w in _PG_TRANSIENT):
                    raise  # unreachable server, bad credentials, ...: no point in waiting
                err = exc
            time.sleep(min(2.0, 0.05 * (1.5 ** attempt)) * (0.5 + random.random()))
        raise QdlabError(f"results store {redact(self.url)} stayed locked: {err}")

    def _pg_transact(self, fn: Callable[[Any], T], lock_key: str | None) -> T:
        """One PostgreSQL transaction holding an advisory lock on ``lock_key`` (released at commit or
        rollback; ase-db-backends' connection wrapper has no rollback, so the transaction is
        managed here on the underlying psycopg2 connection)."""
        db = self._connect()
        db.connection = db._connect()
        db.change_count = 0
        raw = db.connection.con
        try:
            lk = int(hashlib.sha256((lock_key or "qdlab-store").encode()).hexdigest()[:15], 16)
            db.connection.cursor().execute(f"SELECT pg_advisory_xact_lock({lk})")
            result = fn(db)
            raw.commit()
            return result
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()
            db.connection = None

    def check(self) -> int:
        """Open (and create) the store; raise a one-line :class:`QdlabError` if it is unreachable.
        Returns the number of rows."""
        try:
            n = self.transact(lambda db: db.count(), "qdlab-init")  # creates the tables once, under the lock
        except QdlabError:
            raise
        except Exception as exc:
            raise QdlabError(f"results store {redact(self.url)} is not reachable: "
                             f"{' '.join(str(exc).split()) or type(exc).__name__}") from None
        self.files.mkdir(parents=True, exist_ok=True)
        return n

    # -- writing ------------------------------------------------------------------------------
    def put(self, key: str, atoms: Atoms | None, kvp: dict, data: dict, *, status: str = DONE) -> bool:
        """Store the result of task ``key`` (upsert). Returns False, writing nothing, when a finished
        row for ``key`` is already there; a failed row is replaced."""
        if status not in (DONE, FAILED):
            raise QdlabError(f"status must be {DONE!r} or {FAILED!r}")
        row_kvp = _clean_kvp(kvp) | {"task_key": key, "status": status}
        payload = json.loads(canonical_json(data))
        a = Atoms() if atoms is None else _plain_atoms(atoms)

        def upsert(db) -> bool:
            old = [r.id for r in db.select(task_key=key, include_data=False)]
            if old and db.count(task_key=key, status=DONE):
                return False
            if old:  # failed attempts are replaced by this one
                db.delete(old)
            db.write(a, key_value_pairs=row_kvp, data=payload)
            return True

        return self.transact(upsert, key)

    def delete(self, keys: Iterable[str]) -> int:
        """Remove the rows of these task keys (e.g. to force a rerun); returns how many."""
        n = 0
        for key in keys:
            def drop(db, key=key) -> int:
                ids = [r.id for r in db.select(task_key=key, include_data=False)]
                if ids:
                    db.delete(ids)
                return len(ids)

            n += self.transact(drop, key)
        return n

    # -- reading ------------------------------------------------------------------------------
    def rows(self, *, with_atoms: bool = False, **query: Any) -> list[TaskRow]:
        """Rows matching key-value ``query`` (e.g. ``campaign="fig5"``, ``status="done"``)."""
        out = []
        db = self._connect()
        with db:
            for r in db.select(**query):
                key = r.get("task_key")
                if key is None:
                    continue
                kvp = dict(r.key_value_pairs)
                out.append(TaskRow(key=key, status=kvp.get("status", "?"), kvp=kvp, data=dict(r.data or {}),
                                   atoms=r.toatoms() if with_atoms else None, id=r.id))
        return out

    def status(self, keys: Iterable[str] | None = None) -> dict[str, str]:
        """``{task_key: status}`` for the stored rows (restricted to ``keys`` if given)."""
        wanted = set(keys) if keys is not None else None
        out: dict[str, str] = {}
        db = self._connect()
        with db:
            for r in db.select(include_data=False):
                k = r.get("task_key")
                if k is None or (wanted is not None and k not in wanted):
                    continue
                if out.get(k) != DONE:
                    out[k] = r.get("status", "?")
        return out

    def get(self, key: str, with_atoms: bool = True) -> TaskRow | None:
        """The row of task ``key`` (a finished one if there is one), or None."""
        rows = self.rows(with_atoms=with_atoms, task_key=key)
        rows.sort(key=lambda r: r.status != DONE)
        return rows[0] if rows else None

    def path(self, relative: str) -> Path:
        """Absolute path of a file referenced from a row."""
        return self.files / relative

    def count(self, **query: Any) -> int:
        db = self._connect()
        with db:
            return db.count(**query)


def _session_last_id(cur) -> int:
    """Id of the row this PostgreSQL session inserted last into ``systems``."""
    cur.execute("SELECT currval('systems_id_seq')")
    return int(cur.fetchone()[0])


def _plain_atoms(atoms: Atoms) -> Atoms:
    """A copy ASE's database accepts: no calculator or constraints, standard arrays only, no info."""
    a = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    if "initial_charges" in atoms.arrays:
        a.set_initial_charges(atoms.get_initial_charges())
    return a


def package_versions(names: Iterable[str] = ("qdlab", "ase", "numpy", "scipy", "torch", "chgnet", "sevenn",
                                              "mattersim", "tblite", "dftd3", "phonopy", "distributed")) -> dict:
    """Installed versions of the packages that can change a result (missing ones left out)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            continue
    return out
