"""Four-mode constrained-MD series on the α-Li2SO4-like demonstration model, and its analysis (docs/md.md).

Step 1 (run, ≈ 110 ps of MD; in the background with one thread):

    anionmotion md --system li2so4 --cells 3 --mode all --temperature 1000 --equilibrate 10 \
        --reequilibrate 5 --time 20 --frame-every 10 --seed 1 --threads 1 \
        --out benchmarks/_work/series/li2so4_1000K.nc

Step 2 (this script): Li MSD (``anionmotion.msd``) and D (``anionmotion.fit_diffusion``: GLS with the
MSD covariance, He et al. error), Nernst–Einstein σ, anion rotation and COM MSD, the mode
decomposition (SPEC §8) with errors propagated by Monte Carlo over the D uncertainties, and the
O-projected VDOS weight per band (``anionmotion.vdos``).

    python benchmarks/md_series.py benchmarks/_work/series/li2so4_1000K.nc
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import anionmotion  # noqa: E402
from anionmotion.md.modes import MODES  # noqa: E402
from anionmotion.md.run import output_paths, report_path  # noqa: E402


FIT_WINDOW = (5.0, 15.0)
"""ps: [0.25, 0.75] of the 20 ps production — past the vibrational plateau, before the noisy tail."""


def anion_com_msd(traj, lags_ps):
    """Windowed MSD (Å²) of the anion centres of mass at the given lags (numpy, all origins)."""
    import netCDF4

    with netCDF4.Dataset(traj.path) as ds:
        aidx = np.asarray(ds["anion_index"][:])
    ch = traj.read()
    m = traj.masses
    groups = [np.flatnonzero(aidx == g) for g in range(aidx.max() + 1)]
    com = np.stack([(ch.positions[:, g] * m[g][None, :, None]).sum(1) / m[g].sum() for g in groups], axis=1)
    dt = traj.dt
    out = []
    for lag in lags_ps:
        k = int(round(lag / dt))
        d = com[k:] - com[:-k]
        out.append(float(np.mean(np.sum(d * d, axis=2))))
    return out


def main(base):
    paths = output_paths(base, list(MODES))
    rows = {}
    for mode, p in paths.items():
        traj = anionmotion.open(p)
        assert traj.metadata["constraint_mode"] == mode
        T = float(traj.metadata["temperature_K"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = anionmotion.msd(traj, species="Li", temperature=T)
            D = anionmotion.fit_diffusion(res, temperature=T, warn=False, fit=FIT_WINDOW)
        rep = json.load(open(report_path(p)))
        i10 = int(np.searchsorted(res.lag, 10.0))
        rows[mode] = dict(
            li_msd=dict(zip((1, 2, 5, 10, 15), map(float, res.msd[np.searchsorted(res.lag, [1, 2, 5, 10, 15])]))),
            li_msd_10ps=float(res.msd[i10]), D=D.D_A2_ps, D_se=D.D_stderr_A2_ps, below=bool(D.below_threshold),
            he=D.he_relative_error, window=D.fit_window_ps, slope=D.loglog_slope,
            sigma_mScm=(D.conductivity.sigma_S_cm * 1e3 if D.conductivity is not None else float("nan")),
            sigma_se_mScm=(D.conductivity.sigma_stderr_S_cm * 1e3 if D.conductivity is not None else float("nan")),
            rot_mean=rep["rotation_deg"]["mean"], rot_max=rep["rotation_deg"]["max"],
            com_rms=rep["com_displacement_A"]["rms"], anion_msd_10ps=anion_com_msd(traj, [10.0])[0],
            bond_fluct=rep["bond_A"]["fluctuation"], angle_fluct=rep["angle_deg"]["fluctuation"],
            T=rep["temperature_K"]["mean"], T_std=rep["temperature_K"]["std"], ns_day=rep.get("ns_per_day"),
            n_frames=traj.n_frames, length_ps=float(traj.times[-1] - traj.times[0]))
    uc = rows["UC"]
    print("| mode | T (K) | anion rotation mean / max (°) | anion COM RMS from ref. (Å) "
          "| anion COM MSD 10 ps (Å², ratio UC) | S–O fluct. (Å) | Li MSD 10 ps (Å²) | D_Li (Å²/ps) "
          "| σ_Li NE (mS/cm) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m, r in rows.items():
        ratio = r["anion_msd_10ps"] / uc["anion_msd_10ps"] if uc["anion_msd_10ps"] > 0 else float("nan")
        dtxt = f"< {r['D']:.1e} (bound)" if r["below"] else f"{r['D']:.4f} ± {r['D_se']:.4f}"
        print(f"| {m} | {r['T']:.0f} ± {r['T_std']:.0f} | {r['rot_mean']:.1f} / {r['rot_max']:.1f} | "
              f"{r['com_rms']:.3f} | "
              f"{r['anion_msd_10ps']:.3f} ({ratio:.3f}) | {r['bond_fluct']:.4f} | {r['li_msd_10ps']:.2f} | {dtxt} | "
              f"{r['sigma_mScm']:.1f} ± {r['sigma_se_mScm']:.1f} |")
    windows = [f"{m} {r['window'][0]:.1f}–{r['window'][1]:.1f} (log-log slope {r['slope']:.2f})"
               for m, r in rows.items()]
    print("\nfit windows (ps): " + ", ".join(windows))

    # mode decomposition from D (σ ∝ D at fixed N, V, T), errors by Monte Carlo over D ± SE
    from anionmotion.report.compare import mode_decomposition

    # a mode whose Li MSD is a plateau in the fit window (log-log slope < 0.3) or whose D is not 2 SE above zero
    # gives no D, only an upper bound D + 2 SE (σ likewise)
    for r in rows.values():
        r["upper_bound"] = bool(r["below"] or r["slope"] < 0.3 or r["D"] - 2 * r["D_se"] <= 0)
    sigma = {m: ({"value": r["sigma_mScm"] + 2 * r["sigma_se_mScm"], "upper_bound": True} if r["upper_bound"]
                 else r["sigma_mScm"]) for m, r in rows.items()}
    for m, r in rows.items():
        print(f"Li MSD {m}: " + ", ".join(f"{k} ps {v:.2f} Å²" for k, v in r["li_msd"].items())
              + (f"; σ < {sigma[m]['value']:.1f} mS/cm (D + 2 SE)" if r["upper_bound"] else ""))
    print("\nLi MSD at 10 ps relative to UC: " + ", ".join(f"{m} {r['li_msd_10ps'] / uc['li_msd_10ps']:.3f}"
                                                       for m, r in rows.items()))
    print("upper bounds (not diffusive in the window): " + (", ".join(m for m, r in rows.items() if r["upper_bound"])
                                                             or "none"))
    dec = mode_decomposition(sigma)
    rng = np.random.default_rng(0)
    n = 20000
    samples = {m: np.abs(rng.normal(r["D"], r["D_se"], n)) for m, r in rows.items()}
    lg = {m: np.log10(np.maximum(v, 1e-12)) for m, v in samples.items()}
    deltas = {"rot": lg["UC"] - lg["RC"], "trans": lg["RC"] - lg["RTC"], "vib": lg["RTC"] - lg["RTVC"]}
    tot = deltas["rot"] + deltas["trans"] + deltas["vib"]
    print("\n| step | Δ = log10 σ_before − log10 σ_after | r = Δ / ΣΔ | kind |")
    print("|---|---|---|---|")
    for k in ("rot", "trans", "vib"):
        d = dec["delta"][k]
        r = dec["r"][k]
        rr = deltas[k] / tot
        dv = "—" if d["value"] is None else f"{d['value']:.3f} ± {np.std(deltas[k]):.3f}"
        rv = "—" if r["value"] is None else f"{r['value']:.2f} ± {np.std(rr):.2f}"
        print(f"| {k} ({d['from']}→{d['to']}) | {dv} | {rv} | Δ {d['kind']}, r {r['kind']} |")
    t = dec["total"]
    tv = "—" if t["value"] is None else f"{t['value']:.3f} ± {np.std(tot):.3f}"
    print(f"| total | {tv} | 1 | {t['kind']} |")
    for note in dec.get("notes", []):
        print("note:", note)
    # where the removed rigid-body motion goes: O-projected VDOS weight per band
    bands = [(0, 300), (300, 480), (480, 580), (580, 900), (900, 1500)]
    print("\n| mode | " + " | ".join(f"{lo}–{hi} cm⁻¹" for lo, hi in bands) + " |")
    print("|---|" + "---|" * len(bands))
    for mode, p in paths.items():
        if mode == "RTVC":
            continue  # anions frozen: no O spectrum
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = anionmotion.vdos(anionmotion.open(p), species=["O"], max_lag=2.0, progress=False)
        f, g = np.asarray(v.freq_THz), np.asarray(v.vdos["O"])
        cm = np.asarray(v.freq_cm1)
        tot = np.trapezoid(g, f)
        fr = [np.trapezoid(g[(cm >= lo) & (cm < hi)], f[(cm >= lo) & (cm < hi)]) / tot for lo, hi in bands]
        rows[mode]["o_vdos_band_fractions"] = dict(zip([f"{lo}-{hi}" for lo, hi in bands], map(float, fr)))
        print(f"| {mode} | " + " | ".join(f"{x:.3f}" for x in fr) + " |")
    out = os.path.splitext(base)[0] + "_analysis.json"
    with open(out, "w") as fh:
        json.dump({"rows": rows, "decomposition": dec}, fh, indent=1, default=float)
    print("\nwritten", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "_work", "series", "li2so4_1000K.nc"))
