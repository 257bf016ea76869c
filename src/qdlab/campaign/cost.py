"""Cost estimate of a campaign: force calls × seconds per force call (per engine and model).

Seconds per call come from a cost model calibrated on this project's machines (one CPU core,
one thread) or, with ``measure=True``, from timing one call per distinct model here. The model
follows what the engines do: message-passing potentials (CHGNet, SevenNet, MatterSim) cost about
c₂ · (atom pairs within 6 Å) + c₃ · (bond angles within 3 Å), which captures the extra cost of
hydrogen-rich ligand shells that an atom count misses; the all-pairs classical force field costs
∝ N²; xTB and DFT ∝ N³.

Calibration (CHGNet 0.3.0, one core, measured): CsPbI3 n=2 (63 atoms) 0.029 s per call; bare
CsPbBr3 3×3×3 (189 atoms) 0.12 s; 50 % MA + BzO 1×1×1 (64 atoms) 0.14 s; capped 3×3×3 (701
atoms) 1.35–2.1 s (shared machine). Force calls: relax ≈ min(steps, 50 + N/2) (an estimate: the
optimiser decides), FD phonons 6N, MD steps + 1, analyses none.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms

#: engine → (seconds per 6 Å pair, seconds per 3 Å angle) for message-passing potentials
_MP_COEFFS = {"chgnet": (4.4e-5, 4.2e-5), "sevenn": (1.3e-4, 1.2e-4), "mattersim": (7.0e-5, 6.5e-5)}
#: classical: seconds ≈ a + b N²; xtb and cp2k: seconds ≈ c (N / N0)³
_CLASSICAL = (2.0e-4, 2.0e-7)
_CUBIC = {"xtb": (60.0, 189), "cp2k": (1200.0, 64)}
#: analysis steps (DOS peaks, RMSF, RDF): seconds, independent of the engine
ANALYSIS_SECONDS = 1.0


def graph_counts(atoms: Atoms) -> tuple[int, int]:
    """(ordered atom pairs within 6 Å, bond angles within 3 Å) of a cluster."""
    from scipy.spatial import cKDTree

    tree = cKDTree(atoms.positions)
    pairs = 2 * len(tree.query_pairs(6.0))
    deg = np.array([len(x) - 1 for x in tree.query_ball_point(atoms.positions, 3.0)])
    return pairs, int((deg * (deg - 1)).sum())


def seconds_per_call(engine: str, atoms: Atoms) -> float:
    """Modelled seconds per force call of ``engine`` (canonical name) on ``atoms`` (one CPU core)."""
    n = len(atoms)
    if engine in _MP_COEFFS:
        c2, c3 = _MP_COEFFS[engine]
        pairs, angles = graph_counts(atoms)
        return 0.005 + c2 * pairs + c3 * angles
    return _seconds_for_count(engine, n)


def _seconds_for_count(engine: str, n: int) -> float:
    """Seconds per call of the engines whose cost follows the atom count alone."""
    if engine == "classical":
        a, b = _CLASSICAL
        return a + b * n * n
    c, n0 = _CUBIC.get(engine, (1.0, 100))
    return c * (n / n0) ** 3


#: planning builds a model whose atom count cannot be predicted only up to this many atoms
#: (estimated); larger ones are estimated (:func:`qdlab.build.count.estimated_atoms`, 0–2.2 % high measured)
PLAN_BUILD_LIMIT = 1500


def count_recipe(recipe: dict, build: bool = True) -> tuple[int, bool]:
    """(atoms, exact) of a recipe's model. ``build=False`` (planning): checked and counted without
    building (exact for bare models and PbS, :mod:`qdlab.build.count`); a ligand-capped perovskite is
    built only when small, otherwise estimated. ``build=True``: built (validates everything)."""
    if build:
        from qdlab.campaign.spec import build_recipe

        return len(build_recipe(recipe)), True
    from qdlab.build.count import check_recipe, estimated_atoms
    from qdlab.campaign.spec import build_recipe, recipe_model

    model = recipe_model(recipe)
    check_recipe(model)
    n, exact = estimated_atoms(model)
    if not exact and n <= PLAN_BUILD_LIMIT:
        return len(build_recipe(recipe)), True
    return n, exact


#: message-passing engines on a model too large to build for a plan: its 6 Å pairs and 3 Å angles
#: per atom are taken from the same recipe at this size. Measured against the built size-12 CsPbBr3
#: models: bare 8.5 vs 10.8 s per CHGNet call (−21 %), 40 % MA + 40 % BzO 44.8 vs 36.4 s (+23 %)
PROXY_SIZE = {"perovskite": "3", "slab": "2x2x3", "pbs": 3}


def _graph_counts_of(recipe: dict, n_atoms: int) -> tuple[float, float]:
    """(pairs, angles) of a recipe's model: counted on the model when it is small enough to build
    (:data:`PLAN_BUILD_LIMIT`), else scaled per atom from a small model of the
    same recipe."""
    from qdlab.campaign.spec import build_recipe

    if n_atoms <= PLAN_BUILD_LIMIT:
        return graph_counts(build_recipe(recipe))
    proxy = build_recipe(recipe | {"size": PROXY_SIZE[recipe.get("kind", "perovskite")]})
    pairs, angles = graph_counts(proxy)
    return pairs * n_atoms / len(proxy), angles * n_atoms / len(proxy)


def modelled_seconds(engine: str, recipe: dict, n_atoms: int) -> float:
    """:func:`seconds_per_call` of a recipe's model without building it unless the engine's cost
    depends on the geometry (message passing: see :func:`_graph_counts_of`)."""
    if engine in _MP_COEFFS:
        c2, c3 = _MP_COEFFS[engine]
        pairs, angles = _graph_counts_of(recipe, n_atoms)
        return 0.005 + c2 * pairs + c3 * angles
    return _seconds_for_count(engine, n_atoms)


def measure_seconds_per_call(calc, atoms: Atoms, repeats: int = 2) -> float:
    """Measured seconds per force call here (after one warm-up call), the fastest of ``repeats``."""
    a = atoms.copy()
    a.calc = calc
    a.get_forces()
    best = np.inf
    for k in range(repeats):
        a.positions[0, 0] += 1e-3
        t0 = time.perf_counter()
        a.get_forces()
        best = min(best, time.perf_counter() - t0)
    return float(best)


def force_calls(workflow: str, settings: dict, n_atoms: int) -> int:
    """Number of force calls of a workflow step (relax: an estimate)."""
    if workflow == "relax":
        return int(min(settings.get("steps", 1000), 50 + n_atoms // 2)) + 1
    if workflow == "phonons":
        return 6 * n_atoms if settings.get("method", "fd") == "fd" else 1
    if workflow == "md":
        return int(settings.get("steps", 0)) + 1
    if workflow == "binding":  # host, per ligand complex + free ligand, per site kind vacancy + ion (≤ 2 kinds)
        per = int(min(settings.get("steps", 300), 50 + n_atoms // 2)) + 1 if settings.get("relax", True) else 1
        return (1 + 2 * len(settings.get("ligands", [])) + 4) * (per + len(settings.get("committee", [])))
    return 0


#: Volume per atom of CsPbI3 (Å³: cubic a = 6.289 Å, 5 atoms), to size an exciton task's box unbuilt.
VOLUME_PER_ATOM_A3 = 6.289**3 / 5


def exciton_seconds(settings: dict, n_atoms: int) -> float:
    """One-core seconds of an ``excitons`` task: its states (the solver's cost model,
    :func:`qdlab.electronic.pseudopotential.engine.states_seconds`) on the box a cube of ``n_atoms``
    perovskite atoms gets; the BSE is small beside them."""
    from qdlab.electronic.pseudopotential.engine import StatesSettings, states_seconds
    from qdlab.electronic.pseudopotential.params import BOHR_A

    s = StatesSettings(**settings.get("states", {}))
    side_B = (n_atoms * VOLUME_PER_ATOM_A3) ** (1 / 3) / BOHR_A + 2 * s.vacuum_B
    return states_seconds(int((side_B / s.spacing_B) ** 3), s)


@dataclass(frozen=True)
class TaskCost:
    """Estimated cost of one task: force calls, seconds per call (s), total seconds (s)."""

    key: str
    force_calls: int
    seconds_per_call: float
    seconds: float
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


def estimate(tasks, *, measure: bool = False, log=None) -> dict[str, TaskCost]:
    """Cost per task key. ``measure`` times one force call per distinct (engine, recipe) here
    instead of using the calibrated model (slow engines are then timed too: careful with CP2K)."""
    from qdlab.campaign.spec import build_recipe
    from qdlab.store.results import canonical_json

    per_model: dict[str, tuple[float, str]] = {}
    calcs: dict[str, object] = {}
    out: dict[str, TaskCost] = {}
    for t in tasks:
        calls = force_calls(t.workflow, t.settings, t.n_atoms)
        if t.workflow == "excitons":
            out[t.key] = TaskCost(t.key, 0, 0.0, exciton_seconds(t.settings, t.n_atoms), "model")
            continue
        if calls == 0:
            out[t.key] = TaskCost(t.key, 0, 0.0, ANALYSIS_SECONDS, "analysis")
            continue
        mkey = canonical_json([t.engine, t.recipe])
        if mkey not in per_model:
            if measure:
                atoms = build_recipe(t.recipe)
                ekey = canonical_json(t.engine)
                if ekey not in calcs:
                    from qdlab.campaign.tasks import calculator

                    calcs[ekey] = calculator(t.engine)
                per_model[mkey] = (measure_seconds_per_call(calcs[ekey], atoms), "measured")
                if log:
                    log(f"measured {t.engine['name']} on {atoms.get_chemical_formula()} ({len(atoms)} atoms): "
                        f"{per_model[mkey][0]:.4f} s per call")
            else:
                per_model[mkey] = (modelled_seconds(t.engine["name"], t.recipe, t.n_atoms), "model")
        spc, src = per_model[mkey]
        if t.workflow == "phonons" and t.settings.get("method") == "analytic":
            spc *= 3.0  # an analytic Hessian costs a few force calls
        out[t.key] = TaskCost(t.key, calls, spc, calls * spc, src)
    return out
