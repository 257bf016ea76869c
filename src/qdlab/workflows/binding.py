"""Ligand binding energies on a slab or nanocrystal (seed 000 Fig. S6), with a committee spread.

For a host model H (seed 000: the 2×2×3 MA-capped CsPbBr3 (001) slab) and a ligand L that takes
the site of a native ion I (an anionic ligand replaces a surface X = Br⁻, a cationic one a
surface A = Cs⁺), all energies from the same engine at relaxed geometries:

    E_bind(L) = E(H − I + L) − E(H − I) − E(L)          ligand against the vacated host
    E_bind(I) = E(H)         − E(H − I) − E(I)          the native ion on the same site
    ΔE_exch(L) = E_bind(L) − E_bind(I)                  = E(H − I + L) + E(I) − E(H) − E(L)

in eV; negative = bound. The reference state is stated in every result: the vacated host keeps
the formal charge the ion left (+1 e for a Br⁻ vacancy), L and I are the free ions (L⁻, Br⁻).
ML potentials carry no explicit charge, so their "ions" are whatever the model predicts for
that composition: compare ligands through ΔE_exch (the vacated host cancels) and read absolute
E_bind with care. Seed 000 quotes E_bind(Br⁻) = −2.01 eV (DFT, PBE) on its slab.

Plan → evaluate → assemble: :func:`plan_binding` makes the structures (host, vacated host,
free ion, and one complex + one free ligand per ligand; all ligands of one site kind share the
site, hence the host, vacancy and ion); :func:`evaluate_structure` relaxes one of them (any
executor; each unit saved atomically and resumed from its relaxation trajectory);
:func:`assemble_binding` turns the energies into a :class:`BindingResult`. With a committee,
each member adds single points at the primary engine's relaxed geometries and every binding
energy becomes a committee mean ± spread (:mod:`qdlab.analysis.uncertainty`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read
from pydantic import BaseModel, ConfigDict, Field

from qdlab.analysis.uncertainty import CommitteeValue, committee_value, ordering
from qdlab.workflows.relax import RelaxSettings
from qdlab.errors import QdlabError
from qdlab.store.files import write_atoms, write_text
from qdlab.store.results import content_hash
from qdlab.workflows.committee import EngineChoice, Member, committee_energies, unique_titles

Progress = Callable[[int, int], None] | None
BOX_VACUUM = 10.0  # Å around free ligands and ions


class BindingSettings(BaseModel):
    """Settings of a binding-energy run (shared by the CLI, the Python API and a campaign step)."""

    model_config = ConfigDict(extra="forbid")
    ligands: list[str] = Field(..., min_length=1, description="library ligands, e.g. ['PhP', 'BzO', 'PhS']")
    engine: Member = Field(default_factory=EngineChoice, description="relaxes every structure")
    committee: list[Member] = Field(default_factory=list,
                                          description="extra single-point engines at the relaxed geometries")
    site: int | None = Field(None, description="atom index of the native ion to replace (default: chosen)")
    relax: bool = Field(True, description="relax every structure first (False: single points)")
    relaxation: RelaxSettings = Field(default_factory=lambda: RelaxSettings(fmax=0.05, steps=300),
                                      description="the relax workflow's settings (rattle seed: ``seed``)")
    seed: int = 0
    min_distance: float = Field(1.8, gt=0, description="closest allowed ligand contact when placing, Å")


@dataclass(frozen=True)
class BindingPlan:
    """The structures of a binding-energy run: name → Atoms; ``ligand_site[L]`` the site kind."""

    structures: dict[str, Atoms] = field(repr=False)
    ligands: tuple[str, ...]
    ligand_site: dict[str, str]
    ion: dict[str, str]  # site kind → element of the native ion
    site_index: dict[str, int]  # site kind → atom index of the replaced ion in the host
    reference: dict[str, str]  # ligand → the reference statement


def _box(atoms: Atoms) -> Atoms:
    """A free ligand or ion as a cluster in the project's one vacuum box (``BOX_VACUUM`` Å per side)."""
    from qdlab.build.box import vacuum_box

    a = atoms.copy()
    a.pbc = False
    return vacuum_box(a, BOX_VACUUM)


def _pool(host: Atoms, kind: str):
    from qdlab.build.recipes import perovskite_pools

    for key in ("role", "depth", "facet"):
        if key not in host.arrays:
            raise QdlabError(f"the host needs the builder's '{key}' labels (build it with qdlab build)")
    facets = ("+z",) if host.pbc[0] and host.pbc[1] else None
    return perovskite_pools(host, facets)[kind]


