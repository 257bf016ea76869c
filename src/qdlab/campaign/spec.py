"""Campaign specifications (TOML or YAML, validated by pydantic) and their expansion into tasks.

A campaign is a grid of builder recipes × a chain of workflow steps × engine settings::

    name = "fig5"
    store = "fig5.db"                  # SQLite file, or postgresql://user:pw@host/db

    [[grid]]                           # one or more grids; a list value is an axis of the grid
    kind = "perovskite"
    composition = "CsPbBr3"
    lattice = 5.95
    size = ["3", "4"]
    ligands = [[], ["MA"], ["BzO"], ["MA", "BzO"]]
    coverage = [0.5]                   # applied to ligand names given without ":coverage"
    seed = [0]

    [[engines]]                        # one or more engines (an axis too)
    name = "chgnet"

    [[steps]]                          # the chain; each step takes the previous one's output
    workflow = "relax"
    fmax = 0.01
    [[steps]]
    workflow = "phonons"
    [[steps]]
    workflow = "peaks"
    [[steps]]
    workflow = "md"                    # a branch: `after` names the step it starts from
    after = "relax"
    steps = 2000
    [[steps]]
    workflow = "rmsf"

    [execution]
    workers = 2                        # local cluster: processes, 1 thread each
    # scheduler = "tcp://host:8786"    # an existing Dask cluster
    # cluster = "slurm"                # or "pbs": dask-jobqueue with queue/cores/memory/walltime/gpus

Every task is a plain, JSON-serialisable dictionary (:class:`Task`), keyed by a content hash of its
inputs: the recipe (or the parent step's key), the workflow settings and the engine.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from qdlab.engines.spec import EngineSpec, file_hash  # noqa: F401  (engine settings: one model, qdlab.engines)
from qdlab.campaign.step_base import _Model, _Step
from qdlab.campaign.steps_extra import EXTRA_NEEDS, EXTRA_PRODUCES, EXTRA_USES_ENGINE, ExtraStep
from qdlab.errors import QdlabError
from qdlab.store.results import content_hash
from qdlab.workflows.md_analysis import RDFSettings, RMSFSettings
from qdlab.workflows.phonons import PhononSettings
from qdlab.workflows.relax import RelaxSettings

#: bump when a workflow's meaning changes so that old results are not reused
TASK_SCHEMA = 1


# -- workflow steps ----------------------------------------------------------------------------


class RelaxStep(_Step, RelaxSettings):
    """Relaxation (SCIENCE.md §4): :class:`qdlab.workflows.relax.RelaxSettings` (the rattle's seed
    defaults to the recipe's)."""

    workflow: Literal["relax"] = "relax"


class PhononStep(_Step, PhononSettings):
    """Γ-point phonons (:class:`qdlab.workflows.phonons.PhononSettings`); ``chunk``: displacements
    per sub-task (None: automatic, 0: never split)."""

    workflow: Literal["phonons"] = "phonons"
    chunk: int | None = Field(None, ge=0)


class PeaksStep(_Step):
    """DOS peak centres (M1/M2/M3, SCIENCE.md §4) of a phonon step; ``regions`` as in
    :data:`qdlab.analysis.dos.CSPBBR3_REGIONS` (name → [lo, hi, half-window or null], cm⁻¹)."""

    workflow: Literal["peaks"] = "peaks"
    sigma_cm1: float = Field(3.0, gt=0)
    regions: dict[str, list[float | None]] | None = None

    @field_validator("regions")
    @classmethod
    def _regions(cls, v):
        for name, r in (v or {}).items():
            if len(r) not in (2, 3) or r[0] is None or r[1] is None or not r[0] < r[1]:
                raise ValueError(f"region {name} must be [lo, hi] or [lo, hi, half-window] in cm⁻¹ with lo < hi")
        return {k: [r[0], r[1], r[2] if len(r) == 3 else None] for k, r in v.items()} if v else v


class _MDStepBase(_Step):
    """Checks the MD settings with :meth:`qdlab.workflows.md.MDSettings.validate` (bounds in one place)."""

    @model_validator(mode="after")
    def _valid(self):
        from qdlab.workflows.md import MDSettings

        fields = self.model_dump(exclude={"name", "after", "workflow"})
        try:
            MDSettings(**(fields | {"seed": fields["seed"] or 0})).validate()
        except QdlabError as exc:
            raise ValueError(str(exc)) from None
        return self


def _md_step() -> type[_Step]:
    """The campaign's MD step: the fields and defaults of :class:`qdlab.workflows.md.MDSettings`
    (not repeated here), the seed defaulting to the recipe's."""
    import dataclasses
    import typing

    from pydantic import create_model

    from qdlab.workflows.md import MDSettings

    hints = typing.get_type_hints(MDSettings)
    fields: dict[str, Any] = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(MDSettings)}
    fields["seed"] = (int | None, None)
    return create_model("MDStep", __base__=_MDStepBase, __doc__="Molecular dynamics (:class:`qdlab.workflows.md."
                        "MDSettings`; seed default: the recipe's).", workflow=(Literal["md"], "md"), **fields)


