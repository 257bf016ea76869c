"""Shared helpers of the campaign tests: specs, the PostgreSQL test server, headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

def classical_phonon_spec(name: str, seeds, *, peaks: bool = False, workers: int = 2) -> str:
    """A campaign of small CsPbI3 2×2×2 models (classical LJ + Coulomb, seed 003 charges), one
    phonon task each (and a peaks step), one per seed; ``{store}`` left to fill in."""
    return (f'name = "{name}"\nstore = "{{store}}"\n[[grid]]\ncomposition = "CsPbI3"\nsize = "2"\n'
            f'neutrality = "surface-charge"\nseed = {list(seeds)}\n[[engines]]\nname = "classical"\n'
            f'[[steps]]\nworkflow = "phonons"\nchunk = 0\n' + ('[[steps]]\nworkflow = "peaks"\n' if peaks else "")
            + f"[execution]\nworkers = {workers}\n")


#: 8 small models, one phonon task each
KILL_SPEC = classical_phonon_spec("eight", range(8))

ASE_TABLES = ("systems", "species", "keys", "text_key_values", "number_key_values", "information")


def write_spec(folder: Path, text: str, name: str = "spec.toml", **fmt) -> Path:
    p = folder / name
    p.write_text(text.format(**fmt) if fmt else text)
    return p


def postgres_url() -> str:
    """URL of the test PostgreSQL server (QDLAB_TEST_POSTGRES_URL, set by .ci/run), or skip."""
    url = os.environ.get("QDLAB_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL test server: set QDLAB_TEST_POSTGRES_URL=postgresql://user:pw@host:5432/db "
                    "(.ci/run starts Debian's postgresql and sets it)")
    try:
        import psycopg2
    except ImportError:
        pytest.skip("psycopg2 is not installed (pip install psycopg2-binary ase-db-backends)")
    try:
        con = psycopg2.connect(url, connect_timeout=3)
    except Exception as exc:
        pytest.skip(f"PostgreSQL test server {url.split('@')[-1]} is not reachable: {exc}")
    con.close()
    return url


def reset_postgres(url: str) -> None:
    """Drop ASE's tables so that a test starts from an empty store."""
    import psycopg2

    con = psycopg2.connect(url)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS " + ", ".join(ASE_TABLES) + " CASCADE")
    con.close()


def chromium() -> str:
    """Path of a headless-capable Chromium, or skip (CI installs Debian's chromium)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    pytest.skip("chromium is not installed here (apt-get install -y chromium); .ci/run installs it")


def dump_dom(html: Path) -> str:
    """The page's DOM after its scripts ran, from headless Chromium."""
    exe = chromium()
    r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--virtual-time-budget=10000", "--dump-dom", html.resolve().as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout
