"""PL fitting benchmark (run by hand): 96 wells × 72 reads × 126 wavelengths, qdlab vs an lmfit loop.

Seed 002's plate: 400–650 nm in 2 nm steps, one read every 10 min for 12 h, 96 wells → 6,912
noisy Gaussian spectra on a sloping baseline. qdlab fits all of them at once
(:func:`qdlab.experiment.plfit.fit_gaussians`, Gaussian + linear baseline); the peer is the usual
Python loop over spectra calling lmfit's ``GaussianModel() + LinearModel()`` from the same start.
Prints both times, the ratio (goal ≥ 20×) and the largest differences between the two.

    OMP_NUM_THREADS=1 python benchmarks/bench_plfit.py [--lmfit-spectra N]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from qdlab.experiment.plfit import fit_gaussians, initial_guess  # noqa: E402
from qdlab.experiment.synthetic import synthetic_run  # noqa: E402


def lmfit_loop(x: np.ndarray, y: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """centre, FWHM (nm), height per spectrum with lmfit, one spectrum at a time."""
    from lmfit.models import GaussianModel, LinearModel

    model = GaussianModel() + LinearModel()
    xm = 0.5 * (x[0] + x[-1])
    out = np.empty((len(y), 3))
    for k in range(len(y)):
        h, c, s, b0, b1 = p0[k]
        pars = model.make_params(amplitude=h * s * np.sqrt(2 * np.pi), center=c, sigma=s, slope=b1,
                                 intercept=b0 - b1 * xm)
        r = model.fit(y[k], pars, x=x)
        out[k] = r.params["center"].value, r.params["fwhm"].value, r.params["height"].value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lmfit-spectra", type=int, default=0, help="time lmfit on the first N spectra only (0: all)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    tidy, truth = synthetic_run(96, 72, noise=15.0, baseline=30.0, slope=-0.05, seed=0)
    wide = tidy.pivot_table(index=["well", "read"], columns="wavelength_nm", values="intensity", sort=True)
    x, y = wide.columns.to_numpy(float), wide.to_numpy(float)
    print(f"{y.shape[0]} spectra × {y.shape[1]} wavelengths ({x[0]:g}–{x[-1]:g} nm)")

    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        fits = fit_gaussians(x, y, baseline="linear")
        times.append(time.perf_counter() - t)
    t_q = min(times)
    print(f"qdlab  fit_gaussians (all at once): {t_q:.3f} s  ({1e6 * t_q / len(y):.0f} µs/spectrum), "
          f"converged {fits.converged.mean():.1%}, ok {fits.ok.mean():.1%}, median iterations {np.median(fits.n_iter):.0f}")

    n = args.lmfit_spectra or len(y)
    p0 = initial_guess(x, y, np.ones_like(y), "linear")
    t = time.perf_counter()
    ref = lmfit_loop(x, y[:n], p0[:n])
    t_l = time.perf_counter() - t
    t_l_all = t_l * len(y) / n
    note = "" if n == len(y) else f" (timed on {n}, scaled to {len(y)})"
    print(f"lmfit  loop over spectra:           {t_l_all:.3f} s{note}  ({1e6 * t_l / n:.0f} µs/spectrum)")
    print(f"ratio lmfit/qdlab: {t_l_all / t_q:.1f}x  (goal ≥ 20x)")

    dc = np.abs(fits.center_nm[:n] - ref[:, 0])
    df = np.abs(fits.fwhm_nm[:n] - ref[:, 1])
    dh = np.abs(fits.height[:n] - ref[:, 2]) / ref[:, 2]
    print(f"qdlab vs lmfit: max |Δcentre| {dc.max():.2e} nm, max |ΔFWHM| {df.max():.2e} nm, "
          f"max rel |Δheight| {dh.max():.2e}")
    m = truth.sort_values(["well", "read"]).reset_index(drop=True)
    wells = wide.index.to_frame(index=False)
    assert (wells["well"].to_numpy() == m["well"].to_numpy()).all()
    zc = (fits.center_nm - m.center_nm.to_numpy()) / fits.center_err_nm
    print(f"vs truth: centre pull mean {zc.mean():+.3f}, std {zc.std():.3f} (ideal 0, 1)")


if __name__ == "__main__":
    main()
