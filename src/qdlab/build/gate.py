"""The input gate: every structure a command or the campaign reads passes here before any work.

:func:`read_structure` reads any file ASE reads and turns every way it can fail (missing, empty,
binary where text is expected, truncated, unparsable, zero atoms) into one line naming the file and
the fix; :func:`check_structure` refuses non-finite positions or cell, overlapping atoms and too
few atoms for the job; :func:`check_memory` compares a job's expected memory with what the machine
has. Element support of an engine is checked one layer up (:mod:`qdlab.engines.support`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase import Atoms

from qdlab.errors import QdlabError


class InputError(QdlabError):
    """A structure or job that qdlab refuses before doing any work."""


#: Extensions of text formats: a NUL byte in their first 4 kB means the file is not what it says.
TEXT_SUFFIXES = {".xyz", ".extxyz", ".cif", ".vasp", ".poscar", ".pdb", ".json", ".in", ".gen", ".mol", ".sdf",
                 ".xsf", ".cfg", ".res", ".gro", ".car", ".lmp", ".data", ""}

#: Two atoms closer than this (Å) are the same atom twice or a broken file (shortest real bond: H–H 0.74 Å).
MIN_DISTANCE_A = 0.5


def _fix_hint() -> str:
    return "give a structure file ASE reads (extxyz, xyz, cif, POSCAR, traj)"


def read_structure(path: str | os.PathLike, *, index: int | str = -1, fmt: str | None = None) -> Atoms:
    """Read one structure (the last frame by default) or refuse with one line; then :func:`check_structure`."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p} does not exist")
    if p.is_dir():
        raise InputError(f"{p} is a folder, not a structure file")
    if p.stat().st_size == 0:
        raise InputError(f"{p} is empty; {_fix_hint()}")
    name = p.name.lower()
    suffix = p.suffix.lower()
    is_text = suffix in TEXT_SUFFIXES or name.startswith(("poscar", "contcar"))
    if is_text and fmt is None:
        with open(p, "rb") as fh:
            if b"\0" in fh.read(4096):
                raise InputError(f"{p} is binary, not a {suffix or 'text'} structure file; {_fix_hint()}")
    from ase.io import read

    try:
        atoms = read(p, index=index, format=fmt)
    except Exception as exc:  # noqa: BLE001 - every reader failure becomes the same one-line refusal
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise InputError(f"cannot read {p} ({reason}): truncated or not a structure; {_fix_hint()}") from None
    if isinstance(atoms, list):
        if not atoms:
            raise InputError(f"{p} holds no frames; {_fix_hint()}")
        atoms = atoms[-1]
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise InputError(f"{p} holds no atoms; {_fix_hint()}")
    return atoms


def check_structure(atoms: Atoms, *, what: str = "structure", min_atoms: int = 1,
                    min_distance_A: float = MIN_DISTANCE_A) -> Atoms:
    """Refuse non-finite coordinates or cell, too few atoms and atoms closer than ``min_distance_A`` Å."""
    n = len(atoms)
    if n < min_atoms:
        raise InputError(f"{what} has {n} atom{'s' * (n != 1)}; this job needs at least {min_atoms}")
    pos = atoms.positions
    bad = np.flatnonzero(~np.isfinite(pos).all(1))
    if bad.size:
        raise InputError(f"{what} has non-finite (NaN/inf) coordinates on {bad.size} atom(s), first atom {bad[0]} "
                         f"({atoms.symbols[bad[0]]}); fix or regenerate the file")
    if not np.isfinite(atoms.cell.array).all():
        raise InputError(f"{what} has a non-finite cell; fix the lattice vectors")
    if n > 1:
        i, j, d = _closest_pair(atoms)
        if d < min_distance_A:
            raise InputError(f"{what}: atoms {i} ({atoms.symbols[i]}) and {j} ({atoms.symbols[j]}) are {d:.2f} Å "
                             f"apart (< {min_distance_A} Å): duplicated or overlapping atoms; remove them")
    return atoms


def _closest_pair(atoms: Atoms) -> tuple[int, int, float]:
    """The closest pair (i, j, distance Å), with periodic images along periodic axes."""
    from scipy.spatial import cKDTree

    if atoms.pbc.any() and atoms.cell.rank == 3:
        from ase.neighborlist import neighbor_list

        i, j, d = neighbor_list("ijd", atoms, MIN_DISTANCE_A * 2)
        keep = i != j
        if not keep.any():
            return 0, 0, np.inf
        k = int(np.argmin(np.where(keep, d, np.inf)))
        return int(i[k]), int(j[k]), float(d[k])
    d, idx = cKDTree(atoms.positions).query(atoms.positions, k=2)
    i = int(np.argmin(d[:, 1]))
    return i, int(idx[i, 1]), float(d[i, 1])


