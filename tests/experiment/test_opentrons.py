"""OT-2 protocol generation, validated in the opentrons package's own simulator (in .venv-ot2)."""

import os
import re
from collections import defaultdict
from pathlib import Path

import pytest

from qdlab.experiment.opentrons import (API_LEVEL, ProtocolError, find_ot2_python, protocol_steps, render_protocol,
                                        simulate_protocol, write_protocol)
from qdlab.experiment.plate import PlateDesign, design_plate

ROOT = Path(__file__).resolve().parents[2]
OT2_PYTHON = ROOT / ".venv-ot2" / "bin" / "python"
skip_ot2 = pytest.mark.skipif(os.environ.get("QDLAB_SKIP_OT2") == "1",
                              reason="QDLAB_SKIP_OT2=1 set explicitly: Opentrons simulation skipped")


@pytest.fixture(scope="module")
def plan():
    # 3 ratios × 2 pairs × 2 antisolvents = 12 wells, 6 mixes; PbBr2 over 300 µL forces split transfers
    return design_plate(PlateDesign(amine_ratios=[0.1, 1.0, 2.0], ligand_pairs=["OAc:OLAm", "OctAc:OctAm"]))


def test_protocol_structure(plan, tmp_path):
    text = render_protocol(plan)
    compile(text, "p.py", "exec")
    assert f'"apiLevel": "{API_LEVEL}"' in text and '"robotType": "OT-2"' in text
    assert "def run(protocol: protocol_api.ProtocolContext)" in text and "metadata = {" in text
    steps = protocol_steps(plan)
    assert len(steps) == len(re.findall(r'\["(?:mix|fill|inject)", "p\d+_single', text))
    for s in steps:  # every step inside its pipette's range
        lo, hi = (1.0, 20.0) if s.pipette == "p20_single_gen2" else (20.0, 300.0)
        assert lo - 0.01 <= s.volume_uL <= hi + 0.01
    # volumes delivered per reaction well and per mix equal the plan
    into = defaultdict(float)
    for s in steps:
        into[s.dest] += s.volume_uL
    for w in plan["wells"]:
        assert into[("plate", w["well"])] == pytest.approx(w["total_uL"], abs=0.02)
    for m in plan["mixes"]:
        assert into[("mix", m["mix_well"])] == pytest.approx(m["total_uL"], abs=0.03)
    assert any(s.volume_uL > 100 and s.stage == "mix" for s in steps)
    out = write_protocol(plan, tmp_path / "larp.py")
    assert out.read_text() == text


def _ot2_python():
    if not OT2_PYTHON.exists():
        pytest.fail(f"{OT2_PYTHON} is missing: `make test` creates the .venv-ot2 virtualenv with the opentrons "
                    "package (set QDLAB_SKIP_OT2=1 to skip this test explicitly)")
    return OT2_PYTHON


@skip_ot2
def test_simulated_run_log(plan, tmp_path):
    py = _ot2_python()
    proto = write_protocol(plan, tmp_path / "larp.py")
    log = simulate_protocol(proto, python=py)
    steps = protocol_steps(plan)
    transfers = log.transfers()
    assert len(transfers) == len(steps)
    assert [round(v, 2) for v, _, _ in transfers] == [s.volume_uL for s in steps]
    # volumes by destination, parsed from the simulator's own words
    into = defaultdict(float)
    for v, _src, dst in transfers:
        m = re.match(r"([A-H]\d+) of (.+) on slot (\d+)", dst)
        into[(int(m[3]), m[1])] += v
    for w in plan["wells"]:
        assert into[(1, w["well"])] == pytest.approx(w["total_uL"], abs=0.02)
    for mx in plan["mixes"]:
        assert into[(2, mx["mix_well"])] == pytest.approx(mx["total_uL"], abs=0.03)
    assert sum(into.values()) == pytest.approx(sum(s.volume_uL for s in steps), abs=1e-6)
    # each precursor mix is mixed once when made and every well once after its injection
    assert log.count("Mixing") == len(plan["mixes"]) + len(plan["wells"])
    assert log.count("Aspirating") >= len(steps) and log.count("Picking up tip") == log.count("Dropping tip")


@skip_ot2
def test_simulator_rejects_a_broken_protocol(tmp_path):
    py = _ot2_python()
    bad = tmp_path / "bad.py"
    bad.write_text('requirements = {"robotType": "OT-2", "apiLevel": "2.20"}\n'
                   "def run(protocol):\n"
                   '    plate = protocol.load_labware("corning_96_wellplate_360ul_flat", 1)\n'
                   '    tips = protocol.load_labware("opentrons_96_tiprack_20ul", 2)\n'
                   '    p20 = protocol.load_instrument("p20_single_gen2", "left", tip_racks=[tips])\n'
                   '    p20.transfer(50, plate["A1"], plate["B1"], new_tip="never")\n')
    with pytest.raises(ProtocolError, match="Opentrons simulation of .* failed"):
        simulate_protocol(bad, python=py)


def test_missing_venv_message(tmp_path, monkeypatch):
    monkeypatch.delenv("QDLAB_OT2_PYTHON", raising=False)
    with pytest.raises(ProtocolError, match=r"make test"):
        find_ot2_python(tmp_path)
