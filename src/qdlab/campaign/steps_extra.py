"""Campaign steps for the thermal, binding and IR workflows (the models; the task functions are in
:mod:`qdlab.campaign.tasks`). Each model has the fields of its workflow's settings, not repeated here:

- ``thermal`` after ``phonons``: :class:`qdlab.workflows.ir.ThermalSettings` (temperatures in K,
  cutoff in cm⁻¹) → ZPE and F, S, C_v at 10 K and 300 K (where in the grid) as row values;
- ``binding`` after a structure step (or the built model): :class:`qdlab.workflows.binding.BindingSettings`
  without ``engine`` (the campaign's engine relaxes every structure) → ``BindingResult.flat()``;
- ``ir`` after ``phonons``: :class:`qdlab.workflows.ir.HarmonicIRSettings` (harmonic spectrum, cm⁻¹);
- ``ir_md`` after ``md``: :class:`qdlab.workflows.ir.IRMDSettings` (spectrum from the dipole trajectory).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from pydantic import create_model, model_validator

from qdlab.campaign.step_base import _Step
from qdlab.errors import QdlabError


class _DataclassStep(_Step):
    """A step whose settings are a workflow's frozen dataclass (``_settings``); checked by building it."""

    _settings: typing.ClassVar[type]

    def settings(self):
        return self._settings(**self.model_dump(exclude={"name", "after", "workflow"}))

    @model_validator(mode="after")
    def _valid(self):
        s = self.settings()
        try:
            if hasattr(s, "temperatures"):
                s.temperatures()
        except QdlabError as exc:
            raise ValueError(str(exc)) from None
        return self


def _from_dataclass(name: str, workflow: str, dc: type, doc: str) -> type[_Step]:
    hints = typing.get_type_hints(dc)
    fields: dict[str, Any] = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(dc)}
    model = create_model(name, __base__=_DataclassStep, __doc__=doc, workflow=(Literal[workflow], workflow), **fields)
    model._settings = dc
    return model


def _binding_step() -> type[_Step]:
    from qdlab.workflows.binding import BindingSettings

    fields = {k: (f.annotation, f) for k, f in BindingSettings.model_fields.items() if k != "engine"}
    return create_model("BindingStep", __base__=_Step, __doc__="Ligand binding energies (:class:`qdlab.workflows."
                        "binding.BindingSettings`; the engine is the campaign's).",
                        workflow=(Literal["binding"], "binding"), **fields)


def _models() -> tuple[type[_Step], ...]:
    from qdlab.workflows.ir import HarmonicIRSettings, IRMDSettings, ThermalSettings

    return (_from_dataclass("ThermalStep", "thermal", ThermalSettings, "Harmonic thermodynamics of a phonon step."),
            _binding_step(),
            _from_dataclass("IRStep", "ir", HarmonicIRSettings, "Harmonic IR spectrum of a phonon step."),
            _from_dataclass("IRMDStep", "ir_md", IRMDSettings, "IR spectrum of an MD step's dipole trajectory."))


ThermalStep, BindingStep, IRStep, IRMDStep = _models()
ExtraStep = ThermalStep | BindingStep | IRStep | IRMDStep

EXTRA_PRODUCES = {"thermal": "thermal", "binding": "binding", "ir": "ir", "ir_md": "ir"}
EXTRA_NEEDS = {"thermal": "phonons", "binding": "structure", "ir": "phonons", "ir_md": "trajectory"}
EXTRA_USES_ENGINE = {"binding"}
