"""Append-only trajectories that survive a kill: extended XYZ and ASE ``.traj``.

A frame is appended with one ``write`` call (extended XYZ) or one ASE ``Trajectory`` append and
flushed before the caller records it in its checkpoint. On resume the caller keeps exactly the
frames its checkpoint counts (:func:`keep_frames`): anything after them (a frame written after the
last checkpoint, a frame torn by a kill or a full disk) is dropped and written again, so a rerun
never loses or duplicates a frame. Extended XYZ is cut in place at the byte where frame ``n`` ends;
``.traj`` (a ULM file with a header and an offset table) is rewritten through a temporary
``.traj`` file and an atomic rename.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from ase import Atoms
from ase.io import Trajectory, write

from qdlab.errors import QdlabError
from qdlab.store.files import atomic_path, read_complete_frames

FORMATS = {".traj": "traj", ".extxyz": "extxyz", ".xyz": "extxyz"}


def trajectory_format(path: str | os.PathLike) -> str:
    """``traj`` or ``extxyz`` from the file's suffix (one-line error for anything else)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise QdlabError(f"trajectory must be .extxyz, .xyz or .traj, not {Path(path).name}")
    return FORMATS[suffix]


def append_frame(path: str | os.PathLike, frame: Atoms) -> None:
    """Append ``frame``; the bytes reach the file with one write and an fsync."""
    path = Path(path)
    if trajectory_format(path) == "traj":
        with Trajectory(path, "a") as traj:
            traj.write(frame)
        return
    buf = io.StringIO()
    write(buf, frame, format="extxyz")
    data = buf.getvalue().encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _extxyz_frame_ends(path: Path, n: int) -> list[int]:
    """Byte offsets where each of the first ``n`` complete frames of an extended XYZ file ends."""
    ends: list[int] = []
    with open(path, "rb") as fh:
        while len(ends) < n:
            head = fh.readline()
            if not head.endswith(b"\n"):
                break
            try:
                natoms = int(head)
            except ValueError:
                break
            complete = True
            for _ in range(natoms + 1):
                line = fh.readline()
                if not line.endswith(b"\n"):
                    complete = False
                    break
            if not complete:
                break
            ends.append(fh.tell())
    return ends


def keep_frames(path: str | os.PathLike, n: int) -> list[Atoms]:
    """Keep exactly the first ``n`` frames of ``path`` and return them (QdlabError if fewer exist)."""
    path = Path(path)
    fmt = trajectory_format(path)
    if n == 0:
        if path.exists():
            path.unlink()
        return []
    if fmt == "extxyz":
        ends = _extxyz_frame_ends(path, n) if path.exists() else []
        if len(ends) < n:
            raise QdlabError(f"{path} holds {len(ends)} complete frames but its checkpoint expects {n}; "
                             "rerun with --overwrite to start afresh")
        if path.stat().st_size != ends[-1]:
            os.truncate(path, ends[-1])
        return read_complete_frames(path)
    frames = read_complete_frames(path)
    if len(frames) < n:
        raise QdlabError(f"{path} holds {len(frames)} complete frames but its checkpoint expects {n}; "
                         "rerun with --overwrite to start afresh")
    # a ULM file may carry torn bytes after its last item or a half-updated header: rewrite it
    with atomic_path(path) as tmp:
        with Trajectory(tmp, "w") as traj:
            for f in frames[:n]:
                traj.write(f)
    return read_complete_frames(path)