MDStep = _md_step()


class RMSFStep(_Step, RMSFSettings):
    """RMSF per atom/element/layer of an MD step (:class:`qdlab.workflows.md_analysis.RMSFSettings`)."""

    workflow: Literal["rmsf"] = "rmsf"


class RDFStep(_Step, RDFSettings):
    """Radial distribution functions of an MD step (:class:`qdlab.workflows.md_analysis.RDFSettings`)."""

    workflow: Literal["rdf"] = "rdf"


Step = Annotated[RelaxStep | PhononStep | PeaksStep | MDStep | RMSFStep | RDFStep | ExtraStep,
                 Field(discriminator="workflow")]

#: what each workflow produces and what it needs from its parent
PRODUCES = {"build": "structure", "relax": "structure", "phonons": "phonons", "peaks": "peaks",
            "md": "trajectory", "rmsf": "rmsf", "rdf": "rdf", **EXTRA_PRODUCES}
NEEDS = {"relax": "structure", "phonons": "structure", "peaks": "phonons", "md": "structure",
         "rmsf": "trajectory", "rdf": "trajectory", **EXTRA_NEEDS}
#: workflows that call the engine (the engine is part of their key)
USES_ENGINE = {"relax", "phonons", "md", *EXTRA_USES_ENGINE}


# -- grids -------------------------------------------------------------------------------------
class Grid(_Model):
    """A grid of builder recipes: every list-valued field is an axis (``ligands`` is a list of
    ligand sets; ``coverage`` fills in ligands named without one). Other fields are passed to the
    recipe (:class:`qdlab.build.PerovskiteRecipe` or :class:`qdlab.build.PbSRecipe`) unchanged."""

    model_config = ConfigDict(extra="allow")
    kind: Literal["perovskite", "pbs"] = "perovskite"
    ligands: list[list[str]] | None = None
    coverage: list[float] | float | None = None

    @field_validator("coverage")
    @classmethod
    def _coverage(cls, v):
        vals = v if isinstance(v, list) else ([] if v is None else [v])
        for c in vals:
            if not (0 < c <= 1 or (c > 1 and float(c).is_integer())):
                raise ValueError(f"coverage {c} is impossible: a fraction in (0, 1] or a whole number of ligands")
        return v

    def recipes(self) -> list[dict]:
        """Every recipe of the grid as a dict (axes expanded, coverage applied, duplicates removed)."""
        fixed: dict[str, Any] = {}
        axes: dict[str, list] = {}
        for k, v in (self.model_extra or {}).items():
            if isinstance(v, list) and k != "tilt_deg":
                if not v:
                    raise QdlabError(f"grid axis {k!r} is empty")
                axes[k] = v
            else:
                fixed[k] = v
        lig_sets = self.ligands if self.ligands is not None else [[]]
        covs = self.coverage if isinstance(self.coverage, list) else [self.coverage]
        lig_axis = []
        for lig in lig_sets:
            for c in covs:
                specs = [s if (":" in s or c is None) else f"{s}:{_num(c)}" for s in lig]
                if specs not in lig_axis:
                    lig_axis.append(specs)
        names = list(axes)
        out, seen = [], set()
        for values in itertools.product(*(axes[n] for n in names)):
            for lig in lig_axis:
                r = {"kind": self.kind, **fixed, **dict(zip(names, values))}
                if self.kind == "perovskite":
                    r["ligands"] = lig
                    r["size"] = str(r.get("size", "3"))
                elif lig:
                    raise QdlabError("PbS grids take `ligand` (the neutralising carboxylate), not `ligands`")
                h = content_hash(r)
                if h not in seen:
                    seen.add(h)
                    out.append(r)
        return out


