"""Engine registry: pick an engine by name, get an ASE calculator.

``get_calculator("chgnet")`` (default), ``"sevenn"``, ``"mattersim"`` (checkpoint), ``"classical"``
(LJ + Coulomb), ``"xtb"`` (GFN1/2 via tblite), ``"cp2k"`` (PBE), each optionally ``+ D3``.
Everything downstream only sees an ASE calculator.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ase.calculators.calculator import Calculator

from qdlab.errors import QdlabError

DEFAULT_ENGINE = "chgnet"


@dataclass(frozen=True)
class EngineInfo:
    name: str
    kind: str
    description: str
    models: tuple[str, ...]
    requires: str

    def available(self) -> bool:
        if self.requires.startswith("exe:"):
            return shutil.which(self.requires[4:]) is not None
        return importlib.util.find_spec(self.requires) is not None

    def to_dict(self) -> dict:
        return asdict(self) | {"available": self.available()}


ENGINES: dict[str, EngineInfo] = {
    e.name: e for e in [
        EngineInfo("chgnet", "ML potential", "CHGNet pretrained universal potential (default; fastest on CPU)",
                   ("0.3.0", "0.2.0", "r2scan"), "chgnet"),
        EngineInfo("sevenn", "ML potential", "SevenNet pretrained universal potential",
                   ("7net-0", "7net-l3i5", "7net-mf-0"), "sevenn"),
        EngineInfo("mattersim", "ML potential", "MatterSim (seed 000) from a checkpoint path", (), "mattersim"),
        EngineInfo("classical", "force field", "LJ + Coulomb, seed 003 CsPbI3 parameters, all pairs", (), "numpy"),
        EngineInfo("xtb", "semi-empirical", "GFN1/GFN2-xTB via tblite (small clusters)", ("gfn2", "gfn1"), "tblite"),
        EngineInfo("cp2k", "DFT", "CP2K PBE, GTH/MOLOPT, non-periodic Poisson (tiny systems)", (), "exe:cp2k_shell"),
    ]
}

#: Other accepted spellings (the issue tracker's interface names among them).
ALIASES = {"sevennet": "sevenn", "7net": "sevenn", "ljcoul": "classical", "lj-coulomb": "classical",
           "tblite": "xtb", "gfn-xtb": "xtb"}


def resolve_engine(name: str) -> str:
    """Canonical engine name for ``name`` or an alias (``sevennet`` → ``sevenn``, ``ljcoul`` → ``classical``)."""
    key = name.lower()
    key = ALIASES.get(key, key)
    if key not in ENGINES:
        raise QdlabError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)} "
                         f"(aliases: {', '.join(ALIASES)})")
    return key


def load_lj_parameters(path: str | os.PathLike) -> dict:
    """LJ (+ optional charges) from a JSON or TOML file: ``{"lj": {"Cs": [σ Å, ε eV], ...}, "charges": {...}}``."""
    p = Path(path)
    if not p.is_file():
        raise QdlabError(f"LJ parameter file {p} not found")
    try:
        if p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(p.read_text())
        else:
            data = json.loads(p.read_text())
        lj = {str(el): (float(v[0]), float(v[1])) for el, v in data["lj"].items()}
        charges = {str(el): float(q) for el, q in data.get("charges", {}).items()} or None
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise QdlabError(f"{p}: expected {{\"lj\": {{element: [sigma_A, epsilon_eV]}}, \"charges\": {{...}}}} "
                         f"({type(exc).__name__}: {exc})") from None
    return {"lj": lj} | ({"charges": charges} if charges else {})


def get_calculator(name: str = DEFAULT_ENGINE, *, model: str | None = None, checkpoint: str | None = None,
                   device: str = "cpu", threads: int | None = None, d3: bool = False,
                   d3_damping: str = "d3bj", d3_method: str = "PBE", **options) -> Calculator:
    """Create the engine ``name`` as an ASE calculator (optionally + D3(BJ) dispersion).

    ``model`` picks a pretrained model, ``checkpoint`` a model file; ``device`` cpu/cuda/auto;
    ``threads`` torch intra-op threads; extra ``options`` go to the engine's constructor.
    """
    from qdlab.engines import mlip
    from qdlab.interrupts import deferred_sigint

    key = resolve_engine(name)
    # a model given as a file is a checkpoint (SevenNet, CHGNet, MatterSim) or an LJ parameter file
    if model is not None and checkpoint is None and Path(model).suffix and Path(model).is_file():
        if key == "classical":
            options = load_lj_parameters(model) | options
        else:
            checkpoint = model
        model = None
    mlip.set_threads(threads)
    # the ML packages print banners on stdout; keep stdout clean for --json output
    with contextlib.redirect_stdout(sys.stderr), deferred_sigint():   # torch + weights: seconds of imports
        calc = _create(key, model, checkpoint, device, options)
    if d3:
        from qdlab.engines.dispersion import with_d3

        calc = with_d3(calc, d3_method, d3_damping)
    return calc


def _create(key: str, model: str | None, checkpoint: str | None, device: str, options: dict) -> Calculator:
    from qdlab.engines import mlip

    if key == "chgnet":
        calc = mlip.chgnet_calculator(model or "0.3.0", checkpoint, device)
    elif key == "sevenn":
        calc = mlip.sevenn_calculator(model or "7net-0", checkpoint, device, **options)
    elif key == "mattersim":
        if checkpoint is None:
            raise QdlabError("MatterSim weights cannot be downloaded here: give --checkpoint PATH")
        calc = mlip.mattersim_calculator(checkpoint, device)
    elif key == "classical":
        from qdlab.engines.classical import LJCoulomb

        calc = LJCoulomb(**options)
    elif key == "xtb":
        from qdlab.engines.xtb import XTB

        calc = XTB(method=model or "gfn2", **options)
    else:
        from qdlab.engines.cp2k import cp2k_calculator

        calc = cp2k_calculator(**options)
    return calc


def list_engines() -> list[dict]:
    """Every engine with its models and whether it is installed here."""
    return [e.to_dict() for e in ENGINES.values()]
