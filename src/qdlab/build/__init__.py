"""Nanocrystal model builder: perovskite cubes/cuboids/slabs, core/shell, PbS octahedra, ligands.

Entry points: :func:`build` with a recipe (:class:`PerovskiteRecipe`, :class:`SlabRecipe`,
:class:`PbSRecipe`), :func:`rattle` for training structures, the ligand library
(:func:`get_ligand`, :func:`library`, :func:`register_ligand`) and :func:`summary`.
"""

from qdlab.build.ligands import Ligand, get_ligand, library, make_ligand, register_ligand
from qdlab.build.model import summary
from qdlab.build.rattle import rattle
from qdlab.build.recipes import PbSRecipe, PerovskiteRecipe, SlabRecipe, build

__all__ = ["Ligand", "PbSRecipe", "PerovskiteRecipe", "SlabRecipe", "build", "get_ligand", "library",
           "make_ligand", "rattle", "register_ligand", "summary"]