def _num(c: float) -> str:
    return str(int(c)) if float(c).is_integer() else repr(float(c))


# -- execution ---------------------------------------------------------------------------------
class Execution(_Model):
    """Where tasks run: an embedded local cluster (``workers`` processes, one thread each), an
    existing scheduler (``scheduler`` address) or batch jobs through dask-jobqueue (``cluster`` slurm
    or pbs: ``queue``, ``account``, ``cores`` and ``processes`` per job, ``memory`` per job,
    ``walltime``, ``gpus`` per job, ``jobs`` to start, ``job_extra`` more directives,
    ``prologue`` shell lines run before the worker starts)."""

    workers: int = Field(2, ge=1)
    scheduler: str | None = None
    cluster: Literal["local", "slurm", "pbs"] = "local"
    queue: str | None = None
    account: str | None = None
    cores: int = Field(1, ge=1)
    processes: int | None = Field(None, ge=1)
    memory: str = "4GB"
    walltime: str = "01:00:00"
    gpus: int = Field(0, ge=0)
    jobs: int = Field(1, ge=1)
    job_extra: list[str] = Field(default_factory=list)
    prologue: list[str] = Field(default_factory=list)
    python: str | None = Field(None, description="python executable on the compute nodes")
    interface: str | None = None


class CampaignSpec(_Model):
    """A campaign: name, results store, recipe grids, engines, the step chain and execution."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    store: str = "results.db"
    files: str | None = Field(None, description="folder for large arrays (default beside the store)")
    grid: list[Grid] = Field(..., min_length=1)
    engines: list[EngineSpec] = Field(default_factory=lambda: [EngineSpec()])
    steps: list[Step] = Field(..., min_length=1)
    execution: Execution = Field(default_factory=Execution)

    @model_validator(mode="after")
    def _chain(self) -> CampaignSpec:
        names: dict[str, str] = {}
        prev = None
        for s in self.steps:
            name = s.name or s.workflow
            if name in names:
                raise ValueError(f"two steps named {name!r}: give one a `name`")
            after = s.after if s.after is not None else prev
            parent_kind = "build" if after is None else names.get(after)
            if parent_kind is None:
                raise ValueError(f"step {name!r} comes after {after!r}, which is not an earlier step")
            if PRODUCES[parent_kind] != NEEDS[s.workflow]:
                raise ValueError(f"step {name!r} ({s.workflow}) needs a {NEEDS[s.workflow]}, but "
                                 f"{after or 'the built model'} gives a {PRODUCES[parent_kind]}")
            names[name] = s.workflow
            prev = name
        return self

    def chain(self) -> list[tuple[str, str | None, Any]]:
        """(step name, parent step name or None, step model) in order."""
        out, prev = [], None
        for s in self.steps:
            name = s.name or s.workflow
            after = s.after if s.after is not None else prev
            out.append((name, after, s))
            prev = name
        return out

    def resolve_paths(self, base: Path) -> CampaignSpec:
        """Store and files folder relative to the spec file's folder (URLs untouched)."""
        upd: dict[str, Any] = {}
        if "://" not in self.store and not Path(self.store).is_absolute():
            upd["store"] = str((base / self.store).resolve())
        if self.files and not Path(self.files).is_absolute():
            upd["files"] = str((base / self.files).resolve())
        return self.model_copy(update=upd)


