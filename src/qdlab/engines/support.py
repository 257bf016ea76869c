"""Engines as the input gate sees them: element support, any ASE calculator by import path, and
the same finite-result guard for all of them.

``make_calculator("module:factory")`` (or ``"module.sub:Class"``) imports the factory, calls it with
the options given, and wraps the result so that non-finite energies or forces become one-line
errors; ``make_calculator("chgnet")`` and every other registry name go to
:func:`qdlab.engines.registry.get_calculator`. :func:`check_elements` refuses a structure with
elements the engine was not trained or parametrised for, before any engine call.
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers, chemical_symbols

from qdlab.errors import QdlabError

#: GFN1/GFN2-xTB parametrise H–Rn (Z 1–86).
XTB_NUMBERS = frozenset(range(1, 87))


class EngineInputError(QdlabError):
    """The engine cannot treat this structure (unsupported elements) or its result is not finite."""


def is_import_path(name: str) -> bool:
    """``module:factory`` names an ASE calculator factory outside the registry."""
    return ":" in name and not name.startswith(":") and not name.endswith(":")


class GuardedCalculator(Calculator):
    """Wrap any ASE calculator: refuse unsupported elements and non-finite energy/forces."""

    def __init__(self, inner: Calculator, name: str, supported: frozenset[int] | None = None):
        super().__init__()
        self.inner = inner
        self.engine_name = name
        self.supported_numbers = supported or frozenset(getattr(inner, "supported_numbers", ()) or ())
        self.implemented_properties = list(getattr(inner, "implemented_properties", ["energy", "forces"]))

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        check_elements(self.atoms, self, self.engine_name)
        work = self.atoms.copy()
        work.calc = self.inner
        try:
            self.inner.calculate(work, properties, all_changes)
        except Exception as exc:  # noqa: BLE001 - an outside engine fails in its own ways: one line
            raise EngineInputError(f"engine {self.engine_name} failed: {type(exc).__name__}: "
                                   f"{' '.join(str(exc).split())[:120]}") from None
        self.results = dict(self.inner.results)
        for key in ("energy", "forces"):
            val = self.results.get(key)
            if val is not None and not np.all(np.isfinite(val)):
                raise EngineInputError(f"engine {self.engine_name} returned non-finite {key}; check the structure and model")


def load_factory(path: str, options: dict | None = None) -> Calculator:
    """Import ``module:attr`` and build the calculator (a class or a function; ``options`` as keywords)."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineInputError(f"--engine {path}: cannot import {module_name} ({exc}); "
                               "install it or fix the module path") from None
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise EngineInputError(f"--engine {path}: {module_name} has no {attr}")
    if not callable(factory):
        raise EngineInputError(f"--engine {path}: {attr} is not callable")
    opts = dict(options or {})
    if _has_signature(factory):  # pass only the options the factory accepts
        params = inspect.signature(factory).parameters
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            opts = {k: v for k, v in opts.items() if k in params}
    try:
        calc = factory(**opts)
    except Exception as exc:  # noqa: BLE001 - a user's factory may fail in any way
        raise EngineInputError(f"--engine {path} failed: {type(exc).__name__}: {' '.join(str(exc).split())[:120]}") \
            from None
    if not isinstance(calc, Calculator) and not hasattr(calc, "get_potential_energy"):
        raise EngineInputError(f"--engine {path} returned {type(calc).__name__}, not an ASE calculator")
    return GuardedCalculator(calc, path)


def _has_signature(fn) -> bool:
    try:
        inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return True


def make_calculator(name: str, **options) -> Calculator:
    """A registry engine by name, or any ASE calculator by import path (``module:factory``)."""
    if is_import_path(name):
        factory_opts = {k: v for k, v in options.items() if v is not None and k in ("model", "device")}
        return load_factory(name, factory_opts)
    from qdlab.engines.registry import get_calculator

    return get_calculator(name, **options)


def supported_numbers(calc: Calculator) -> frozenset[int] | None:
    """Atomic numbers ``calc`` supports, or None when it does not say (then nothing is refused)."""
    nums = getattr(calc, "supported_numbers", None)
    if nums:
        return frozenset(int(z) for z in nums)
    from qdlab.engines.classical import LJCoulomb
    from qdlab.engines.xtb import XTB

    if isinstance(calc, LJCoulomb):
        return frozenset(atomic_numbers[s] for s in calc.lj if s in atomic_numbers)
    if isinstance(calc, XTB):
        return XTB_NUMBERS
    parts = getattr(calc, "calcs", None) or getattr(getattr(calc, "mixer", None), "calcs", None)
    if parts:  # a SumCalculator (engine + D3): the engine decides; D3 covers H–Pu
        sets = [s for s in (supported_numbers(c) for c in parts) if s is not None]
        return frozenset.intersection(*sets) if sets else None
    return None


def check_elements(atoms: Atoms, calc: Calculator, engine: str = "engine") -> None:
    """Refuse, in one line, a structure holding elements the engine does not support."""
    nums = supported_numbers(calc)
    if nums is None:
        return
    bad = sorted(set(atoms.numbers.tolist()) - nums)
    if bad:
        names = ", ".join(chemical_symbols[z] for z in bad)
        raise EngineInputError(f"engine {engine} does not support {names}; choose an engine that covers every "
                               f"element of the structure (qdlab engines list) or remove {names}")