def available_memory_bytes() -> int:
    """Memory the machine can give a new job now (MemAvailable, capped by a cgroup limit)."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if avail is None:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for cg in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(cg).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            avail = min(avail, int(text))
    return int(avail)


def check_memory(need_bytes: float, what: str, fix: str, *, fraction: float = 0.8) -> None:
    """Refuse a job expected to need more than ``fraction`` of the available memory."""
    have = available_memory_bytes()
    limit = float(os.environ.get("QDLAB_MEMORY_LIMIT_GB", "inf")) * 1e9
    have = min(have, limit)
    if need_bytes > fraction * have:
        raise InputError(f"{what} needs about {need_bytes / 1e9:.3g} GB but this machine has {have / 1e9:.3g} GB "
                         f"available; {fix}")


def check_atom_count(n_atoms: int, what: str, fix: str, *, bytes_per_atom: float = 4000.0,
                     max_atoms: int = 2_000_000) -> None:
    """Refuse to build or load ``n_atoms`` atoms beyond ``max_atoms`` or the available memory."""
    if n_atoms > max_atoms:
        raise InputError(f"{what} would have {n_atoms:,} atoms (> {max_atoms:,}, beyond any engine qdlab drives); {fix}")
    check_memory(n_atoms * bytes_per_atom, what, fix)


def check_option(name: str, value: float | int | None, *, gt: float | None = None, ge: float | None = None,
                 le: float | None = None, unit: str = "") -> None:
    """Refuse an out-of-range or non-finite command option in one line (``--sigma must be > 0 cm⁻¹, not -1``)."""
    if value is None:
        return
    bounds = []
    if gt is not None:
        bounds.append(f"> {gt:g}")
    if ge is not None:
        bounds.append(f"≥ {ge:g}")
    if le is not None:
        bounds.append(f"≤ {le:g}")
    ok = isinstance(value, (int, float)) and np.isfinite(value)
    ok = ok and (gt is None or value > gt) and (ge is None or value >= ge) and (le is None or value <= le)
    if not ok:
        raise InputError(f"{name} must be {' and '.join(bounds)}{' ' + unit if unit else ''}, not {value}")


def hessian_bytes(n_atoms: int) -> float:
    """Memory of a dense Γ Hessian job: the 3N×3N matrix, its symmetrised copy and eigenvectors (float64)."""
    return 3.0 * (3 * n_atoms) ** 2 * 8


def expected_atoms(recipe) -> int:
    """Atoms a build recipe will make, from its size alone (no atom is allocated; ligands add ≤ 2×)."""
    kind = getattr(recipe, "kind", None)
    if kind == "pbs":
        m = int(recipe.size)
        if m < 0:
            raise InputError(f"PbS size must be ≥ 1, not {m}")
        # sites with |i|+|j|+|k| ≤ m on the rock-salt lattice (units of a/2)
        return int(sum((2 * (m - abs(i)) + 1) ** 2 // 2 + 1 for i in range(-m, m + 1)))
    from qdlab.build.perovskite import parse_size

    nx, ny, nz = parse_size(recipe.size)
    if kind == "slab":  # periodic in x, y: A on nz + 1 layers, X on the top A layer too
        return 5 * nx * ny * nz + 2 * nx * ny
    a = (nx + 1) * (ny + 1) * (nz + 1)
    x = (nx + 1) * ny * nz + nx * (ny + 1) * nz + nx * ny * (nz + 1)
    return a + nx * ny * nz + x


def check_recipe_size(recipe, *, bytes_per_atom: float = 2000.0) -> int:
    """Refuse a recipe whose model would not fit (atoms × ``bytes_per_atom``, ligands counted as doubling it)
    before anything is built. Returns the expected number of atoms of the core."""
    n = expected_atoms(recipe)
    capped = bool(getattr(recipe, "ligands", None)) or bool(getattr(recipe, "ligand", None))
    check_atom_count((2 if capped else 1) * n, f"a {recipe.kind} model of size {recipe.size}",
                     "choose a smaller --size", bytes_per_atom=bytes_per_atom)
    return n