def choose_site(host: Atoms, kind: str, site: int | None = None) -> int:
    """Pool index of the replaced ion: ``site`` (an atom index), else the surface site nearest to a
    ligand already present (seed 000's anion next to an MA), else the outermost one (lowest index)."""
    pool = _pool(host, kind)
    if len(pool) == 0:
        raise QdlabError(f"the host has no free surface {kind} site")
    if site is not None:
        hit = np.flatnonzero(pool.atom_index == site)
        if not len(hit):
            raise QdlabError(f"atom {site} is not a free surface {kind} site of the host")
        return int(hit[0])
    role = host.arrays["role"]
    lig = np.flatnonzero(role == "ligand")
    if len(lig):
        motif = lig[host.arrays["motif"][lig].astype(bool)] if "motif" in host.arrays else lig
        d = np.linalg.norm(pool.positions[:, None, :] - host.positions[motif][None, :, :], axis=2).min(1)
        return int(np.argmin(np.round(d, 3)))
    if host.pbc[0]:
        score = pool.positions[:, 2]
    else:
        score = np.linalg.norm(pool.positions - host.positions.mean(0), axis=1)
    return int(np.argmax(np.round(score, 3)))


def _substitute(host: Atoms, kind: str, k: int, ligand, seed: int, min_distance: float) -> Atoms:
    from qdlab.build.attach import LigandRequest, SitePool, attach_ligands

    pool = _pool(host, kind)
    one = SitePool(kind=kind, positions=pool.positions[[k]], normals=pool.normals[[k]], facets=pool.facets[[k]],
                   atom_index=pool.atom_index[[k]], ion_charge=pool.ion_charge[[k]])
    out = attach_ligands(host, [LigandRequest(ligand, n=1)], {kind: one}, seed, min_distance=min_distance).atoms
    new = slice(len(host) - 1, len(out))  # attach_ligands appends the ligand after the vacated host
    ids = out.arrays["ligand_id"]
    old_max = int(host.arrays["ligand_id"].max()) if "ligand_id" in host.arrays else -1
    ids[new] = old_max + 1
    out.info.update(host.info)
    out.info["formula"] = out.get_chemical_formula()
    return out


def plan_binding(host: Atoms, settings: BindingSettings) -> BindingPlan:
    """The structures: ``host``, ``vacancy_<kind>``, ``ion_<kind>``, ``complex_<L>``, ``ligand_<L>``."""
    from qdlab.build.ligands import get_ligand, ligand_atoms

    ligs = [get_ligand(n) for n in settings.ligands]
    if len({lg.name for lg in ligs}) != len(ligs):
        raise QdlabError("each ligand once, please")
    structures: dict[str, Atoms] = {"host": host.copy()}
    site_of, ion, site_index, reference = {}, {}, {}, {}
    for kind in dict.fromkeys(lg.site for lg in ligs):
        k = choose_site(host, kind, settings.site)
        idx = int(_pool(host, kind).atom_index[k])
        site_index[kind], ion[kind] = idx, host[idx].symbol
        vac = host.copy()
        del vac[idx]
        structures[f"vacancy_{kind}"] = vac
        free_ion = Atoms(host[idx].symbol, positions=[[0.0, 0.0, 0.0]])
        free_ion.set_initial_charges([host.get_initial_charges()[idx]])
        structures[f"ion_{kind}"] = _box(free_ion)
        for lg in (x for x in ligs if x.site == kind):
            if not (lg.charge < 0 if kind == "X" else lg.charge > 0):
                raise QdlabError(f"{lg.name} (charge {lg.charge:+d}) on an {kind} site: binding energies are "
                                 f"defined here for anionic ligands on X and cationic ligands on A")
            structures[f"complex_{lg.name}"] = _substitute(host, kind, k, lg, settings.seed, settings.min_distance)
            structures[f"ligand_{lg.name}"] = _box(ligand_atoms(lg, settings.seed))
            site_of[lg.name] = kind
            q = int(round(host.get_initial_charges()[idx]))
            i_txt, l_txt = f"{ion[kind]}({q:+d})", f"{lg.name}({lg.charge:+d})"
            reference[lg.name] = (f"E_bind = E(host − {i_txt} + {l_txt}) − E(host − {i_txt}) − E(free {l_txt}); "
                                  f"exchange = E_bind − E_bind(free {i_txt} back on its site, atom {idx})")
    return BindingPlan(structures=structures, ligands=tuple(lg.name for lg in ligs), ligand_site=site_of, ion=ion,
                       site_index=site_index, reference=reference)


