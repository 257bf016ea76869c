"""CP2K MO energies: the reader on a stored excerpt of a real CP2K 2023.1 output, the gap-trace import,
and the single-point input writer."""

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.units import Hartree

from qdlab.engines.cp2k_mo import Cp2kPDOS, cp2k_gap_input, edge_gap, read_cp2k_mos, read_cp2k_pdos
from qdlab.errors import QdlabError

DATA = Path(__file__).parent / "data" / "cp2k_pbbr2_mos.out"
#: a real CP2K 2023.1 PBE run of Cs7Pb2Br11 (250 Ry, &PDOS NLUMO 16): 3 PDOS files + the MO excerpt of its output
PDOS_RUN = Path(__file__).parent / "data" / "cp2k_cs7pb2br11"


def _printed_fermi_eV(text: str) -> float:
    return float(next(ln for ln in text.splitlines() if "Fermi Energy [eV]" in ln).split()[-1])


def test_reader_matches_cp2k_printed_fermi_level_and_counts():
    (mo,) = read_cp2k_mos(DATA)
    # PbBr2 with GTH-PBE-q4 (Pb) and q7 (Br): 18 valence electrons → 9 doubly occupied MOs; NLUMO 4
    assert len(mo.occupied_eV) == 9 and len(mo.unoccupied_eV) == 4
    # CP2K prints the eigenvalues in Hartree and, independently, its Fermi level (= HOMO here) in eV (6 decimals)
    assert mo.homo_eV == pytest.approx(_printed_fermi_eV(DATA.read_text()), abs=2e-6)
    assert mo.gap_eV == pytest.approx(mo.lumo_eV - mo.homo_eV) and mo.gap_eV > 0
    assert np.all(np.diff(mo.occupied_eV) >= 0) and mo.unoccupied_eV[0] == pytest.approx(-0.13969733 * Hartree)


def test_gap_trace_import_from_cp2k_output(tmp_path):
    from qdlab.workflows.gap import import_gap_trace

    two = tmp_path / "md.out"
    two.write_text(DATA.read_text() * 2)          # two MD steps' MO blocks
    tr = import_gap_trace(two, dt_fs=10.0)
    (mo,) = read_cp2k_mos(DATA)
    assert np.allclose(tr.time_fs, [0.0, 10.0]) and np.allclose(tr.gap_eV, mo.gap_eV)
    with pytest.raises(QdlabError, match="frame spacing"):
        import_gap_trace(two)
    single = import_gap_trace(DATA)
    assert single.gap_eV[0] == pytest.approx(mo.gap_eV)


def test_reader_refuses_output_without_mo_blocks(tmp_path):
    p = tmp_path / "x.out"
    p.write_text(" CP2K| version string: CP2K version 2023.1\n ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]: -1.0\n")
    with pytest.raises(QdlabError, match="no occupied"):
        read_cp2k_mos(p)
    with pytest.raises(QdlabError, match="no such"):
        read_cp2k_mos(tmp_path / "missing.out")


def test_gap_input_cubic_wavelet_box_and_settings():
    a = Atoms("PbBr2", positions=[[0, 0, 0], [2.9, 0, 0], [0, 2.9, 0.5]])
    text = cp2k_gap_input(a, "g", {"vacuum_A": 5.0, "nlumo": 3, "restart_file": "/x/ref-RESTART.wfn"})
    abc = [float(x) for x in next(ln for ln in text.splitlines() if "ABC" in ln).split()[1:]]
    assert abc == pytest.approx([2.9 + 10.0] * 3)   # largest extent + 2 × vacuum, cubic (wavelet solver)
    assert "POISSON_SOLVER WAVELET" in text and "PERIODIC NONE" in text and "ADDED_MOS 3" in text
    assert "NLUMO 3" in text and "SCF_GUESS RESTART" in text and "WFN_RESTART_FILE_NAME /x/ref-RESTART.wfn" in text
    assert text.count("&KIND") == 2 and "DZVP-MOLOPT-SR-GTH" in text
    assert "&OT ON" in cp2k_gap_input(a, settings={"scf": "ot"})
    with pytest.raises(QdlabError, match="unknown CP2K setting"):
        cp2k_gap_input(a, settings={"cutof": 300})
    with pytest.raises(QdlabError, match="scf must be"):
        cp2k_gap_input(a, settings={"scf": "davidson"})


def test_pdos_reader_against_the_same_runs_printed_eigenvalues():
    pd = read_cp2k_pdos(PDOS_RUN)
    (mo,) = read_cp2k_mos(PDOS_RUN / "gap.out")
    # Cs7Pb2Br11 with GTH q9 (Cs), q4 (Pb), q7 (Br): 148 valence electrons → 74 occupied MOs, + 16 printed empty
    assert (pd.occupations > 0).sum() == 74 == len(mo.occupied_eV) and (pd.occupations == 0).sum() == 16
    # the PDOS files print energies to 1e-6 Hartree, the output's eigenvalue table to 1e-8
    e = np.concatenate([mo.occupied_eV, mo.unoccupied_eV])
    assert np.allclose(pd.energies_eV, e, atol=0.6e-6 * Hartree)
    # Mulliken weights of each MO over all kinds sum to 1 (all kinds read, none twice)
    total = sum(pd.weights.values())
    assert set(pd.weights) == {"Cs", "Pb", "Br"} and np.allclose(total, 1.0, atol=2e-3)
    assert set(pd.by_l["Pb"]) == {"s", "p", "d"}


