"""One engine-settings object for every entry point: :class:`EngineSpec`.

The CLI (``--engine/--model/--checkpoint/--device/--threads/--d3``), the campaign spec (``[[engines]]``)
and the phonon checkpoints all describe an engine with this pydantic model. It builds the ASE
calculator (:meth:`EngineSpec.calculator`), gives a stable identity of what changes the forces
(:meth:`EngineSpec.force_label`, the same string whichever entry point built the spec) and a short
human label (:meth:`EngineSpec.label`).

The optional fast paths an engine may offer (batched forces, analytic Hessian) are the typed
protocols of :mod:`qdlab.engines.protocols`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator
from pydantic import BaseModel, ConfigDict, Field

from qdlab.store.results import canonical_json


def file_hash(path: str | os.PathLike, length: int = 24) -> str:
    """SHA-256 of a file's bytes (hex, first ``length`` characters)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


class EngineSpec(BaseModel):
    """Settings of an engine: keyword arguments of :func:`qdlab.engines.get_calculator`.

    ``name`` engine or alias; ``model`` pretrained model name or a model/parameter file;
    ``checkpoint`` a model file; ``device`` cpu | cuda | auto; ``threads`` torch threads (None:
    as set by OMP_NUM_THREADS); ``d3`` add D3(BJ) dispersion; ``options`` extra constructor options.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "chgnet"
    model: str | None = None
    checkpoint: str | None = None
    device: str = "cpu"
    threads: int | None = Field(None, ge=1, description="torch threads (None: leave as set)")
    d3: bool = False
    options: dict[str, Any] = Field(default_factory=dict, description="extra engine constructor options")

    def calculator_kwargs(self, threads: int | None = None) -> dict:
        """Arguments of ``get_calculator`` (``threads`` overrides the spec's, e.g. 1 per worker)."""
        return {"name": self.name, "model": self.model, "checkpoint": self.checkpoint, "device": self.device,
                "d3": self.d3, "threads": threads if threads is not None else self.threads, **self.options}

    def calculator(self, threads: int | None = None) -> Calculator:
        """Build the ASE calculator of these settings (a registry engine, or any ASE calculator by
        import path ``module:factory``, see :mod:`qdlab.engines.support`)."""
        from qdlab.engines.support import make_calculator

        kwargs = self.calculator_kwargs(threads)
        return make_calculator(kwargs.pop("name"), **kwargs)

    def identity(self) -> dict:
        """What identifies the engine in a campaign task key: name, model, device-independent
        settings and the checkpoint file's content hash (a retrained model changes the key)."""
        d = self.model_dump(exclude={"device", "threads"})
        if self.checkpoint and Path(self.checkpoint).is_file():
            d["checkpoint"] = file_hash(self.checkpoint)
        return d

    def force_label(self) -> str:
        """Stable text of what changes the forces (canonical engine name, model, checkpoint, D3,
        options; not device or threads): the engine part of a phonon checkpoint's key."""
        from qdlab.engines.registry import resolve_engine

        try:
            name = resolve_engine(self.name)
        except Exception:  # an unknown name fails when the engine is built, not here
            name = self.name
        return canonical_json({"name": name, "model": self.model, "checkpoint": self.checkpoint, "d3": self.d3,
                               "options": self.options})

    def label(self) -> str:
        """Short human label: ``chgnet``, ``sevenn:7net-0+D3``, ``chgnet:model.pth``."""
        tag = self.model or (Path(self.checkpoint).name if self.checkpoint else None)
        return f"{self.name}{':' + tag if tag else ''}{'+D3' if self.d3 else ''}"


def as_engine_spec(engine: EngineSpec | dict | str | None) -> EngineSpec | None:
    """An :class:`EngineSpec` from a spec, a dict of its fields or an engine name (None stays None)."""
    if engine is None or isinstance(engine, EngineSpec):
        return engine
    if isinstance(engine, str):
        return EngineSpec(name=engine)
    return EngineSpec.model_validate(engine)
