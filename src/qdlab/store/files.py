"""Atomic file output: a result file is either complete or absent, never partial."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ase import Atoms
from ase.io import write as ase_write


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary file keeps the final suffix so format detection by extension still works.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale_temps(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.{TMP_TAG}{os.getpid()}-", suffix=final.suffix, dir=final.parent)
    os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a result file follows the umask
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


#: temporary files of :func:`atomic_path` are ``.<stem>.tmp-<pid>-<random><suffix>``: a SIGKILL in the
#: middle of a write leaves one behind, which the next write of the same file removes once its
#: process is gone (a live writer's temp is left alone)
TMP_TAG = "tmp-"


def _sweep_stale_temps(final: Path) -> None:
    prefix = f".{final.stem}.{TMP_TAG}"
    try:
        names = [n for n in os.listdir(final.parent) if n.startswith(prefix) and n.endswith(final.suffix)]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            try:
                (final.parent / name).unlink()
            except OSError:
                pass


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def current_umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_figure(fig, path: str | os.PathLike[str], dpi: int = 150, *, tight: bool = True) -> Path:
    """Write a matplotlib figure atomically (the suffix sets the format; no partial file on failure)
    and close it. The one figure writer of every layer (analysis, electronic, report)."""
    import matplotlib.pyplot as plt

    if tight:
        fig.tight_layout()
    final = Path(path)
    try:
        with atomic_path(final) as tmp:
            fig.savefig(tmp, dpi=dpi, format=final.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return final


def write_atoms(path: str | os.PathLike[str], atoms: Atoms | list[Atoms], format: str | None = None) -> Path:
    """Write one structure or a list of frames atomically (format from the extension by default)."""
    final = Path(path)
    fmt = format or ("extxyz" if final.suffix in {".xyz", ".extxyz"} else None)
    with atomic_path(final) as tmp:
        ase_write(tmp, atoms, format=fmt)
    return final


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write a text file atomically."""
    final = Path(path)
    with atomic_path(final) as tmp:
        tmp.write_text(text)
    return final


def write_npz(path: str | os.PathLike[str], **arrays) -> Path:
    """Replace a checkpoint ``.npz`` atomically and durably: written, flushed and fsync'ed under a
    temporary name, then renamed, so a kill or power loss leaves the old version or the new one."""
    import numpy as np

    final = Path(path)
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
    return final


def read_complete_frames(path: str | os.PathLike[str]) -> list[Atoms]:
    """Every complete frame of a trajectory (ASE ``.traj`` or extended XYZ) that may end in a frame
    cut off mid-write by a kill: the torn tail is dropped instead of failing the read."""
    from ase.io import Trajectory, iread

    path = Path(path)
    frames: list[Atoms] = []
    if not path.exists() or path.stat().st_size == 0:
        return frames
    try:
        if path.suffix == ".traj":
            with Trajectory(path) as traj:
                for k in range(len(traj)):
                    frames.append(traj[k])
        else:
            for atoms in iread(path, index=":", format="extxyz"):
                frames.append(atoms)
    except Exception:  # the torn last frame (or an unreadable file: nothing to resume from)
        pass
    return frames

