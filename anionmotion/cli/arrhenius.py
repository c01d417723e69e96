"""``anionmotion arrhenius R1.json R2.json … [--at 300]``: Ea, D0 and extrapolation (SPEC §2)."""

from __future__ import annotations

import numpy as np

from ._common import add_output_options, check_outputs, need_matplotlib

__all__ = ["register", "run", "plot"]


def register(sub):
    p = sub.add_parser("arrhenius", help="Arrhenius fit of D over temperatures: Ea ± error, D and σ at 300 K",
                       description="Fit ln D = ln D0 − Ea/(k_B T) over msd results (JSON from 'anionmotion msd "
                                   "--json', each with its temperature) and extrapolate D and σ.")
    p.add_argument("results", nargs="+", metavar="RESULT.json", help="msd JSON files at different temperatures")
    p.add_argument("--at", type=float, default=300.0, metavar="K", help="extrapolation temperature (default 300 K)")
    add_output_options(p, json=True, plot=True)
    p.set_defaults(func=run)
    return p


def plot(path, res, overwrite=False):
    """log10 D against 1000/T with error bars, the fit and the extrapolation."""
    from ..results import check_output
    from ..units import KB_EV

    check_output(path, overwrite)
    plt = need_matplotlib()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    x = 1000.0 / res.temperatures_K
    D = res.D_cm2_s
    err = np.where(np.isfinite(res.D_stderr_cm2_s), res.D_stderr_cm2_s, 0.0)
    lo = np.log10(D) - np.log10(np.clip(D - err, D * 1e-3, None))
    hi = np.log10(D + err) - np.log10(D)
    ax.errorbar(x, np.log10(D), yerr=[lo, hi], fmt="o", color="k", capsize=3, label="MD")
    xs = np.linspace(min(x.min(), 1000.0 / res.at_K), max(x.max(), 1000.0 / res.at_K), 100)
    ax.plot(xs, (np.log(res.D0_cm2_s) - res.Ea_eV * xs / (KB_EV * 1000.0)) / np.log(10), "--", color="C3", label=f"Ea = {res.Ea_eV:.3f} ± {res.Ea_stderr_eV:.3f} eV")
    ax.errorbar([1000.0 / res.at_K], [np.log10(res.D_at_cm2_s)],
                yerr=[[np.log10(res.D_at_cm2_s / res.D_at_range_cm2_s[0])],
                      [np.log10(res.D_at_range_cm2_s[1] / res.D_at_cm2_s)]],
                fmt="s", color="C3", mfc="white", capsize=3, label=f"extrapolated, {res.at_K:g} K")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel("log10 D (cm²/s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def run(args) -> int:
    from ..analysis.arrhenius import arrhenius

    check_outputs(args, args.json, args.plot)
    res = arrhenius(args.results, at=args.at)
    print(res.summary())
    if args.json:
        res.save(args.json, overwrite=args.overwrite)
    if args.plot:
        plot(args.plot, res, overwrite=args.overwrite)
    return 0
