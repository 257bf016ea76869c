"""Issue 18, declared protocol `benchmarks/data/issue18_periodic_strain_declared.md`: tight binding with on-site
strain terms fitted on rattles of the periodic Cs8Pb8Br24 cell, validated on the held-out normal modes.

Needs a finished periodic validation run with both training sets (CP2K; see README "Periodic frozen phonons"):

    python benchmarks/bench_tb_vs_dft.py ph222p -o pbc_run --periodic --rattles 20 --sigma 0.05 --seed 1000
    python benchmarks/bench_tb_vs_dft.py ph222p -o pbc_run --periodic --rattles 10 --sigma 0.10 --seed 2000 \\
        --rattles-dir pbc_run/rattles_s010
    python benchmarks/bench_tb_periodic_strain.py ph222p pbc_run

Runs no DFT (every CP2K record is read); prints the fits and the held-out table, writes ``strain_fit.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ase.io import read

from qdlab.store.files import write_text
from qdlab.workflows.gap_fit import fit_on_rattles, held_out_table, rattle_geometries, run_rattles
from qdlab.workflows.gap_validation import GapGeometry, GapValidationSettings, dft_gap_of, plan_validation
from qdlab.workflows.phonons import PhononResult

FITS = {"primary": ["eta", "strain:Pb:s", "strain:Pb:p"], "eta only": ["eta"],
        "with Br p": ["eta", "strain:Pb:s", "strain:Pb:p", "strain:Br:p"]}


def mode_verdict(res) -> tuple[int, list[str]]:
    """Modes whose + and − geometries both pass (sign and 30 %), and their labels."""
    ok: dict[int, list[bool]] = {}
    for r in res.rows:
        ok.setdefault(r.mode, []).append(res.passes(r))
    labels = {r.mode: r.label for r in res.rows}
    good = [labels[m] for m, v in ok.items() if all(v)]
    return len(good), good


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("phonons_dir")
    ap.add_argument("run_dir")
    ap.add_argument("--starts", type=int, default=12)
    args = ap.parse_args()
    d, run = Path(args.phonons_dir), Path(args.run_dir)
    atoms = read(d / "relaxed.extxyz")
    ph = PhononResult.load(d / "phonons.npz")
    settings = GapValidationSettings(periodic=True, cp2k={"eps_scf": 1e-5, "cutoff_ry": 250.0})
    records = json.loads((run / "records.json").read_text())["records"]
    geoms, recs = [], {}
    for n, sigma, seed, sub in ((20, 0.05, 1000, "rattles"), (10, 0.10, 2000, "rattles_s010")):
        g = rattle_geometries(atoms, n, sigma, seed, periodic=True)
        r = run_rattles(g, run / sub, settings, max_new=0)
        missing = [x.name for x in g if x.name not in r]
        if missing:
            raise SystemExit(f"error: {run / sub} lacks {', '.join(missing)}: run the DFT first")
        for x in g:   # names r0… repeat across the two sets: prefix the set
            geoms.append(GapGeometry(f"{sub}/{x.name}", x.label, x.mode, x.sign, x.atoms))
            recs[f"{sub}/{x.name}"] = r[x.name]
    plan, chosen = plan_validation(atoms, ph.frequencies_cm1, ph.modes, ph.masses_amu, settings)
    chars = {c.index: c for c in chosen}
    ref_gap = dft_gap_of(records["ref"]["dft"], settings)
    out = {}
    for label, names in FITS.items():
        fit = fit_on_rattles(atoms, ref_gap, geoms, recs, settings, names, starts=args.starts)
        held = held_out_table(plan, chars, records, settings, fit.params)
        fs, hs = fit.summary(), held.summary()
        n_modes, good = mode_verdict(held)
        t = fs["train"]
        print(f"\n{label}: " + ", ".join(f"{k} = {v:.3f}" for k, v in fs["parameters"].items()))
        print(f"  starts' Σr² (eV²): {', '.join(f'{c:.4f}' for c in fit.start_costs)}")
        print(f"  training ({t['fitted']['n']} frames): rmse {t['initial']['rmse_meV']:.1f} → {t['fitted']['rmse_meV']:.1f} meV, "
              f"R² {t['initial']['r2']:.2f} → {t['fitted']['r2']:.2f}")
        print(f"  held out: sign {hs['n_sign_agree']}/12, within 30 % {hs['n_pass']}/12, modes passing {n_modes}/6 {good}")
        for r in held.rows:
            print(f"    {r.mode:4d} {r.label:14s} {'+' if r.sign > 0 else '−'} DFT {1e3 * r.dft_delta_eV:+7.1f}  "
                  f"TB {1e3 * r.tb_delta_eV:+7.1f}  ratio {r.ratio:5.2f}  {'pass' if held.passes(r) else ''}")
        out[label] = {"fit": fs, "held_out": hs, "modes_passing": good,
                      "training_gaps_meV_spread": float(np.std([dft_gap_of(v["dft"], settings) for v in recs.values()]) * 1e3)}
    write_text(run / "strain_fit.json", json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
