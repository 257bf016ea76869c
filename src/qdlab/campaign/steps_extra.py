"""Campaign steps for the thermal, binding and IR workflows (the models; the task functions are in
:mod:`qdlab.campaign.tasks`). Each model has the fields of its workflow's settings, not repeated here:

- ``thermal`` after ``phonons``: :class:`qdlab.workflows.ir.ThermalSettings` (temperatures in K,
  cutoff in cm⁻¹) → ZPE and F, S, C_v at 10 K and 300 K (where in the grid) as row values;
- ``binding`` after a structure step (or the built model): :class:`qdlab.workflows.binding.BindingSettings`
  without ``engine`` (the campaign's engine relaxes every structure) → ``BindingResult.flat()``;
- ``ir`` after ``phonons``: :class:`qdlab.workflows.ir.HarmonicIRSettings` (harmonic spectrum, cm⁻¹);
- ``ir_md`` after ``md``: :class:`qdlab.workflows.ir.IRMDSettings` (spectrum from the dipole trajectory);
- ``gap`` after ``md``: :class:`qdlab.workflows.gap.GapSettings` (HOMO, LUMO, gap per frame, eV; chunks
  evaluated serially in one task, checkpointed);
- ``linewidth`` after ``gap``: :class:`LinewidthStep` (Huang–Rhys factors, reorganisation energy, Γ in meV);
- ``excitons`` after a structure step (or the built model): :class:`qdlab.workflows.excitons.ExcitonSettings`
  (pseudopotential states near the gap → BSE; gap, optical gap, lowest ⟨S²⟩, bright–dark and bright
  splittings as row values; states and kernel checkpointed in the task's folder).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from pydantic import Field, create_model, model_validator

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


def _from_pydantic(name: str, workflow: str, settings: type, doc: str, exclude: set[str] = frozenset()) -> type[_Step]:
    fields = {k: (f.annotation, f) for k, f in settings.model_fields.items() if k not in exclude}
    return create_model(name, __base__=_Step, __doc__=doc, workflow=(Literal[workflow], workflow), **fields)


class LinewidthStep(_Step):
    """Exciton–phonon linewidth of a gap trace (:func:`qdlab.analysis.exciton_phonon.linewidth`):
    temperature ``T_K`` (K), Huang–Rhys ``bands_meV`` (name → [lo, hi] meV; None: the defaults),
    ``resolution_meV`` required of the trace, ``skip_fs`` discarded (fs), ``max_lag_fs`` of D(t)."""

    workflow: Literal["linewidth"] = "linewidth"
    T_K: float = Field(300.0, gt=0)
    bands_meV: dict[str, list[float]] | None = None
    resolution_meV: float = Field(1.0, gt=0)
    skip_fs: float = Field(0.0, ge=0)
    max_lag_fs: float | None = Field(2000.0, gt=0)


def _models() -> tuple[type[_Step], ...]:
    from qdlab.workflows.binding import BindingSettings
    from qdlab.workflows.excitons import ExcitonSettings
    from qdlab.workflows.gap import GapSettings
    from qdlab.workflows.ir import HarmonicIRSettings, IRMDSettings, ThermalSettings

    return (_from_dataclass("ThermalStep", "thermal", ThermalSettings, "Harmonic thermodynamics of a phonon step."),
            _from_pydantic("BindingStep", "binding", BindingSettings, "Ligand binding energies (BindingSettings; "
                           "the engine is the campaign's).", exclude={"engine"}),
            _from_dataclass("IRStep", "ir", HarmonicIRSettings, "Harmonic IR spectrum of a phonon step."),
            _from_dataclass("IRMDStep", "ir_md", IRMDSettings, "IR spectrum of an MD step's dipole trajectory."),
            _from_pydantic("GapStep", "gap", GapSettings, "Band gap per frame of an MD step (GapSettings)."),
            _from_pydantic("ExcitonsStep", "excitons", ExcitonSettings, "Exciton fine structure of a structure "
                           "(pseudopotential states + BSE; ExcitonSettings)."))


ThermalStep, BindingStep, IRStep, IRMDStep, GapStep, ExcitonsStep = _models()
ExtraStep = ThermalStep | BindingStep | IRStep | IRMDStep | GapStep | ExcitonsStep | LinewidthStep

EXTRA_PRODUCES = {"thermal": "thermal", "binding": "binding", "ir": "ir", "ir_md": "ir", "gap": "gap trace",
                  "linewidth": "linewidth", "excitons": "excitons"}
EXTRA_NEEDS = {"thermal": "phonons", "binding": "structure", "ir": "phonons", "ir_md": "trajectory",
               "gap": "trajectory", "linewidth": "gap trace", "excitons": "structure"}
EXTRA_USES_ENGINE = {"binding"}
