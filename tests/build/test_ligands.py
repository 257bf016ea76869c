"""Ligand library: published formulas and charges, RDKit geometry, user ligands, errors."""

import json

import numpy as np
import pytest

from qdlab.build.ligands import (get_ligand, library, ligand_atoms, ligand_geometry, load_ligand_file,
                                 make_ligand, save_user_ligand, user_library_path)
from qdlab.errors import LigandError

# Formulas of the bound species as read from seed 000's published input models (LIGANDS.md).
SEED000_FORMULAS = {
    "MA": "CH6N", "BzO": "C7H5O2", "PhS": "C6H5S", "PhP": "C6H6O3P", "OP": "C8H18O3P",
    "DS": "C12H25O4S", "DBS": "C18H29O3S", "BS": "C6H5O3S", "Pyr-2-COO": "C5H4NO2", "2-Fur": "C5H3O3",
    "TPC": "C5H3O2S", "4-Br-2-TPC": "C5H2BrO2S", "INC": "C6H4NO2", "ANT": "C7H6NO2", "Py": "C5H5N",
    "Th": "C4H4S", "2-ABA": "C7H7NO2", "PDC": "C6H4N2O4", "Cys": "C3H7NO2S", "GSH": "C10H17N3O6S",
}
REQUIRED = ["MA", "BzO", "PhS", "PhP", "OP", "BS", "DBS", "DS", "PyS", "TPC", "2-Fur", "INC", "PIC", "ANT",
            "Cys", "acetate", "oleate", "oleylammonium"]


@pytest.mark.parametrize("name,formula", sorted(SEED000_FORMULAS.items()))
def test_formulas_match_seed000_models(name, formula):
    assert ligand_atoms(get_ligand(name)).get_chemical_formula(mode="hill") == formula


@pytest.mark.parametrize("name", REQUIRED)
def test_required_ligands_present_with_site_and_charge(name):
    lig = get_ligand(name)
    expected_charge = {"MA": 1, "oleylammonium": 1, "Cys": 0}.get(name, -1)
    assert lig.charge == expected_charge
    assert lig.site == ("A" if expected_charge > 0 else "X")


def test_motif_geometry_local_frame():
    g = ligand_geometry(get_ligand("BzO"), seed=0)
    motif = g.positions[g.motif_mask]
    assert [s for s, m in zip(g.symbols, g.motif_mask) if m] == ["O", "O"]
    np.testing.assert_allclose(motif.mean(0), 0, atol=1e-9)  # motif centroid at the origin
    np.testing.assert_allclose(motif[:, 2], 0, atol=1e-9)  # both O at the surface height
    # the ring lies along +z
    c = g.positions[[s == "C" for s in g.symbols]]
    assert c[:, 2].min() > 0.5
    # MMFF-optimised: aromatic C–C bonds near 1.39 Å, C–O of carboxylate near 1.26 Å
    from scipy.spatial.distance import pdist

    cc = pdist(c)
    assert 1.36 < cc.min() < 1.42
    assert abs(g.charges.sum() + 1) < 1e-9


def test_geometry_seeded_and_deterministic():
    lig = get_ligand("OctAm")
    a = ligand_geometry(lig, 3).positions
    from qdlab.build import ligands as mod

    mod._geometry.cache_clear()  # re-embed from scratch
    b = ligand_geometry(lig, 3).positions
    np.testing.assert_array_equal(a, b)


def test_long_chain_is_extended():
    g = ligand_geometry(get_ligand("OA"))
    heavy = np.array([s != "H" for s in g.symbols])
    assert g.positions[heavy, 2].max() > 12.0  # C18 chain stands up along the axis


def test_aliases_case_insensitive():
    assert get_ligand("benzoate").name == "BzO"
    assert get_ligand("bzo").name == "BzO"
    assert get_ligand("acetate").name == "OAc"


def test_unknown_and_invalid():
    with pytest.raises(LigandError, match="unknown ligand 'XYZ'"):
        get_ligand("XYZ")
    with pytest.raises(LigandError, match="invalid SMILES"):
        make_ligand("bad", "C1CC(", "[O-:1]", "X")
    with pytest.raises(LigandError, match="does not match"):
        make_ligand("nomotif", "CC(=O)[O-]", "[N+:1]", "X")
    with pytest.raises(LigandError, match="site must be"):
        make_ligand("bad_site", "CC(=O)[O-]", "[O-:1]", "Q")


def test_user_library_and_ligand_file(tmp_path):
    lig = make_ligand("PrO", "CCC(=O)[O-]", "[O-:1]C=[O:2]", "X", "propanoate")
    save_user_ligand(lig)
    assert user_library_path().exists()
    assert get_ligand("PrO").charge == -1
    assert "PrO" in library()
    toml = tmp_path / "lig.toml"
    toml.write_text('[[ligand]]\nname = "EA"\nsmiles = "CC[NH3+]"\nmotif = "[NX4+:1]"\nsite = "A"\n')
    (ea,) = load_ligand_file(toml)
    assert ea.site == "A" and ea.charge == 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "x", "smiles": "CC"}]))
    with pytest.raises(LigandError, match="lacks motif, site"):
        load_ligand_file(bad)
