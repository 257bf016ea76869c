"""Energy engines behind the ASE Calculator interface (see :func:`get_calculator`)."""

from qdlab.engines.registry import DEFAULT_ENGINE, ENGINES, get_calculator, list_engines
from qdlab.engines.spec import EngineSpec

__all__ = ["DEFAULT_ENGINE", "ENGINES", "EngineSpec", "get_calculator", "list_engines"]
