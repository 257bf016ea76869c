"""OT-2 protocol from a plate plan: a Python Protocol API v2 file for the ``opentrons`` package.

The protocol (deck: reaction plate slot 1, mix plate slot 2, reservoir slot 3, tip racks from
slot 4) runs three stages: (1) build every precursor mix in the deep-well plate (PbBr2, acid,
amine; mixed), (2) fill every reaction well with Cs stock and antisolvent (one tip per stock),
(3) inject each well's precursor mix with a fresh tip and mix. Each step is one
``pipette.transfer`` of one volume within that pipette's range (larger volumes are split here,
never by the robot), so the simulated run log has exactly one "Transferring" line per step.

``opentrons`` pins numpy < 2, so it lives in its own virtualenv (``.venv-ot2``, made by
``make test``); :func:`simulate_protocol` runs the package's simulator there in a subprocess.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from qdlab.errors import QdlabError
from qdlab.experiment.plate import PlateDesign, PlateError

API_LEVEL = "2.20"
PLATE_LABWARE = "corning_96_wellplate_360ul_flat"
MIX_LABWARE = "nest_96_wellplate_2ml_deep"
RESERVOIR_LABWARE = "nest_12_reservoir_15ml"
OT2_VENV = ".venv-ot2"


class ProtocolError(QdlabError):
    """A protocol that cannot be generated or that fails in the Opentrons simulator."""


@dataclass(frozen=True)
class Step:
    """One liquid transfer: pipette name, source/destination (labware key, well), volume in µL."""

    stage: str
    pipette: str
    source: tuple[str, str]
    dest: tuple[str, str]
    volume_uL: float
    tip: str  # "new": fresh tip for this step; else the name of a tip group shared by consecutive steps
    mix: int = 0  # mix repetitions after dispensing (with a fresh tip only)
    mix_uL: float = 0.0  # mixing volume, µL


def _split(volume: float, pipettes: list[dict]) -> list[tuple[str, float]]:
    """Pieces (pipette, µL) for one volume: the smallest pipette whose range holds it, else equal parts."""
    pips = sorted(pipettes, key=lambda p: p["max_uL"])
    for p in pips:
        if p["min_uL"] - 1e-9 <= volume <= p["max_uL"] + 1e-9:
            return [(p["name"], volume)]
    big = pips[-1]
    if volume < pips[0]["min_uL"]:
        raise PlateError(f"{volume:.3g} µL is below the smallest pipette minimum {pips[0]['min_uL']:g} µL")
    k = math.ceil(volume / big["max_uL"])
    part = volume / k
    if part < big["min_uL"]:
        raise PlateError(f"{volume:g} µL cannot be split into pieces inside a pipette range")
    return [(big["name"], part)] * k


def protocol_steps(plan: dict) -> list[Step]:
    """Every transfer of the plan in execution order (volumes rounded to 0.01 µL)."""
    design = PlateDesign(**plan["design"])
    pips = [p.model_dump() for p in design.pipettes]
    res = plan["reservoir"]
    steps: list[Step] = []

    def src(stock: str, uL: float, used: dict[str, float]) -> tuple[str, str]:
        # reservoir wells of a stock are drawn in turn: move on when one has given its share
        wells = res[stock]
        k = 0
        while k < len(wells) - 1 and used.get(stock, 0.0) + uL > sum(w["use_uL"] for w in wells[:k + 1]) + 1e-6:
            k += 1
        used[stock] = used.get(stock, 0.0) + uL
        return ("reservoir", wells[k]["well"])

    used: dict[str, float] = {}
    pmax = {p["name"]: (p["min_uL"], p["max_uL"]) for p in pips}

    def mix_volume(pip: str, content_uL: float) -> float:
        lo, hi = pmax[pip]
        return round(max(lo, min(0.8 * hi, 0.5 * content_uL)), 2)

    for comp, key in (("PbBr2", "pbbr2_uL"), ("acid", "acid_uL"), ("amine", "amine_uL")):
        for m in plan["mixes"]:
            stock = "PbBr2" if comp == "PbBr2" else m[comp]
            for pip, v in _split(m[key], pips):
                steps.append(Step("mix", pip, src(stock, v, used), ("mix", m["mix_well"]), round(v, 2),
                                  tip="new" if comp == "amine" else f"mix-{stock}-{pip}",
                                  mix=3 if comp == "amine" else 0,
                                  mix_uL=mix_volume(pip, m["total_uL"]) if comp == "amine" else 0.0))
    for stock_key, vol_key in (("cs_stock", "cs_uL"), ("antisolvent", "antisolvent_uL")):
        for w in plan["wells"]:
            if w[vol_key] <= 0:
                continue
            for pip, v in _split(w[vol_key], pips):
                steps.append(Step("fill", pip, src(w[stock_key], v, used), ("plate", w["well"]), round(v, 2),
                                  tip=f"fill-{w[stock_key]}-{pip}"))
    for w in plan["wells"]:
        for pip, v in _split(w["precursor_uL"], pips):
            steps.append(Step("inject", pip, ("mix", w["mix_well"]), ("plate", w["well"]), round(v, 2), tip="new",
                              mix=3, mix_uL=mix_volume(pip, w["total_uL"])))
    return steps


def _tipracks(steps: list[Step]) -> dict[str, int]:
    """Tips used per pipette → number of 96-tip racks."""
    tips: dict[str, int] = {}
    last = None
    for s in steps:
        if s.tip == "new" or s.tip != last:
            tips[s.pipette] = tips.get(s.pipette, 0) + 1
        last = s.tip if s.tip != "new" else None
    return {p: math.ceil(n / 96) for p, n in tips.items()}


_TEMPLATE = '''"""OT-2 LARP synthesis of CsPbBr3 nanocrystals (generated by qdlab {version}; edit the plan, not this file).

