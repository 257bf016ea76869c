"""CP2K MO energies: the reader on a stored excerpt of a real CP2K 2023.1 output, the gap-trace import,
and the single-point input writer."""

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.units import Hartree

from qdlab.engines.cp2k_mo import cp2k_gap_input, read_cp2k_mos
from qdlab.errors import QdlabError

DATA = Path(__file__).parent / "data" / "cp2k_pbbr2_mos.out"


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
