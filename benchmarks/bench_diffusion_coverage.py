"""Bias and coverage of the D estimators on caged-hopping replicas and on real AIMD replicas (docs/diffusion.md §2).

    python benchmarks/bench_diffusion_coverage.py [--seeds 100] [--regimes fast-cage,slow-cage,aimd-like,never-diffusive]
                                                 [--argyrodite DIR] [--no-real] [--peers] [--json out.json]
    python benchmarks/bench_diffusion_coverage.py --merge a.json b.json …   (tables of runs split by regime)

100 seeds per regime: the coverage within 1σ then has a binomial standard error of ±4.7 points (±9.5 with 24
seeds, too coarse for a 68 ± 10 % target).

Synthetic part: for each regime of ``tests/_caged_hopping.py`` (known D = p_out a²/(6Δt)) and each seed, the
MSD is computed by ``anionmotion.msd`` and D is fitted by every estimator (``auto``, ``gls``, ``ols``, ``he``)
with the model's hop length as ``hop_distance``.  Two error models that need more than the MSD are measured on
the same fits as candidates: a bootstrap over atoms (OLS slope of resampled per-atom MSDs on the ``auto``
window, 200 resamples) and block averaging over time (``auto`` D of 4 consecutive blocks, σ = sd/√4).
Reported per regime and estimator: median D/D_true − 1 (all seeds, and the seeds flagged diffusive), the
fraction with |D − D_true| < 1σ and < 2σ, and the fraction flagged diffusive.

Real part: the Li6PS5Cl 0p (runs 1–5) and 100p (runs 1–6) AIMD replicas (bjmorgan/data_argyrodite_disorder,
MIT): scatter / stated σ = √(Σ (D_i − D̄_w)²/σ_i² / (n − 1)) per estimator (1 when the errors match the
run-to-run scatter), with the statistical part of σ (a systematic term for a regime that is not reached is
common to all replicas and invisible in their scatter).  ``auto-cumulant`` is the ``auto`` estimator with the
candidate "cumulant" non-Gaussian error model (``anionmotion.analysis.diffusion.NON_GAUSSIAN``).  Runs on one core
(numpy threads are limited to 1).

Peers (``--peers``): kinisi and pymatgen on the argyrodite runs and on 5 LGPS-like synthetic runs
(``tests/_caged_hopping.lgps_like``: Li10GeP2S12-like cell, 80 Li, 30 ps, hops twice as frequent along c, known D),
on the window of the ``auto`` estimator of each run.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import _caged_hopping as ch

import anionmotion
import anionmotion.analysis.diffusion as _diffusion
from anionmotion.analysis.diffusion import ESTIMATORS, fit_diffusion


def _fit(res, est, **kw):
    """``fit_diffusion`` by estimator name; ``auto-cumulant`` = ``auto`` with the cumulant non-Gaussian error."""
    if est == "auto-cumulant":
        old = _diffusion.NON_GAUSSIAN
        _diffusion.NON_GAUSSIAN = "cumulant"
        try:
            return fit_diffusion(res, estimator="auto", **kw)
        finally:
            _diffusion.NON_GAUSSIAN = old
    return fit_diffusion(res, estimator=est, **kw)


NAMES = tuple(ESTIMATORS) + ("auto-cumulant",)
from anionmotion.kernels.msd import msd_fft

ARGYRODITE = os.path.join(HERE, "..", "..", "shared", "data", "thirdparty", "argyrodite-aimd", "Li6PS5Cl")


def _ols_slope(x, y):
    X = np.column_stack([np.ones_like(x), x])
    return np.linalg.lstsq(X, y, rcond=None)[0][1]


def bootstrap_atoms(pos, lag, window, n_boot=200, seed=0):
    """σ of D (Å²/ps) from resampling atoms: per-atom MSDs, OLS slope on ``window`` (ps)."""
    per_atom = np.stack([msd_fft(pos[:, i:i + 1])[0] for i in range(pos.shape[1])], axis=1)  # (T, N)
    sel = (lag >= window[0] - 1e-9) & (lag <= window[1] + 1e-9) & (lag > 0)
    x = lag[sel]
    rng = np.random.default_rng(seed)
    N = pos.shape[1]
    Ds = [_ols_slope(x, per_atom[sel][:, rng.integers(0, N, N)].mean(axis=1)) / 6.0 for _ in range(n_boot)]
    return float(np.std(Ds, ddof=1))


def block_average(pos, dt, n_blocks=4):
    """σ of D (Å²/ps) from the ``auto`` D of ``n_blocks`` consecutive time blocks: sd / √n_blocks."""
    T = pos.shape[0] // n_blocks
    Ds = []
    box = 1.0e4
    for b in range(n_blocks):
        p = pos[b * T:(b + 1) * T]
        traj = anionmotion.from_arrays(p, np.eye(3) * box, species=["Li"] * p.shape[1], frame_interval=dt)
        Ds.append(fit_diffusion(anionmotion.msd(traj, species="Li", progress=False), warn=False).D_A2_ps)
    return float(np.std(Ds, ddof=1) / math.sqrt(n_blocks))


def synthetic(regimes, n_seeds, candidates=True, candidate_seeds=None):
    """Fits of every estimator (and, on the first ``candidate_seeds`` seeds, the candidate error models)."""
    rows = []
    n_cand = n_seeds if candidate_seeds is None else min(n_seeds, candidate_seeds)
    for name in regimes:
        p = ch.REGIMES[name]
        D_true = ch.true_D(**p)
        t0 = time.perf_counter()
        for seed in range(n_seeds):
            pos = ch.positions(seed, **p)
            traj = anionmotion.from_arrays(pos, np.eye(3) * 1.0e4, species=["Li"] * pos.shape[1], frame_interval=0.1)
            res = anionmotion.msd(traj, species="Li", progress=False)
            for est in NAMES:
                if est == "auto-cumulant" and (not candidates or seed >= n_cand):
                    continue
                f = _fit(res, est, hop_distance=p["a"], warn=False)
                rows.append({"regime": name, "seed": seed, "estimator": est, "D": f.D_A2_ps, "sigma": f.D_stderr_A2_ps,
                             "D_true": D_true, "reached": f.diffusive_regime_reached,
                             "window": list(f.fit_window_ps)})
                if est == "auto" and candidates and seed < n_cand:
                    rows.append(dict(rows[-1], estimator="bootstrap-atoms",
                                     sigma=bootstrap_atoms(pos, res.lag, f.fit_window_ps, seed=seed)))
                    rows.append(dict(rows[-2], estimator="block-average", sigma=block_average(pos, 0.1)))
        print(f"# {name}: {n_seeds} seeds in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return rows


def summarise(rows):
    out = []
    keys = sorted({(r["regime"], r["estimator"]) for r in rows}, key=lambda k: (list(ch.REGIMES).index(k[0]), k[1]))
    for reg, est in keys:
        rr = [r for r in rows if r["regime"] == reg and r["estimator"] == est]
        ratio = np.array([r["D"] / r["D_true"] for r in rr])
        z = np.array([abs(r["D"] - r["D_true"]) / r["sigma"] if r["sigma"] > 0 else np.inf for r in rr])
        reached = np.array([bool(r["reached"]) for r in rr])
        out.append({"regime": reg, "estimator": est, "n": len(rr),
                    "median_bias": float(np.median(ratio) - 1),
                    "median_bias_reached": float(np.median(ratio[reached]) - 1) if reached.any() else None,
                    "within_1sigma": float(np.mean(z < 1)), "within_2sigma": float(np.mean(z < 2)),
                    "median_rel_sigma": float(np.median([r["sigma"] / r["D"] for r in rr if r["D"] > 0])),
                    "reached": float(reached.mean())})
    return out


def real(base):
    out = []
    runs = {}
    for kind in ("0p", "100p"):
        for run in sorted(glob.glob(os.path.join(base, kind, "run*"))):
            traj = anionmotion.open(os.path.join(run, "actual_XDATCAR.gz"), frame_interval=0.1, progress=False)
            runs[(kind, os.path.basename(run))] = anionmotion.msd(traj, species="Li", temperature=500, progress=False)
    for est in NAMES:
        for kind in ("0p", "100p"):
            fits = [_fit(r, est, warn=False) for (k, _), r in sorted(runs.items()) if k == kind]
            if len(fits) < 2:
                continue
            D = np.array([f.D_cm2_s for f in fits])
            S = np.array([f.D_stat_stderr_A2_ps * 1e-4 for f in fits])  # statistical part (what scatter measures)
            w = 1 / S ** 2
            mean = float((w * D).sum() / w.sum())
            ratio = float(math.sqrt(((D - mean) ** 2 / S ** 2).sum() / (len(D) - 1)))
            out.append({"system": f"Li6PS5Cl {kind}", "estimator": est, "n_runs": len(D), "D_cm2_s": D.tolist(),
                        "sigma_cm2_s": S.tolist(), "sigma_total_cm2_s": [f.D_stderr_cm2_s for f in fits],
                        "weighted_mean_cm2_s": mean, "scatter_over_sigma": ratio,
                        "sd_over_mean_sigma": float(np.std(D, ddof=1) / S.mean()),
                        "reached": [f.diffusive_regime_reached for f in fits],
                        "windows_ps": [list(f.fit_window_ps) for f in fits]})
    return out


def peer_row(name, path, temperature, D_true=None, dt_ps=0.1, window=None):
    """anionmotion (every estimator), kinisi and pymatgen on one XDATCAR, on the window of ``auto`` (or ``window``).

    kinisi 2.1: ``DiffusionAnalyzer.from_ase`` (2 fs steps, ``dt_ps`` per frame, lags up to the window end) and
    ``diffusion(start)``: its own MSD and data-estimated covariance, MCMC mean ± s.d. (emcee draws from numpy's
    global generator, seeded here).  pymatgen-analysis-diffusion: ``get_diffusivity_from_msd(smoothed="max")``
    applied to anionmotion's MSD on the window.
    """
    import scipp as sc
    from ase.io import read
    from kinisi.analyze import DiffusionAnalyzer
    from pymatgen.analysis.diffusion.analyzer import get_diffusivity_from_msd

    res = anionmotion.msd(anionmotion.open(path, frame_interval=dt_ps, progress=False), species="Li",
                          temperature=temperature, progress=False)
    f = fit_diffusion(res, fit=window, warn=False)
    t0, t1 = f.fit_window_ps
    row = {"run": name, "window_ps": [t0, t1], "reached": f.diffusive_regime_reached, "D_true": D_true}
    for est in ESTIMATORS:
        # auto: the default fit itself (its total error includes the slope's fall over the searched starts when
        # the regime is not reached); the others on its window
        g = f if est == "auto" else fit_diffusion(res, fit=(t0, t1), estimator=est, warn=False)
        row[est] = [g.D_cm2_s, g.D_stderr_cm2_s, g.D_stat_stderr_A2_ps * 1e-4]
    # kinisi maps each interval to frames with (dt / (time_step · step_skip)).astype(int): in ps, k · 0.1 / 0.1
    # can truncate to k − 1 frames (4.3 / 0.1 = 42.99…) and the MSD point then sits one frame early; in fs every
    # number is an integer and exact
    skip = int(round(dt_ps / 0.002))
    dt = sc.arange("time interval", 1, int(round(t1 / dt_ps)) + 1) * sc.scalar(2.0 * skip, unit="fs")
    da = DiffusionAnalyzer.from_ase(read(path, index=":", format="vasp-xdatcar"), specie="Li",
                                    time_step=sc.scalar(2.0, unit="fs"), step_skip=sc.scalar(skip), dt=dt,
                                    progress=False)
    np.random.seed(0)
    da.diffusion(sc.scalar(t0, unit="ps"), progress=False, random_state=np.random.RandomState(0))
    samples = np.asarray(da.D.to(unit="cm^2/s").values).ravel()
    row["kinisi"] = [float(samples.mean()), float(samples.std())]
    km = np.asarray(da.msd.values)
    m0 = int(round(t0 / dt_ps))
    row["kinisi_msd_max_rel_diff"] = float(np.max(np.abs(km[m0 - 1:] / res.msd[m0:len(km) + 1] - 1)))
    sel = (res.lag >= t0 - 1e-9) & (res.lag <= t1 + 1e-9)
    row["pymatgen"] = float(get_diffusivity_from_msd(res.msd[sel], res.lag[sel] * 1000.0, smoothed="max")[0])
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def pymatgen_lgps(path):
    """Rows for pymatgen-analysis-diffusion's LGPS test fixture (``DiffusionAnalyzer.json``, Li20Ge2P4S24, 600 K,
    1000 frames 20 fs apart): written as XDATCAR from its structure + raw displacements, fitted on the ``auto``
    window and on pymatgen's own window (1–13.3 ps); ``pymatgen_own`` is the D that pymatgen's test asserts."""
    import tempfile

    from ase import Atoms
    from ase.io import write
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer

    dd = json.load(open(path))
    d = DiffusionAnalyzer.from_dict(dd)
    st = d.structure
    pos = st.cart_coords[None, :, :] + np.asarray(dd["displacements"]).transpose(1, 0, 2)
    dt_ps = d.time_step * d.step_skip / 1000.0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        xd = os.path.join(tmp, "XDATCAR")
        frames = []
        for p in pos:
            at = Atoms(symbols=[s.specie.symbol for s in st], positions=p, cell=st.lattice.matrix, pbc=True)
            at.wrap()
            frames.append(at)
        write(xd, frames, format="vasp-xdatcar")
        for label, window in (("auto window", None), ("pymatgen's window", (d.dt[0] / 1000.0, d.dt[-1] / 1000.0))):
            row = peer_row(f"LGPS fixture ({label})", xd, d.temperature, dt_ps=dt_ps, window=window)
            row["pymatgen_own"] = float(d.diffusivity)
            rows.append(row)
    return rows


def peers(base, n_lgps=5):
    """kinisi and pymatgen on every argyrodite run and on ``n_lgps`` LGPS-like runs (docs "Agreement" table)."""
    import tempfile

    rows = []
    for kind in ("0p", "100p"):
        for run in sorted(glob.glob(os.path.join(base, kind, "run*"))):
            rows.append(peer_row(f"{kind}/{os.path.basename(run)}", os.path.join(run, "actual_XDATCAR.gz"), 500))
    D_true = ch.true_D(**ch.LGPS_LIKE) * 1e-4
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(n_lgps):
            path = os.path.join(tmp, f"XDATCAR_{seed}")
            ch.lgps_like(seed, path)
            rows.append(peer_row(f"LGPS-like/{seed}", path, 600, D_true=D_true))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--regimes", default=",".join(ch.REGIMES), help="comma-separated, or 'none'")
    ap.add_argument("--argyrodite", default=ARGYRODITE)
    ap.add_argument("--no-real", action="store_true", help="skip the argyrodite replicas")
    ap.add_argument("--no-candidates", action="store_true",
                    help="skip the candidate error models (auto-cumulant, bootstrap over atoms, block averaging)")
    ap.add_argument("--candidate-seeds", type=int, help="candidates on the first N seeds only (default: all)")
    ap.add_argument("--peers", action="store_true", help="also kinisi and pymatgen on the argyrodite and LGPS-like runs")
    ap.add_argument("--pymatgen-lgps", metavar="DiffusionAnalyzer.json",
                    help="with --peers: also pymatgen-analysis-diffusion's LGPS test fixture (its tests/ folder)")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="only print the tables of earlier --json outputs")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.merge:
        parts = [json.load(open(p)) for p in args.merge]
        order = list(ch.REGIMES)
        syn = sorted([s for p in parts for s in p["synthetic"]],
                     key=lambda s: (order.index(s["regime"]), s["estimator"]))
        tables(syn, [r for p in parts for r in p["real"]], [r for p in parts for r in p["peers"]])
        return
    regimes = [] if args.regimes == "none" else args.regimes.split(",")
    syn = (summarise(synthetic(regimes, args.seeds, candidates=not args.no_candidates,
                               candidate_seeds=args.candidate_seeds)) if regimes else [])
    rl = real(args.argyrodite) if os.path.isdir(args.argyrodite) and not args.no_real else []
    pr = peers(args.argyrodite) if args.peers else []  # (no argyrodite folder: the LGPS-like runs only)
    if args.peers and args.pymatgen_lgps:
        pr += pymatgen_lgps(args.pymatgen_lgps)
    tables(syn, rl, pr)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"synthetic": syn, "real": rl, "peers": pr}, fh, indent=1)


def tables(syn, rl, pr):
    """Print the docs tables (markdown)."""
    if syn:
        print("| regime | estimator | seeds | median bias | median bias (flagged diffusive) | within 1σ | within 2σ "
              "| median σ/D | flagged diffusive |")
        print("|---|---|---|---|---|---|---|---|---|")
    for s in syn:
        mbr = "–" if s["median_bias_reached"] is None else f"{100 * s['median_bias_reached']:+.1f} %"
        print(f"| {s['regime']} | {s['estimator']} | {s['n']} | {100 * s['median_bias']:+.1f} % | {mbr} | "
              f"{100 * s['within_1sigma']:.0f} % | {100 * s['within_2sigma']:.0f} % | "
              f"{100 * s['median_rel_sigma']:.0f} % | {100 * s['reached']:.0f} % |")
    if rl:
        print()
        print("| system | estimator | runs | D (1e-5 cm²/s) | σ (1e-5 cm²/s) | scatter/σ | diffusive |")
        print("|---|---|---|---|---|---|---|")
        for r in rl:
            print(f"| {r['system']} | {r['estimator']} | {r['n_runs']} | "
                  f"{', '.join(f'{d * 1e5:.2f}' for d in r['D_cm2_s'])} | "
                  f"{', '.join(f'{s * 1e5:.2f}' for s in r['sigma_cm2_s'])} | {r['scatter_over_sigma']:.2f} | "
                  f"{sum(bool(x) for x in r['reached'])}/{r['n_runs']} |")
    if pr:
        print()
        print("| run | window (ps) | diffusive | true D | auto | gls | ols | he | kinisi | pymatgen | kinisi − auto (σ) "
              "| kinisi MSD vs ours |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in pr:
            a = r["auto"]
            cells = [f"{a[0] * 1e5:.2f} ± {a[1] * 1e5:.2f}" + ("" if r["reached"] else f" (stat. {a[2] * 1e5:.2f})")]
            cells += [f"{r[e][0] * 1e5:.2f} ± {r[e][1] * 1e5:.2f}" for e in ESTIMATORS if e != "auto"]
            k = r["kinisi"]
            z = (k[0] - a[0]) / math.sqrt(a[2] ** 2 + k[1] ** 2)
            true = ("–" if r.get("D_true") is None else f"{r['D_true'] * 1e5:.2f}") + (
                f" (pymatgen's test: {r['pymatgen_own'] * 1e5:.3f})" if r.get("pymatgen_own") else "")
            print(f"| {r['run']} | {r['window_ps'][0]:.2f}–{r['window_ps'][1]:.2f} | {'yes' if r['reached'] else 'no'} "
                  f"| {true} | " + " | ".join(cells) + f" | {k[0] * 1e5:.2f} ± {k[1] * 1e5:.2f} | "
                  f"{r['pymatgen'] * 1e5:.2f} | {z:+.1f} | {100 * r['kinisi_msd_max_rel_diff']:.1f} % |")


if __name__ == "__main__":
    main()
