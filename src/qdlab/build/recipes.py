"""Build recipes (pydantic) and the functions that turn them into labelled models.

A recipe plus its seed fully determines the structure: the same recipe and seed give an
identical model, and the recipe is stored as JSON in ``atoms.info["recipe"]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Literal

import numpy as np
from ase import Atoms
from pydantic import BaseModel, ConfigDict, Field

from qdlab.build import perovskite as pv
from qdlab.build.attach import MIN_DISTANCE, LigandRequest, SitePool, attach_ligands, parse_ligand_spec
from qdlab.build.ligands import get_ligand
from qdlab.build.model import check_element, finalize, parse_perovskite
from qdlab.build.rocksalt import PBS_LATTICE, octahedron
from qdlab.errors import BuildError, LigandError

Progress = Callable[[int, int], None] | None


class _Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = Field(0, description="seed for every random choice")
    vacuum: float = Field(15.0, gt=0, description="vacuum on every side, Å")
    min_distance: float = Field(MIN_DISTANCE, gt=0, description="closest allowed ligand distance, Å")


class PerovskiteRecipe(_Recipe):
    """An ABX3 cube or cuboid nanocrystal (A–X terminated), optionally core/shell and capped."""

    kind: Literal["perovskite"] = "perovskite"
    composition: str = "CsPbBr3"
    size: str = Field("3", description="n or nx x ny x nz in unit cells, e.g. '4x4x6'")
    lattice: float | None = Field(None, gt=0, description="cubic lattice constant a, Å")
    phase: Literal["cubic", "orthorhombic"] = "cubic"
    glazer: str = Field("a-a-c+", description="Glazer tilt pattern for the orthorhombic phase")
    tilt_deg: tuple[float, float, float] = Field((10.0, 10.0, 10.0), description="tilt angles about x, y, z")
    neutrality: Literal["remove-a", "surface-charge", "electrons"] = "remove-a"
    ligands: list[str] = Field(default_factory=list, description="'NAME:coverage' or 'NAME:count'")
    shell: str | None = Field(None, description="'ELEMENT:k' replaces B in the outer k unit cells")
    balance: Literal["remove-a", "keep"] = Field(
        "remove-a", description="neutral X-site ligands: remove surface A to stay neutral, or keep the charge")


class SlabRecipe(_Recipe):
    """A periodic (001) slab, A–X terminated on both sides, for ligand binding energies."""

    kind: Literal["slab"] = "slab"
    composition: str = "CsPbBr3"
    size: str = Field("2x2x3", description="nx x ny lateral cells x nz octahedral layers")
    lattice: float | None = Field(None, gt=0)
    ligands: list[str] = Field(default_factory=list)
    sides: Literal["top", "both"] = "top"


class PbSRecipe(_Recipe):
    """A rock-salt octahedron with metal-terminated {111} facets, carboxylate capped to neutrality."""

    kind: Literal["pbs"] = "pbs"
    metal: str = "Pb"
    anion: str = "S"
    size: int = Field(2, description="octahedron radius m (|i|+|j|+|k| ≤ m, units of a/2): 2 → Pb19S6")
    lattice: float = Field(PBS_LATTICE, gt=0)
    ligand: str | None = Field("OAc", description="anionic ligand added to reach neutrality (None: bare)")


Recipe = Annotated[PerovskiteRecipe | SlabRecipe | PbSRecipe, Field(discriminator="kind")]


def _lattice(comp_name: str, lattice: float | None) -> float:
    a = lattice if lattice is not None else pv.DEFAULT_LATTICE.get(comp_name)
    if a is None:
        raise BuildError(f"no default lattice constant for {comp_name}; give one (--lattice, Å)")
    return float(a)


def _requests(specs: list[str]) -> list[LigandRequest]:
    out = []
    for spec in specs:
        name, cov = parse_ligand_spec(spec)
        out.append(LigandRequest(get_ligand(name), cov))
    return out


def perovskite_pools(atoms: Atoms, facets: tuple[str, ...] | None = None) -> dict[str, SitePool]:
    """Surface A sites and outward-pointing surface X sites (depth 0) of a perovskite core."""
    role, depth, facet = atoms.arrays["role"], atoms.arrays["depth"], atoms.arrays["facet"]
    q = atoms.get_initial_charges()
    pools = {}
    for kind in ("A", "X"):
        mask = (role == kind) & (depth == 0)
        if facets is not None:
            mask &= np.isin(facet, facets)
        idx = np.flatnonzero(mask)
        normals = np.array([pv.facet_normal(f) for f in facet[idx]]).reshape(-1, 3)
        pools[kind] = SitePool(kind=kind, positions=atoms.positions[idx], normals=normals,
                               facets=facet[idx].copy(), atom_index=idx, ion_charge=q[idx])
    return pools


def _parse_shell(spec: str) -> tuple[str, int]:
    m = re.fullmatch(r"([A-Z][a-z]?):(\d+)", spec.strip())
    if not m:
        raise BuildError(f"shell spec {spec!r} must be ELEMENT:LAYERS, e.g. Ca:1")
    return check_element(m.group(1)), int(m.group(2))


def build_perovskite(r: PerovskiteRecipe, progress: Progress = None) -> Atoms:
    """Build an ABX3 cube/cuboid nanocrystal from a recipe (see :class:`PerovskiteRecipe`)."""
    comp = parse_perovskite(r.composition)
    dims = pv.parse_size(r.size)
    a = _lattice(comp.name, r.lattice)
    requests = _requests(r.ligands)  # validate ligands before any work
    rng = np.random.default_rng(r.seed)
    atoms = pv.core_atoms(comp, dims, a)
    if r.shell:
        pv.apply_shell(atoms, *_parse_shell(r.shell))

    surplus = pv.surplus_a(atoms, comp.q_A)
    corners = pv.corner_a(atoms)
    # remove-a removes exactly the surplus (7 of the 8 corners for n = 2); the other strategies
    # always remove the 8 corners and compensate what is left
    n_corner = min(len(corners), surplus) if r.neutrality == "remove-a" else len(corners)
    remove = list(np.sort(rng.choice(corners, n_corner, replace=False)))
    if r.neutrality == "remove-a" and surplus > n_corner:
        role, depth = atoms.arrays["role"], atoms.arrays["depth"]
        others = np.setdiff1d(np.flatnonzero((role == "A") & (depth == 0)), remove)
        if surplus - n_corner > len(others):
            raise BuildError("not enough surface A sites to remove for neutrality")
        remove += list(np.sort(rng.choice(others, surplus - n_corner, replace=False)))
    keep = np.ones(len(atoms), bool)
    keep[remove] = False
    atoms = atoms[keep]
    if r.phase == "orthorhombic":
        pv.apply_tilts(atoms, a, r.glazer, r.tilt_deg)

    if requests:
        atoms = attach_ligands(atoms, requests, perovskite_pools(atoms), r.seed,
                               min_distance=r.min_distance, progress=progress).atoms
    elif "cell_index" in atoms.arrays:
        del atoms.arrays["cell_index"]

    extra_electrons = 0
    q_total = int(round(atoms.get_initial_charges().sum()))
    role, depth = atoms.arrays["role"], atoms.arrays["depth"]
    surf_a = np.flatnonzero((role == "A") & (depth == 0))
    if r.neutrality == "remove-a" and q_total != 0 and r.balance == "remove-a":
        # neutral (or less charged) X-site ligands leave a surplus: remove more surface A
        n = q_total / comp.q_A
        if n < 0 or abs(n - round(n)) > 1e-9 or round(n) > len(surf_a):
            raise BuildError(f"net charge {q_total:+d} e cannot be balanced by removing surface A")
        drop = rng.choice(surf_a, int(round(n)), replace=False)
        keep = np.ones(len(atoms), bool)
        keep[drop] = False
        atoms = atoms[keep]
    elif r.neutrality == "electrons":
        extra_electrons = q_total
    elif r.neutrality == "surface-charge":
        if not len(surf_a):
            raise BuildError("no surface A left to carry the compensating charge")
        q_set = pv.FF_CHARGES.get(comp.name, {"A": comp.q_A, "B": comp.q_B, "X": comp.q_X})
        q = atoms.get_initial_charges()
        core = role != "ligand"
        for kind in ("A", "B", "X"):
            q[core & (role == kind)] = q_set[kind]
        q[surf_a] = 0.0
        q[surf_a] = -q.sum() / len(surf_a)
        atoms.set_initial_charges(q)
        atoms.info["q_surface_A"] = float(q[surf_a[0]])
    atoms.info.update(size="x".join(map(str, dims)), lattice_A=a, phase=r.phase, neutrality=r.neutrality)
    return finalize(atoms, kind="perovskite", recipe=r.model_dump(), seed=r.seed,
                    extra_electrons=extra_electrons, vacuum=r.vacuum)


def build_slab(r: SlabRecipe, progress: Progress = None) -> Atoms:
    """Periodic A–X terminated (001) slab (neutral as cut); ligands on the top or both faces."""
    comp = parse_perovskite(r.composition)
    dims = pv.parse_size(r.size)
    a = _lattice(comp.name, r.lattice)
    requests = _requests(r.ligands)
    periodic = (True, True, False)
    atoms = pv.core_atoms(comp, dims, a, periodic)
    del atoms.arrays["cell_index"]
    atoms.cell = [dims[0] * a, dims[1] * a, dims[2] * a]
    atoms.pbc = periodic
    if requests:
        facets = ("+z",) if r.sides == "top" else ("+z", "-z")
        atoms = attach_ligands(atoms, requests, perovskite_pools(atoms, facets), r.seed,
                               min_distance=r.min_distance, progress=progress).atoms
        atoms.cell = [dims[0] * a, dims[1] * a, dims[2] * a]
        atoms.pbc = periodic
    atoms.center(vacuum=r.vacuum, axis=2)
    atoms.info.update(size="x".join(map(str, dims)), lattice_A=a)
    return finalize(atoms, kind="slab", recipe=r.model_dump(), seed=r.seed, vacuum=None)


def build_pbs(r: PbSRecipe, progress: Progress = None) -> Atoms:
    """Rock-salt octahedron (default Pb19S6) capped with enough carboxylates to be neutral."""
    atoms, pool = octahedron(r.metal, r.anion, r.size, r.lattice)
    q = int(round(atoms.get_initial_charges().sum()))
    if r.ligand:
        lig = get_ligand(r.ligand)
        if lig.site != "X" or lig.charge >= 0:
            raise LigandError(f"{lig.name} (charge {lig.charge:+d}) cannot neutralise a metal-rich "
                              f"octahedron: use an anionic ligand such as OAc or OA")
        n, rem = divmod(q, -lig.charge)
        if rem:
            raise LigandError(f"charge {q:+d} e is not a multiple of the {lig.name} charge {lig.charge:+d}")
        atoms = attach_ligands(atoms, [LigandRequest(lig, n=n)], {"X": pool}, r.seed,
                               min_distance=r.min_distance, progress=progress).atoms
    atoms.info.update(size=r.size, lattice_A=r.lattice)
    return finalize(atoms, kind="pbs", recipe=r.model_dump(), seed=r.seed, vacuum=r.vacuum)


def build(recipe: PerovskiteRecipe | SlabRecipe | PbSRecipe, progress: Progress = None) -> Atoms:
    """Build any recipe."""
    from qdlab.build.gate import check_recipe_size
    from qdlab.build.sanity import check_built

    check_recipe_size(recipe)  # before any atom is allocated
    builders = {"perovskite": build_perovskite, "slab": build_slab, "pbs": build_pbs}
    return check_built(builders[recipe.kind](recipe, progress), recipe)