{n_wells} reaction wells, {n_mixes} precursor mixes, {n_steps} transfers. Load the reservoir as listed in RESERVOIR.
"""
import json

from opentrons import protocol_api

metadata = {{"protocolName": "qdlab LARP plate", "author": "qdlab", "description": {description!r}}}
requirements = {{"robotType": "OT-2", "apiLevel": "{api}"}}

LABWARE = {labware}
PIPETTES = {pipettes}
RESERVOIR = {reservoir}
STEPS = json.loads({steps!r})


def run(protocol: protocol_api.ProtocolContext) -> None:
    lw = {{key: protocol.load_labware(name, slot) for key, (name, slot) in LABWARE.items()}}
    pips = {{}}
    slot = 4
    for name, (mount, tiprack, n_racks) in PIPETTES.items():
        racks = [protocol.load_labware(tiprack, slot + k) for k in range(n_racks)]
        slot += n_racks
        pips[name] = protocol.load_instrument(name, mount, tip_racks=racks)
    for stock, wells in RESERVOIR.items():
        for well, load_uL in wells:
            protocol.comment(f"reservoir {{well}}: {{load_uL:.0f}} uL {{stock}}")
    holding = {{}}  # pipette -> tip group of the tip it holds
    for stage, pip_name, (src_lw, src_well), (dst_lw, dst_well), volume, tip, mix, mix_uL in STEPS:
        pip = pips[pip_name]
        if pip_name in holding and (tip == "new" or holding[pip_name] != tip):
            pip.drop_tip()
            del holding[pip_name]
        if pip_name not in holding:
            pip.pick_up_tip()
            holding[pip_name] = tip
        pip.transfer(volume, lw[src_lw][src_well], lw[dst_lw][dst_well], new_tip="never")
        if mix:
            pip.mix(mix, mix_uL, lw[dst_lw][dst_well])
    for pip_name in list(holding):
        pips[pip_name].drop_tip()
'''


def render_protocol(plan: dict) -> str:
    """The protocol file text for a plan (Protocol API v2, OT-2)."""
    from qdlab import __version__

    design = PlateDesign(**plan["design"])
    steps = protocol_steps(plan)
    racks = _tipracks(steps)
    n_racks = sum(racks.values())
    if 3 + n_racks > 11:
        raise ProtocolError(f"the protocol needs {n_racks} tip racks; with 3 labware slots that exceeds the 11 "
                            "OT-2 deck slots (use fewer wells or replicates)")
    pipettes = {p.name: (p.mount, p.tiprack, racks[p.name]) for p in design.pipettes if p.name in racks}
    labware = {"plate": (PLATE_LABWARE, 1), "mix": (MIX_LABWARE, 2), "reservoir": (RESERVOIR_LABWARE, 3)}
    reservoir = {k: [(w["well"], round(w["load_uL"], 1)) for w in v] for k, v in plan["reservoir"].items()}
    rows = [[s.stage, s.pipette, list(s.source), list(s.dest), s.volume_uL, s.tip, s.mix, s.mix_uL] for s in steps]
    desc = (f"LARP CsPbBr3: pairs {', '.join(design.ligand_pairs)}; acid:amine 1:"
            f"{'/'.join(f'{r:g}' for r in design.amine_ratios)}; ligand:PbBr2 1:"
            f"{'/'.join(f'{n:g}' for n in design.ligand_volume_ratios)}; {', '.join(design.antisolvents)}")
    return _TEMPLATE.format(version=__version__, n_wells=len(plan["wells"]), n_mixes=len(plan["mixes"]),
                            n_steps=len(steps), description=desc, api=API_LEVEL, labware=repr(labware),
                            pipettes=repr(pipettes), reservoir=repr(reservoir), steps=json.dumps(rows))


def write_protocol(plan: dict, path: str | Path) -> Path:
    """Write the protocol file atomically; checks that it compiles as Python first."""
    from qdlab.store.files import write_text

    text = render_protocol(plan)
    compile(text, str(path), "exec")
    return write_text(path, text)


_RUNNER = r'''
import importlib.util, sys
from opentrons import simulate
spec = importlib.util.spec_from_file_location("qdlab_protocol", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
assert mod.requirements.get("robotType", "OT-2") == "OT-2", "not an OT-2 protocol"
ctx = simulate.get_protocol_api(mod.requirements["apiLevel"], robot_type="OT-2")
mod.run(ctx)
print("=== QDLAB RUN LOG ===")
for line in ctx.commands():
    print(line)
'''


@dataclass(frozen=True)
class SimulationLog:
    """The simulator's run log: one text line per command ("Transferring 20.0 from … to …", …)."""

    lines: list[str]

    def transfers(self) -> list[tuple[float, str, str]]:
        """(volume µL, source, destination) of every "Transferring" line."""
        out = []
        for line in self.lines:
            m = re.match(r"Transferring ([\d.]+) from (.+?) to (.+)$", line)
            if m:
                out.append((float(m[1]), m[2], m[3]))
        return out

    def count(self, verb: str) -> int:
        """Number of log lines starting with ``verb`` (e.g. "Picking up tip", "Mixing")."""
        return sum(1 for line in self.lines if line.startswith(verb))


