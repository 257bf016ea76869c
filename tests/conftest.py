"""Test configuration: single-threaded numerics and an isolated user ligand library."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_ligand_library(tmp_path, monkeypatch):
    """Never read or write the real ~/.config/qdlab ligand library from tests."""
    monkeypatch.setenv("QDLAB_LIGAND_FILE", str(tmp_path / "user_ligands.json"))


def closest_ligand_contact(atoms) -> float:
    """Closest distance (Å) between atoms of different molecules where a ligand is involved.

    Pairs inside one ligand and core–core pairs are excluded; brute-force reference via a KD-tree
    over all pairs within 3 Å.
    """
    lig = atoms.arrays["ligand_id"]
    pairs = cKDTree(atoms.positions).query_pairs(3.0, output_type="ndarray")
    i, j = pairs.T
    relevant = ((lig[i] >= 0) | (lig[j] >= 0)) & (lig[i] != lig[j])
    if not relevant.any():
        return np.inf
    d = np.linalg.norm(atoms.positions[i[relevant]] - atoms.positions[j[relevant]], axis=1)
    return float(d.min())
