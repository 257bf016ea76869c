"""ABX3 perovskite nanocrystals: cubes, cuboids and periodic slabs, A–X terminated.

Geometry (SCIENCE.md §1), in units of the cubic lattice constant a (Å): B at (i+½, j+½, k+½),
X at B ± ½ along x, y, z (deduplicated), A at integer (i, j, k). A cube n×n×n then holds
B = n³, X = 3n²(n+1), A = (n+1)³ with a formal surplus of 3n+1 A⁺ that the neutrality strategy
removes or compensates. Orthorhombic (Pbnm-like) models apply a Glazer tilt pattern (a⁻a⁻c⁺ by
default) to the cubic cut: every octahedron is rotated rigidly about its B, the B/A grid is
contracted by the mean projection of the rotated axes so corner-sharing is kept, and each X sits
at the mean of the positions its (one or two) octahedra give it.
"""

from __future__ import annotations

import re

import numpy as np
from ase import Atoms

from qdlab.build.model import NONE, PerovskiteComposition, check_element, formal_charge, new_labels
from qdlab.errors import BuildError

#: Cubic lattice constants (Å) used when none is given: CsPbBr3 from seed 000, CsPbI3 from seed 003
#: (edge n·0.629 nm), CsPbCl3 the cubic bulk value.
DEFAULT_LATTICE = {"CsPbBr3": 5.95, "CsPbI3": 6.29, "CsPbCl3": 5.61}

#: Classical force-field charges (e) of seed 003 (CsPbI3, core Cs); the surface-charge strategy
#: uses them when the composition matches, formal charges otherwise.
FF_CHARGES = {"CsPbI3": {"A": 0.86, "B": 0.85, "X": -0.57}}

_AXES = "xyz"


def parse_size(size: str | int | tuple[int, ...]) -> tuple[int, int, int]:
    """``3`` → (3, 3, 3); ``"4x4x6"`` → (4, 4, 6). Every edge must be ≥ 1 unit cell."""
    if isinstance(size, (tuple, list)):
        dims = tuple(int(s) for s in size)
    else:
        text = str(size).strip().lower()
        if not re.fullmatch(r"-?\d+(x-?\d+){0,2}", text):
            raise BuildError(f"size '{size}' must be an integer n or nx x ny x nz (e.g. 4x4x6)")
        dims = tuple(int(s) for s in text.split("x"))
    if len(dims) == 1:
        dims = dims * 3
    if len(dims) != 3:
        raise BuildError(f"size '{size}' must have one or three edge lengths")
    if min(dims) < 1:
        raise BuildError(f"size '{size}': every edge must be at least 1 unit cell (n ≥ 1)")
    return dims  # type: ignore[return-value]


def lattice_sites(dims: tuple[int, int, int], periodic: tuple[bool, bool, bool] = (False, False, False)):
    """Fractional site coordinates (units of a) and site types of an A–X terminated cuboid.

    Along a periodic axis the last A/X plane is the image of the first and is omitted.
    Returns ``(frac, kind, cell_index)``: ``kind`` in {"A","B","X"}; ``cell_index`` the integer
    (i, j, k) of each B (−1 rows for A and X).
    """
    nx, ny, nz = dims
    top = [n if not p else n - 1 for n, p in zip(dims, periodic)]  # last A/X plane index

    def grid(rx, ry, rz):
        g = np.stack(np.meshgrid(rx, ry, rz, indexing="ij"), -1).reshape(-1, 3)
        return g.astype(float)

    ia = [np.arange(t + 1) for t in top]
    ib = [np.arange(n) for n in dims]
    a_sites = grid(*ia)
    b_idx = grid(*ib)
    b_sites = b_idx + 0.5
    x_sites = np.concatenate([
        grid(ia[0], ib[1] + 0.5, ib[2] + 0.5),  # X on x-bonds: (i, j+½, k+½)
        grid(ib[0] + 0.5, ia[1], ib[2] + 0.5),  # (i+½, j, k+½)
        grid(ib[0] + 0.5, ib[1] + 0.5, ia[2]),  # (i+½, j+½, k)
    ])
    frac = np.concatenate([a_sites, b_sites, x_sites])
    kind = np.array(["A"] * len(a_sites) + ["B"] * len(b_sites) + ["X"] * len(x_sites))
    cell_index = np.full((len(frac), 3), -1, dtype=int)
    cell_index[len(a_sites):len(a_sites) + len(b_sites)] = b_idx.astype(int)
    return frac, kind, cell_index


