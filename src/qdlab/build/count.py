"""Atom counts of build recipes without building them (campaign planning, size checks).

:func:`predicted_atoms` is exact where the builder's count follows from the recipe alone: bare
perovskite cubes/cuboids (the A ions removed for neutrality follow from the formal charges), bare
slabs and PbS octahedra with or without their carboxylate shell (the ligand count is fixed by
neutrality). A perovskite ligand shell or a core/shell recipe is chosen site by site at build time;
there :func:`estimated_atoms` gives an estimate from the surface site counts (±10 % on the tested
recipes) and says so. Nothing here allocates more than one ligand's geometry.
"""

from __future__ import annotations

import math

from qdlab.build.gate import expected_atoms
from qdlab.errors import QdlabError


def _perovskite_ions(dims: tuple[int, int, int]) -> tuple[int, int, int]:
    """(A, B, X) sites of a cuboid core of nx×ny×nz unit cells (A on the corner grid)."""
    nx, ny, nz = dims
    n_a = (nx + 1) * (ny + 1) * (nz + 1)
    n_x = (nx + 1) * ny * nz + nx * (ny + 1) * nz + nx * ny * (nz + 1)
    return n_a, nx * ny * nz, n_x


def _bare_perovskite(recipe) -> int:
    """Atoms of the bare (ligand-free) perovskite model of ``recipe`` after the neutrality step."""
    from qdlab.build.model import parse_perovskite
    from qdlab.build.perovskite import parse_size

    comp = parse_perovskite(recipe.composition)
    n_a, n_b, n_x = _perovskite_ions(parse_size(recipe.size))
    charge = n_a * comp.q_A + n_b * comp.q_B + n_x * comp.q_X
    surplus, rem = divmod(charge, comp.q_A)
    if rem or surplus < 0:
        raise QdlabError(f"formal charge {charge:+d} e of {recipe.composition} size {recipe.size} cannot be "
                         f"removed with A ions")
    removed = surplus if recipe.neutrality == "remove-a" else 8  # remove-a: the surplus; else the 8 corners
    return n_a + n_b + n_x - removed


def _ligand_atoms(name: str) -> int:
    """Atoms one bound ligand adds (its 3D geometry as the builder places it)."""
    from qdlab.build.ligands import get_ligand, ligand_geometry

    return len(ligand_geometry(get_ligand(name)).symbols)


def _pbs_charge(recipe) -> int:
    """Formal charge (e) of the bare octahedron: metal shells |i|+|j|+|k| = s with s ≡ m (mod 2)."""
    from qdlab.build.model import formal_charge

    m = int(recipe.size)
    q_x = formal_charge(recipe.anion, "X")
    shells = [1] + [4 * s * s + 2 for s in range(1, m + 1)]
    n_metal = sum(n for s, n in enumerate(shells) if s % 2 == m % 2)
    n_anion = sum(shells) - n_metal
    return n_metal * (-q_x) + n_anion * q_x


def predicted_atoms(recipe) -> int | None:
    """Exact number of atoms ``build(recipe)`` makes, or None where only building tells (perovskite
    ligand shells, core/shell recipes). Raises :class:`QdlabError` for a recipe the builder refuses
    for the same reason (charge that A ions cannot remove, ligand charge not dividing the core's)."""
    kind = recipe.kind
    if kind == "pbs":
        core = expected_atoms(recipe)
        if not recipe.ligand:
            return core
        from qdlab.build.ligands import get_ligand

        lig = get_ligand(recipe.ligand)
        if lig.charge >= 0:
            return None  # refused by the builder with its own message
        n, rem = divmod(_pbs_charge(recipe), -lig.charge)
        return None if rem else core + n * _ligand_atoms(recipe.ligand)
    if recipe.ligands:
        return None
    if kind == "slab":
        return expected_atoms(recipe)  # exact for a bare slab
    if recipe.shell:
        return None
    return _bare_perovskite(recipe)


def check_recipe(recipe) -> None:
    """The checks ``build`` makes before its first atom, without building: composition, lattice
    constant, ligand names and coverages, size against memory (one-line :class:`QdlabError`)."""
    from qdlab.build.attach import parse_ligand_spec
    from qdlab.build.gate import check_recipe_size
    from qdlab.build.ligands import get_ligand
    from qdlab.build.model import check_element, parse_perovskite

    if recipe.kind == "pbs":
        check_element(recipe.metal)
        check_element(recipe.anion)
        if recipe.ligand:
            get_ligand(recipe.ligand)
    else:
        from qdlab.build.perovskite import DEFAULT_LATTICE

        comp = parse_perovskite(recipe.composition)
        if recipe.lattice is None and comp.name not in DEFAULT_LATTICE:
            raise QdlabError(f"no default lattice constant for {comp.name}; give one (--lattice, Å)")
        for spec in recipe.ligands:
            get_ligand(parse_ligand_spec(spec)[0])
    check_recipe_size(recipe)


def estimated_atoms(recipe) -> tuple[int, bool]:
    """(atoms, exact): :func:`predicted_atoms` where it is exact, otherwise an estimate from the
    bare model plus, per ligand, its count on the surface sites of its kind × its atoms."""
    n = predicted_atoms(recipe)
    if n is not None:
        return n, True
    from qdlab.build.attach import parse_ligand_spec
    from qdlab.build.ligands import get_ligand
    from qdlab.build.perovskite import parse_size

    dims = parse_size(recipe.size)
    nx, ny, nz = dims
    if recipe.kind == "slab":
        base = expected_atoms(recipe)
        sides = 1 if getattr(recipe, "sides", "top") == "top" else 2
        sites = {"A": sides * (nx * ny), "X": sides * (nx * ny)}
    else:
        base = _bare_perovskite(recipe)
        n_a = _perovskite_ions(dims)[0]
        sites = {"A": n_a - max(nx - 1, 0) * max(ny - 1, 0) * max(nz - 1, 0) - 8,
                 "X": 2 * (nx * ny + ny * nz + nx * nz)}
    total = base
    for spec in recipe.ligands:
        name, cov = parse_ligand_spec(spec)
        lig = get_ligand(name)
        count = int(cov) if cov > 1 else math.ceil(cov * max(sites.get(lig.site, 0), 0))
        total += count * (_ligand_atoms(name) - 1)  # each ligand takes the place of one ion
    return int(total), False