def test_edge_gap_skips_the_cs_states_below_the_pb_edge():
    """In this cluster the plain LUMO is Cs 6s (weight 0.93) and the first three empty MOs are Cs-derived;
    the 4th is the first with more weight on Pb than on Cs (CP2K's 4th printed empty eigenvalue)."""
    pd = read_cp2k_pdos(PDOS_RUN)
    (mo,) = read_cp2k_mos(PDOS_RUN / "gap.out")
    r = edge_gap(pd)
    assert r["edge_lumo_index"] == 3 and r["lumo_weights"]["Cs"] > 0.9 and r["edge_weights"]["Pb"] > 0.5
    assert r["edge_gap_eV"] == pytest.approx(mo.unoccupied_eV[3] - mo.homo_eV, abs=2e-5)
    assert r["homo_weights"]["Br"] > 0.8    # the HOMO is Br p (with Pb s): the network's valence edge


def test_edge_gap_refuses_when_no_printed_mo_is_pb_derived():
    pd = Cp2kPDOS(np.array([-5.0, -1.0, -0.5]), np.array([2.0, 0.0, 0.0]),
                  {"Cs": np.array([0.0, 0.9, 0.8]), "Pb": np.array([0.2, 0.05, 0.1])}, {})
    with pytest.raises(QdlabError, match="print more"):
        edge_gap(pd)
    with pytest.raises(QdlabError, match="no kind Br"):
        edge_gap(pd, network="Br")
    pd.weights["Pb"][2] = 0.85
    assert edge_gap(pd)["edge_gap_eV"] == pytest.approx(4.5) and edge_gap(pd)["edge_lumo_index"] == 1


def test_pdos_reader_sums_kinds_of_one_element(tmp_path):
    """Two kinds of one element (Br_a, Br_b: e.g. surface and core atoms given different kinds) are one
    element's weight: splitting the Br file in two leaves every per-element weight unchanged."""
    import shutil

    for k in (1, 2):
        shutil.copy(PDOS_RUN / f"gap-k{k}-1.pdos", tmp_path)
    lines = (PDOS_RUN / "gap-k3-1.pdos").read_text().splitlines()
    head, rows = lines[:2], np.loadtxt(PDOS_RUN / "gap-k3-1.pdos", comments="#", ndmin=2)
    for k, frac in ((3, 0.3), (4, 0.7)):
        part = rows.copy()
        part[:, 3:] *= frac
        body = "\n".join(f"{int(r[0]):8d} {r[1]:17.6f} {r[2]:15.6f}" + "".join(f" {x:17.8f}" for x in r[3:])
                         for r in part)
        (tmp_path / f"gap-k{k}-1.pdos").write_text("\n".join([head[0].replace("kind Br", f"kind Br_{k}"), head[1],
                                                             body]) + "\n")
    whole, split = read_cp2k_pdos(PDOS_RUN), read_cp2k_pdos(tmp_path)
    assert set(split.weights) == {"Cs", "Pb", "Br"}
    assert np.allclose(split.weights["Br"], whole.weights["Br"], atol=1e-7)
    assert np.allclose(split.by_l["Br"]["p"], whole.by_l["Br"]["p"], atol=1e-7)


def test_pdos_reader_refuses_missing_and_foreign_files(tmp_path):
    with pytest.raises(QdlabError, match="no gap-k"):
        read_cp2k_pdos(tmp_path)
    (tmp_path / "gap-k1-1.pdos").write_text("hello\n")
    with pytest.raises(QdlabError, match="not a CP2K PDOS"):
        read_cp2k_pdos(tmp_path)


def test_gap_input_prints_pdos_when_asked():
    a = Atoms("PbBr2", positions=[[0, 0, 0], [2.9, 0, 0], [0, 2.9, 0.5]])
    assert "&PDOS" not in cp2k_gap_input(a)
    text = cp2k_gap_input(a, settings={"pdos": True, "nlumo": 16})
    assert "&PDOS\n        NLUMO 16\n        COMPONENTS F\n      &END PDOS" in text and "ADDED_MOS 16" in text


def test_gap_input_periodic_cell_keeps_the_cell_and_positions():
    """A 3D-periodic cell runs as one: its own cell vectors, periodic Poisson solver, positions unshifted."""
    a = Atoms("CsPbBr3", scaled_positions=[[0.5, 0.5, 0.5], [0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]],
              cell=[[5.9, 0, 0], [0.1, 5.9, 0], [0, 0, 5.9]], pbc=True)
    text = cp2k_gap_input(a, "g", {"vacuum_A": 5.0})
    lines = text.splitlines()
    vec = {ln.split()[0]: [float(x) for x in ln.split()[1:]] for ln in lines if ln.strip().split()[:1] in (["A"], ["B"], ["C"])}
    assert vec["A"] == pytest.approx([5.9, 0, 0]) and vec["B"] == pytest.approx([0.1, 5.9, 0])
    assert "PERIODIC XYZ" in text and "POISSON_SOLVER PERIODIC" in text
    assert "WAVELET" not in text and "PERIODIC NONE" not in text and "ABC" not in text
    assert "CENTER_COORDINATES" not in text
    cs = next(ln for ln in lines if ln.strip().startswith("Cs "))
    assert [float(x) for x in cs.split()[1:]] == pytest.approx(a.positions[0])
    slab = a.copy()
    slab.pbc = [True, True, False]
    with pytest.raises(QdlabError, match="cluster or a 3D-periodic cell"):
        cp2k_gap_input(slab)