def _unit_key(atoms: Atoms, settings: BindingSettings) -> str:
    return content_hash({"numbers": atoms.numbers.tolist(), "pos": np.round(atoms.positions, 8).tolist(),
                         "engine": settings.engine.force_label(), "relax": settings.relax,
                         "relaxation": _relax_settings(atoms, settings).model_dump() if settings.relax else None})


def _relax_settings(atoms: Atoms, settings: BindingSettings) -> RelaxSettings:
    """The relax settings of one structure: the rattle seeded by ``settings.seed`` unless given; a
    ``fix`` selection only where the structure carries depth labels (free ligands and ions do not)."""
    r = settings.relaxation
    return r.model_copy(update={"seed": settings.seed if r.seed is None else r.seed,
                                "fix": r.fix if r.fix and "depth" in atoms.arrays else None})


def evaluate_structure(name: str, atoms: Atoms, settings: BindingSettings, folder: str | os.PathLike,
                       calc=None) -> Atoms:
    """Relax (or single-point) one structure with the primary engine; saved as
    ``folder/<name>.extxyz`` (``info``: energy_eV, fmax_eV_A, converged, key) and reused when the
    same structure and settings come again; an interrupted relaxation resumes from its trajectory."""
    from qdlab.workflows.relax import run_relax

    folder = Path(folder)
    out = folder / f"{name}.extxyz"
    key = _unit_key(atoms, settings)
    if out.exists():
        done = read(out)
        if done.info.get("binding_key") == key:
            return done
    calc = calc or settings.engine.calculator()
    if settings.relax and len(atoms) > 1:
        res = run_relax(atoms, calc, _relax_settings(atoms, settings), trajectory=folder / f"{name}.traj")
        final, energy, fm, conv = res.atoms, res.energy_eV, res.fmax_eV_A, res.converged
        final.constraints = []
    else:
        final = atoms.copy()
        final.calc = calc
        energy = float(final.get_potential_energy())
        fm = float(np.linalg.norm(final.get_forces(), axis=1).max())
        conv = True
        final.calc = None
    final.info.update(energy_eV=float(energy), fmax_eV_A=float(fm), converged=bool(conv), binding_key=key,
                      binding_unit=name)
    write_atoms(out, final)
    return final


@dataclass(frozen=True)
class BindingResult:
    """Binding and exchange energies (eV) per ligand, per engine, with the committee statistics.

    ``energies_eV[member][structure]``; ``binding_eV[member][L]``; ``exchange_eV[member][L]``;
    ``ion_binding_eV[member][kind]``; ``binding[L]``/``exchange[L]``/``ion_binding[kind]`` the
    committee values (a committee of one: spread 0). The first member is the relaxing engine."""

    ligands: tuple[str, ...]
    members: tuple[str, ...]
    ligand_site: dict[str, str]
    ion: dict[str, str]
    site_index: dict[str, int]
    reference: dict[str, str]
    energies_eV: dict[str, dict[str, float]]
    binding_eV: dict[str, dict[str, float]]
    exchange_eV: dict[str, dict[str, float]]
    ion_binding_eV: dict[str, dict[str, float]]
    binding: dict[str, CommitteeValue]
    exchange: dict[str, CommitteeValue]
    ion_binding: dict[str, CommitteeValue]
    converged: dict[str, bool]
    settings: dict

    def ordering(self) -> dict:
        """Ligands from the strongest to the weakest binding (most negative first), with robustness."""
        return ordering(self.binding)

    def flat(self) -> dict[str, float]:
        """Scalar results for a results store row: ``bind_<L>_eV``, ``bind_<L>_spread_eV``,
        ``exchange_<L>_eV`` (+ spread) and ``bind_ion_<kind>_eV``."""
        out: dict[str, float] = {}
        for L in self.ligands:
            out |= {f"bind_{L}_eV": self.binding[L].mean, f"bind_{L}_spread_eV": self.binding[L].spread,
                    f"exchange_{L}_eV": self.exchange[L].mean, f"exchange_{L}_spread_eV": self.exchange[L].spread}
        for k, v in self.ion_binding.items():
            out |= {f"bind_ion_{k}_eV": v.mean, f"bind_ion_{k}_spread_eV": v.spread}
        return out

    def to_dict(self) -> dict:
        return {"ligands": list(self.ligands), "members": list(self.members), "ligand_site": self.ligand_site,
                "ion": self.ion, "site_index": self.site_index, "reference": self.reference,
                "energies_eV": self.energies_eV, "binding_eV": self.binding_eV, "exchange_eV": self.exchange_eV,
                "ion_binding_eV": self.ion_binding_eV,
                "binding": {k: v.to_dict() for k, v in self.binding.items()},
                "exchange": {k: v.to_dict() for k, v in self.exchange.items()},
                "ion_binding": {k: v.to_dict() for k, v in self.ion_binding.items()},
                "ordering": self.ordering(), "converged": self.converged, "settings": self.settings}

    def save(self, path: str | os.PathLike) -> Path:
        return write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> BindingResult:
        d = json.loads(Path(path).read_text())
        cv = lambda m: {k: CommitteeValue.from_dict(v) for k, v in m.items()}  # noqa: E731
        return cls(ligands=tuple(d["ligands"]), members=tuple(d["members"]), ligand_site=d["ligand_site"],
                   ion=d["ion"], site_index={k: int(v) for k, v in d["site_index"].items()},
                   reference=d["reference"], energies_eV=d["energies_eV"], binding_eV=d["binding_eV"],
                   exchange_eV=d["exchange_eV"], ion_binding_eV=d["ion_binding_eV"], binding=cv(d["binding"]),
                   exchange=cv(d["exchange"]), ion_binding=cv(d["ion_binding"]), converged=d["converged"],
                   settings=d["settings"])