def load_spec(path: str | os.PathLike, overrides: dict | None = None) -> CampaignSpec:
    """Read and validate a campaign spec (``.toml``, ``.yaml``/``.yml`` or ``.json``).

    Relative store/files paths are taken relative to the spec's folder; ``overrides`` update
    top-level keys (e.g. ``{"store": url}``) before validation. Raises :class:`QdlabError` with one
    line per problem.
    """
    p = Path(path)
    if not p.is_file():
        raise QdlabError(f"campaign spec {p} not found")
    text = p.read_text()
    try:
        if p.suffix == ".toml":
            import tomllib

            raw = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)
        elif p.suffix == ".json":
            import json

            raw = json.loads(text)
        else:
            raise QdlabError(f"campaign spec {p.name}: use .toml, .yaml or .json")
    except QdlabError:
        raise
    except Exception as exc:
        raise QdlabError(f"campaign spec {p.name} is not valid {p.suffix[1:].upper()}: "
                         f"{' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise QdlabError(f"campaign spec {p.name} must be a table of settings")
    raw = raw | (overrides or {})
    return spec_from_dict(raw).resolve_paths(p.parent.resolve())


def spec_from_dict(raw: dict) -> CampaignSpec:
    """Validate a spec given as a dict (one-line :class:`QdlabError` on failure)."""
    try:
        return CampaignSpec.model_validate(raw)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith(("function-", "tagged-")))
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}" if loc else msg)
        raise QdlabError("invalid campaign spec: " + "; ".join(parts)) from None


# -- tasks -------------------------------------------------------------------------------------
@dataclass
class Task:
    """One unit of work: a workflow step on one recipe with one engine (JSON-serialisable).

    ``key`` content hash of the inputs; ``parent`` the key of the step it takes its input from
    (None: it builds the recipe itself); ``n_atoms`` of the model; ``labels`` columns for
    tables (composition, size, passivation, seed, engine).
    """

    key: str
    campaign: str
    step: str
    workflow: str
    recipe: dict
    recipe_key: str
    engine: dict
    settings: dict
    parent: str | None
    parent_workflow: str | None
    n_atoms: int
    labels: dict = field(default_factory=dict)
    n_atoms_exact: bool = True  # False: estimated at plan time (a ligand shell not built, see expand)

    def to_dict(self) -> dict:
        return asdict(self)


def passivation(recipe: dict) -> str:
    """A short label of a recipe's surface: ``bare``, ``MA``, ``BzO/MA`` (names sorted)."""
    if recipe.get("kind") == "pbs":
        return recipe.get("ligand") or "bare"
    names = sorted({s.split(":")[0] for s in recipe.get("ligands", [])}, key=str.lower)
    return "/".join(names) if names else "bare"


def recipe_labels(recipe: dict) -> dict:
    """Table columns of a recipe: composition, size, passivation, coverage, seed."""
    covs = sorted({s.split(":")[1] for s in recipe.get("ligands", []) if ":" in s})
    size = str(recipe.get("size", ""))
    if recipe.get("kind", "perovskite") == "perovskite":
        from qdlab.build.perovskite import parse_size

        size = "x".join(map(str, parse_size(size)))
    return {"composition": recipe.get("composition", f"{recipe.get('metal', 'Pb')}{recipe.get('anion', 'S')}"),
            "size": size, "passivation": passivation(recipe),
            "coverage": ",".join(covs), "seed": int(recipe.get("seed", 0))}


def recipe_model(recipe: dict):
    """The builder's pydantic model of a recipe dict (validated)."""
    from qdlab.build import PbSRecipe, PerovskiteRecipe

    kind = recipe.get("kind", "perovskite")
    if kind not in ("perovskite", "pbs"):
        raise QdlabError(f"unknown recipe kind {kind!r} (perovskite or pbs)")
    return {"perovskite": PerovskiteRecipe, "pbs": PbSRecipe}[kind].model_validate(dict(recipe))


def build_recipe(recipe: dict):
    """Build the model of a recipe dict (validated by the builder's pydantic models)."""
    from qdlab.build import build

    return build(recipe_model(recipe))


