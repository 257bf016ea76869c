"""Binding energies: classical toy system against hand single points; far ligand → 0; committee."""

import json

import numpy as np
import pytest
from ase.io import read

from qdlab.build import PerovskiteRecipe, build
from qdlab.build.ligands import get_ligand, ligand_atoms
from qdlab.engines.classical import LJCoulomb, SEED003_LJ
from qdlab.errors import QdlabError
from qdlab.workflows.binding import BindingResult, BindingSettings, binding_energies, plan_binding, run_plan
from qdlab.workflows.relax import RelaxSettings

#: toy LJ parameters (σ Å, ε eV) for the acetate atoms on top of seed 003's CsPbI3 set
LJ = {**SEED003_LJ, "C": (1.2, 0.004), "H": (0.6, 0.002), "O": (1.3, 0.006)}  # small σ: bonded pairs barely repel
LJ2 = {**LJ, "I": (4.1, 0.05), "O": (1.4, 0.008)}  # a second "model"


def classical(lj=LJ, label=None, **options):
    return {"name": "classical", "options": {"lj": lj, **options}, "display": label}


@pytest.fixture(scope="module")
def host():
    return build(PerovskiteRecipe(composition="CsPbI3", size="1", seed=0))  # Cs4PbI6, 11 atoms


def e(atoms, calc):
    a = atoms.copy()
    a.calc = calc
    return float(a.get_potential_energy())


def test_single_points_equal_hand_computation(host, tmp_path):
    s = BindingSettings(ligands=["OAc"], engine=classical(), relax=False)
    res = binding_energies(host, s, tmp_path)
    idx = res.site_index["X"]
    calc = LJCoulomb(lj=LJ)  # an independent engine instance
    vacancy = host.copy()
    del vacancy[idx]  # built by hand, not taken from the plan
    lig = ligand_atoms(get_ligand("OAc"))  # unboxed local frame (energy is translation invariant)
    cplx = read(tmp_path / "units" / "complex_OAc.extxyz")
    assert len(cplx) == len(host) - 1 + len(lig)
    hand = e(cplx, calc) - e(vacancy, calc) - e(lig, calc)
    assert res.binding["OAc"].mean == pytest.approx(hand, abs=1e-6)
    ion = host[[idx]]
    hand_ion = e(host, calc) - e(vacancy, calc) - e(ion, calc)
    assert res.ion_binding["X"].mean == pytest.approx(hand_ion, abs=1e-6)
    assert res.exchange["OAc"].mean == pytest.approx(hand - hand_ion, abs=1e-6)
    assert res.ion["X"] == "I" and res.binding["OAc"].spread == 0.0
    # saved and loaded back identically
    back = BindingResult.load(tmp_path / "binding.json")
    assert back.to_dict() == json.loads((tmp_path / "binding.json").read_text())
    assert back.binding["OAc"] == res.binding["OAc"]
    assert back.flat()["exchange_OAc_eV"] == pytest.approx(hand - hand_ion, abs=1e-6)


def test_relaxed_energies_are_those_of_the_saved_structures(host, tmp_path):
    s = BindingSettings(ligands=["OAc"], engine=classical(), relax=True, relaxation={"fmax": 0.05, "steps": 60})
    res = binding_energies(host, s, tmp_path)
    calc = LJCoulomb(lj=LJ)
    u = {n: read(tmp_path / "units" / f"{n}.extxyz") for n in ("complex_OAc", "vacancy_X", "ligand_OAc")}
    hand = e(u["complex_OAc"], calc) - e(u["vacancy_X"], calc) - e(u["ligand_OAc"], calc)
    assert res.binding["OAc"].mean == pytest.approx(hand, abs=1e-6)
    # relaxation lowered the complex below its unrelaxed single point
    plan = plan_binding(host, s)
    assert e(u["complex_OAc"], calc) < e(plan.structures["complex_OAc"], calc)
    # rerun: every unit reused (same numbers, no new relaxation)
    mtime = (tmp_path / "units" / "complex_OAc.extxyz").stat().st_mtime_ns
    again = binding_energies(host, s, tmp_path)
    assert again.binding["OAc"].mean == res.binding["OAc"].mean
    assert (tmp_path / "units" / "complex_OAc.extxyz").stat().st_mtime_ns == mtime


def test_far_ligand_binds_zero(host, tmp_path):
    # LJ only (charges off): a ligand 60 Å away interacts by ~(σ/r)^6 ≈ 1e-8 eV per pair
    s = BindingSettings(ligands=["OAc"], engine=classical(charges={"Cs": 0.0}), relax=False)
    plan = plan_binding(host, s)
    cplx = plan.structures["complex_OAc"]
    lig = cplx.arrays["role"] == "ligand"
    away = cplx.positions[lig].mean(0) - cplx.positions[~lig].mean(0)
    cplx.positions[lig] += 60.0 * away / np.linalg.norm(away)
    res = run_plan(plan, s, tmp_path)
    assert abs(res.binding["OAc"].mean) < 1e-5
    near = binding_energies(host, s, tmp_path / "near")
    assert near.binding["OAc"].mean < -1e-3  # placed on its site it does bind


def test_committee_identical_and_two_models(host, tmp_path):
    one = BindingSettings(ligands=["OAc"], engine=classical(), relax=False,
                          committee=[classical(label="same-again")])
    r1 = binding_energies(host, one, tmp_path / "same")
    assert r1.binding["OAc"].spread == 0.0 and r1.exchange["OAc"].spread == 0.0
    a = binding_energies(host, BindingSettings(ligands=["OAc"], engine=classical(), relax=False), tmp_path / "a")
    b = binding_energies(host, BindingSettings(ligands=["OAc"], engine=classical(LJ2), relax=False), tmp_path / "b")
    ab = binding_energies(host, BindingSettings(ligands=["OAc"], engine=classical(), relax=False,
                                                committee=[classical(LJ2, label="set2")]), tmp_path / "ab")
    xa, xb = a.binding["OAc"].mean, b.binding["OAc"].mean
    assert abs(xa - xb) > 1e-3  # the two models really differ
    assert ab.binding["OAc"].mean == pytest.approx((xa + xb) / 2, abs=1e-10)
    assert ab.binding["OAc"].spread == pytest.approx(abs(xa - xb) / 2, abs=1e-10)
    assert ab.binding["OAc"].values == pytest.approx((xa, xb), abs=1e-10)


def test_bad_input(host, tmp_path):
    with pytest.raises(QdlabError, match="cationic|anionic"):
        plan_binding(host, BindingSettings(ligands=["Py"], engine=classical()))  # neutral X ligand
    with pytest.raises(QdlabError, match="not a free surface"):
        plan_binding(host, BindingSettings(ligands=["OAc"], engine=classical(), site=0))
    with pytest.raises(Exception):
        BindingSettings(ligands=[])


def test_settings_take_engines_as_text_as_in_the_readme():
    """`engine`/`committee` accept the text `parse_engine` reads (the README's Python example) and the
    relaxation is the relax workflow's settings model."""
    s = BindingSettings(ligands=["BzO"], engine="chgnet:0.3.0", committee=["chgnet:0.2.0", "chgnet@ft/best.pth.tar+d3"],
                        relaxation={"fmax": 0.02})
    assert s.engine.model == "0.3.0" and [c.title for c in s.committee] == ["chgnet:0.2.0", "chgnet@best.pth.tar+D3"]
    assert s.relaxation.fmax == 0.02 and s.relaxation.rattle_A == RelaxSettings().rattle_A