def binding_from_energies(plan: BindingPlan, energies: dict[str, float]) -> tuple[dict, dict, dict]:
    """(E_bind per ligand, ΔE_exch per ligand, E_bind of the native ion per site kind), eV."""
    ion_b = {k: energies["host"] - energies[f"vacancy_{k}"] - energies[f"ion_{k}"] for k in plan.ion}
    bind = {L: energies[f"complex_{L}"] - energies[f"vacancy_{plan.ligand_site[L]}"] - energies[f"ligand_{L}"]
            for L in plan.ligands}
    exch = {L: bind[L] - ion_b[plan.ligand_site[L]] for L in plan.ligands}
    return bind, exch, ion_b


def assemble_binding(plan: BindingPlan, energies: dict[str, dict[str, float]], settings: BindingSettings,
                     converged: dict[str, bool]) -> BindingResult:
    """Member energies ``{member: {structure: E}}`` → :class:`BindingResult`."""
    members = tuple(energies)
    per = {m: binding_from_energies(plan, energies[m]) for m in members}
    stat = lambda i, keys: {k: committee_value([per[m][i][k] for m in members], members, k)  # noqa: E731
                            for k in keys}
    return BindingResult(ligands=plan.ligands, members=members, ligand_site=plan.ligand_site, ion=plan.ion,
                         site_index=plan.site_index, reference=plan.reference, energies_eV=energies,
                         binding_eV={m: per[m][0] for m in members}, exchange_eV={m: per[m][1] for m in members},
                         ion_binding_eV={m: per[m][2] for m in members}, binding=stat(0, plan.ligands),
                         exchange=stat(1, plan.ligands), ion_binding=stat(2, plan.ion), converged=converged,
                         settings=settings.model_dump())


def run_plan(plan: BindingPlan, settings: BindingSettings, folder: str | os.PathLike,
             progress: Progress = None) -> BindingResult:
    """Evaluate every structure of ``plan`` (relax with the primary engine, then the committee's
    single points at those geometries) and assemble; saved as ``folder/binding.json``."""
    folder = Path(folder)
    units = folder / "units"
    calc = settings.engine.calculator()
    relaxed = {}
    n = len(plan.structures)
    total = n * (1 + len(settings.committee))
    for i, (name, atoms) in enumerate(plan.structures.items()):
        relaxed[name] = evaluate_structure(name, atoms, settings, units, calc=calc)
        if progress:
            progress(i + 1, total)
    title = unique_titles([settings.engine, *settings.committee])
    energies = {title[0]: {k: float(a.info["energy_eV"]) for k, a in relaxed.items()}}
    if settings.committee:
        cb = (lambda d, t: progress(n + d, total)) if progress else None
        extra = committee_energies(relaxed, settings.committee, progress=cb)  # members parsed by the settings model
        for t, e in zip(title[1:], extra.values()):
            energies[t] = e
    result = assemble_binding(plan, energies, settings, {k: bool(a.info["converged"]) for k, a in relaxed.items()})
    result.save(folder / "binding.json")
    return result


def binding_energies(host: Atoms, settings: BindingSettings | dict, folder: str | os.PathLike,
                     progress: Progress = None) -> BindingResult:
    """Plan → relax every structure with ``settings.engine`` → committee single points → result
    (saved as ``folder/binding.json``; every structure as ``folder/units/<name>.extxyz``). This is
    the function a campaign step ``binding`` calls with the task's model and settings."""
    settings = settings if isinstance(settings, BindingSettings) else BindingSettings(**settings)
    return run_plan(plan_binding(host, settings), settings, folder, progress)