def expand(spec: CampaignSpec, *, check_engines: bool = True, build: bool = True) -> list[Task]:
    """Every task of a campaign in dependency order (parents first).

    Each recipe is built once here (validates it, counts its atoms); ``build=False`` (plan, status):
    checked and counted without building (:func:`qdlab.campaign.cost.count_recipe`), same tasks.
    Every problem is collected and raised as one :class:`QdlabError` before any work starts.
    """
    from qdlab.campaign.cost import count_recipe
    from qdlab.engines.registry import ENGINES, resolve_engine

    problems: list[str] = []
    engines: list[EngineSpec] = []
    for e in spec.engines:
        try:
            key = resolve_engine(e.name)
        except QdlabError as exc:
            problems.append(str(exc))
            continue
        if check_engines and not ENGINES[key].available():
            problems.append(f"engine {key} is not installed here ({ENGINES[key].requires})")
        if key == "mattersim" and not e.checkpoint:
            problems.append("engine mattersim needs `checkpoint` (a model file)")
        if e.checkpoint and not Path(e.checkpoint).is_file():
            problems.append(f"engine {key}: checkpoint {e.checkpoint} not found")
        engines.append(e.model_copy(update={"name": key}))
    recipes: list[tuple[dict, int]] = []
    seen = set()
    for gi, g in enumerate(spec.grid, 1):
        try:
            rs = g.recipes()
        except QdlabError as exc:
            problems.append(f"grid {gi}: {exc}")
            continue
        for r in rs:
            h = content_hash(r)
            if h in seen:
                continue
            seen.add(h)
            try:
                n_atoms, exact = count_recipe(r, build)
            except ValidationError as exc:
                err = exc.errors()[0]
                problems.append(f"grid {gi}, recipe {_short(r)}: {'.'.join(map(str, err['loc']))}: {err['msg']}")
                continue
            except (QdlabError, ValueError) as exc:
                problems.append(f"grid {gi}, recipe {_short(r)}: {' '.join(str(exc).split())}")
                continue
            recipes.append((r, n_atoms, exact))
    if problems:
        raise QdlabError("campaign spec refused: " + "; ".join(dict.fromkeys(problems)))

    tasks: list[Task] = []
    for (recipe, n_atoms, exact), eng in itertools.product(recipes, engines):
        rkey = content_hash({"recipe": recipe, "schema": TASK_SCHEMA})
        keys: dict[str, tuple[str, str]] = {}
        for name, after, step in spec.chain():
            settings = step.model_dump(exclude={"name", "after", "workflow"})
            if step.workflow == "relax" and settings.get("seed") is None:
                settings.pop("seed")  # the recipe's seed (and the task keys of specs without one)
            if step.workflow == "md" and settings.get("seed") is None:
                settings["seed"] = int(recipe.get("seed", 0))
            parent_key, parent_wf = keys[after] if after is not None else (None, None)
            ident = {"workflow": step.workflow, "settings": settings, "schema": TASK_SCHEMA,
                     "input": parent_key or {"recipe": recipe}}
            if step.workflow in USES_ENGINE:
                ident["engine"] = eng.identity()
            key = content_hash(ident)
            keys[name] = (key, step.workflow)
            tasks.append(Task(key=key, campaign=spec.name, step=name, workflow=step.workflow, recipe=recipe,
                              recipe_key=rkey, engine=eng.model_dump(), settings=settings, parent=parent_key,
                              parent_workflow=parent_wf, n_atoms=n_atoms,
                              labels=recipe_labels(recipe) | {"engine": eng.name}, n_atoms_exact=exact))
    # one recipe built twice by different grids gives the same keys: keep the first
    unique: dict[str, Task] = {}
    for t in tasks:
        unique.setdefault(t.key, t)
    return list(unique.values())


def _short(r: dict) -> str:
    keys = ("composition", "size", "ligands", "seed", "metal", "ligand")
    return "{" + ", ".join(f"{k}={r[k]!r}" for k in keys if k in r) + "}"