def depth_and_facet(frac: np.ndarray, dims, periodic=(False, False, False)):
    """Depth below the surface in half unit cells and the facet label of every site.

    Depth = 2·min over non-periodic axes of the distance (units of a) to the nearer face. Sites
    of the outer unit cell (depth 0 or 1) are labelled with the face(s) at that minimum
    (``"-x"``, ``"+z"``, ``"-x+y"`` on an edge); deeper sites get ``"-"``.
    """
    dims_a = np.asarray(dims, float)
    lo = frac
    hi = dims_a - frac
    dist = np.minimum(lo, hi)
    dist[:, np.asarray(periodic)] = np.inf
    dmin = dist.min(axis=1)
    depth = np.rint(2 * dmin).astype(int)
    facet = np.full(len(frac), NONE, dtype="U16")
    for i in np.flatnonzero(depth <= 1):
        label = ""
        for ax in range(3):
            if periodic[ax] or abs(dist[i, ax] - dmin[i]) > 1e-6:
                continue
            if abs(lo[i, ax] - dmin[i]) < 1e-6:
                label += "-" + _AXES[ax]
            if abs(hi[i, ax] - dmin[i]) < 1e-6:
                label += "+" + _AXES[ax]
        facet[i] = label
    return depth, facet


def facet_normal(label: str) -> np.ndarray:
    """Outward unit normal of a facet label (edges/corners: the normalised sum of face normals)."""
    n = np.zeros(3)
    for sign, ax in re.findall(r"([+-])([xyz])", label):
        n[_AXES.index(ax)] += 1.0 if sign == "+" else -1.0
    norm = np.linalg.norm(n)
    if norm == 0:
        raise BuildError(f"facet label {label!r} has no normal")
    return n / norm


def core_atoms(comp: PerovskiteComposition, dims, a: float, periodic=(False, False, False)) -> Atoms:
    """Unrelaxed cubic-phase core with labels and formal charges (no atoms removed yet)."""
    frac, kind, cell_index = lattice_sites(dims, periodic)
    depth, facet = depth_and_facet(frac, dims, periodic)
    symbols = np.where(kind == "A", comp.A, np.where(kind == "B", comp.B, comp.X))
    atoms = Atoms(symbols=list(symbols), positions=frac * a)
    new_labels(atoms, kind, depth, facet)
    atoms.new_array("cell_index", cell_index)
    q = np.select([kind == "A", kind == "B"], [comp.q_A, comp.q_B], comp.q_X).astype(float)
    atoms.set_initial_charges(q)
    return atoms


def apply_shell(atoms: Atoms, element: str, layers: int) -> int:
    """Replace B by ``element`` in the outer ``layers`` unit cells; flag the shell region.

    Returns the number of B replaced. The B formal charge is kept (e.g. Ca²⁺ for Pb²⁺).
    """
    check_element(element)
    if layers < 1:
        raise BuildError(f"shell thickness must be ≥ 1 unit cell, got {layers}")
    depth, role = atoms.arrays["depth"], atoms.arrays["role"]
    core = role != "ligand"
    shell = core & (depth < 2 * layers)
    b = shell & (role == "B")
    if b.sum() == (role == "B").sum():
        raise BuildError(f"a {layers}-cell shell replaces every B: no core left; use a larger size")
    numbers = atoms.get_atomic_numbers()
    numbers[b] = Atoms(element).numbers[0]
    atoms.set_atomic_numbers(numbers)
    atoms.arrays["shell"] = shell
    return int(b.sum())


def corner_a(atoms: Atoms) -> np.ndarray:
    """Indices of the A sites on the corners of the cuboid (three facets meet)."""
    facet, role = atoms.arrays["facet"], atoms.arrays["role"]
    n_faces = np.char.count(facet.astype(str), "x") + np.char.count(facet.astype(str), "y") + \
        np.char.count(facet.astype(str), "z")
    return np.flatnonzero((role == "A") & (n_faces == 3))