def find_ot2_python(root: str | Path | None = None) -> Path:
    """The Python of ``.venv-ot2`` at the repository root or in the working directory (or ``$QDLAB_OT2_PYTHON``)."""
    env = os.environ.get("QDLAB_OT2_PYTHON")
    if env:
        return Path(env)
    bases = [Path(root)] if root else [Path(__file__).resolve().parents[3], Path.cwd()]
    for base in bases:  # the repository root (editable install), then the working directory
        py = base / OT2_VENV / "bin" / "python"
        if py.exists():
            return py
    raise ProtocolError(f"{bases[0] / OT2_VENV / 'bin' / 'python'} not found: the Opentrons simulator lives in its "
                        "own virtualenv; `make test` (or `make ot2`) creates it")


def simulate_protocol(protocol: str | Path, *, python: str | Path | None = None, timeout_s: float = 300) -> SimulationLog:
    """Run ``protocol`` in the opentrons package's simulator (OT-2) inside ``.venv-ot2``.

    Uses ``opentrons.simulate.get_protocol_api(..., robot_type="OT-2")`` in a subprocess (the
    package's ``opentrons_simulate`` command refuses OT-2 protocols since opentrons 9). Raises
    :class:`ProtocolError` with the simulator's last error line when the run fails.
    """
    py = Path(python) if python else find_ot2_python()
    with tempfile.TemporaryDirectory(prefix="qdlab-ot2-") as tmp:
        runner = Path(tmp) / "run_ot2.py"
        runner.write_text(_RUNNER)
        env = dict(os.environ, OT_API_CONFIG_DIR=tmp, HOME=tmp, PYTHONNOUSERSITE="1")
        env.pop("PYTHONPATH", None)
        proc = subprocess.run([str(py), str(runner), str(Path(protocol).resolve())], capture_output=True, text=True,
                              env=env, timeout=timeout_s, cwd=tmp)
    if proc.returncode != 0 or "=== QDLAB RUN LOG ===" not in proc.stdout:
        tail = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        raise ProtocolError(f"Opentrons simulation of {protocol} failed: {tail[-1] if tail else 'no output'}")
    log = proc.stdout.split("=== QDLAB RUN LOG ===", 1)[1].strip().splitlines()
    return SimulationLog(lines=log)