def surplus_a(atoms: Atoms, q_a: int) -> int:
    """Number of A⁺ ions that make the formal charge zero (≥ 0)."""
    q = float(atoms.get_initial_charges().sum())
    n = q / q_a
    if abs(n - round(n)) > 1e-9 or n < -1e-9:
        raise BuildError(f"formal charge {q:+.0f} e cannot be removed with A ions of charge {q_a:+d}")
    return int(round(n))


def glazer_rotations(cell_index: np.ndarray, pattern: str, angles_deg) -> np.ndarray:
    """Rotation matrix of every octahedron for a Glazer tilt pattern such as ``"a-a-c+"``.

    Anti-phase (``-``) tilts about axis α alternate sign with every octahedron; in-phase (``+``)
    tilts keep the sign along α and alternate across it; ``0`` means no tilt about α. The total
    rotation is Rz·Ry·Rx.
    """
    signs = re.fullmatch(r"[a-c]([+\-0])[a-c]([+\-0])[a-c]([+\-0])", pattern.replace("⁻", "-").replace("⁺", "+"))
    if not signs:
        raise BuildError(f"Glazer pattern {pattern!r} must look like 'a-a-c+'")
    th = np.radians(np.asarray(angles_deg, float))
    if th.shape != (3,):
        raise BuildError("tilt angles must be three numbers (about x, y, z), degrees")
    mats = []
    for ax, phase in enumerate(signs.groups()):
        if phase == "0":
            s = np.zeros(len(cell_index))
        elif phase == "-":
            s = (-1.0) ** cell_index.sum(1)
        else:
            s = (-1.0) ** (cell_index.sum(1) - cell_index[:, ax])
        ang = s * th[ax]
        c, sn = np.cos(ang), np.sin(ang)
        R = np.zeros((len(ang), 3, 3))
        i, j = [k for k in range(3) if k != ax]
        R[:, ax, ax] = 1
        R[:, i, i] = c
        R[:, j, j] = c
        R[:, j, i] = sn
        R[:, i, j] = -sn
        mats.append(R)
    return mats[2] @ mats[1] @ mats[0]


def apply_tilts(atoms: Atoms, a: float, pattern: str = "a-a-c+", angles_deg=(10.0, 10.0, 10.0)) -> None:
    """Apply octahedral tilts in place (orthorhombic-like model from the cubic cut)."""
    role = atoms.arrays["role"]
    core = role != "ligand"
    b_mask = core & (role == "B")
    cells = atoms.arrays["cell_index"][b_mask]
    R = glazer_rotations(cells, pattern, angles_deg)
    # contract the grid so rigid rotated octahedra still share corners: mean axial projection
    scale = np.array([R[:, ax, ax].mean() for ax in range(3)])
    pos0 = atoms.positions.copy()
    new = pos0 * scale
    b_idx = np.flatnonzero(b_mask)
    grid = np.full(cells.max(0) + 1, -1, dtype=int)  # cell (i, j, k) -> row of R
    grid[tuple(cells.T)] = np.arange(len(cells))
    x_idx = np.flatnonzero(core & (role == "X"))
    frac = pos0[x_idx] / a
    ax = np.argmin(np.abs(frac - np.rint(frac)), axis=1)  # the integer coordinate = bond axis
    rows = np.arange(len(x_idx))
    acc = np.zeros((len(x_idx), 3))
    cnt = np.zeros(len(x_idx))
    for offset in (0, -1):  # the B on either side of X along its bond axis
        cell = np.floor(frac).astype(int)
        cell[rows, ax] = np.rint(frac[rows, ax]).astype(int) + offset
        ok = np.all((cell >= 0) & (cell < grid.shape), axis=1)
        n = np.full(len(x_idx), -1)
        n[ok] = grid[tuple(cell[ok].T)]
        ok &= n >= 0
        bi = b_idx[n[ok]]
        acc[ok] += new[bi] + np.einsum("kij,kj->ki", R[n[ok]], pos0[x_idx[ok]] - pos0[bi])
        cnt[ok] += 1
    new[x_idx] = acc / cnt[:, None]
    atoms.positions = new
