"""``anionmotion reorient TRAJ --center P --ligand S``: polyanion reorientation (SPEC §4)."""

from __future__ import annotations

import numpy as np

from ._common import (add_memory_option, add_output_options, add_polyanion_options, add_reader_options,
                      check_outputs, need_matplotlib, open_from_args, progress_of)

__all__ = ["register", "run", "plot_reorientation", "plot_rho", "rho_csv"]


def register(sub):
    p = sub.add_parser("reorient", help="polyanion reorientation: C1/C2, relaxation times, rotation events, ρ(θ,φ)",
                       description="Reorientation of polyanions (SPEC §4): exact all-origin C1(t), C2(t), relaxation "
                                   "times, the 'rotating' flag (C1 < 0.9 at the longest reliable lag), rotation "
                                   "events and frequency, angle projections, ρ(θ, φ), framework descriptors.")
    p.add_argument("traj", help="trajectory file")
    add_polyanion_options(p)
    p.add_argument("--threshold", type=float, default=70.0, metavar="DEG",
                   help="rotation-event threshold angle (degrees; default 70, paper 000)")
    p.add_argument("--symmetry", action="store_true",
                   help="headline rotation events = symmetry-aware jumps between equivalent orientations")
    p.add_argument("--site-tolerance", type=float, default=30.0, metavar="DEG",
                   help="symmetry-aware events: ligand-to-site tolerance (degrees; default 30)")
    p.add_argument("--reliable-fraction", type=float, default=0.5,
                   help="longest reliable lag as a fraction of the span (default 0.5)")
    p.add_argument("--cation", help="also compute the jump frequency of this cation (anionmotion hops) to compare")
    p.add_argument("--hop-a", type=float, metavar="Å", help="hop distance a for --cation (default: see hops)")
    p.add_argument("--hop-residence", type=float, default=3.0, metavar="PS", help="Δt for --cation (ps; default 3)")
    p.add_argument("--hop-window", type=float, default=9.0, metavar="PS", help="t_a for --cation (ps; default 9)")
    p.add_argument("--rho", metavar="FILE", help="write the ρ(θ, φ) map as a picture (PNG/PDF/SVG)")
    p.add_argument("--rho-csv", metavar="FILE", help="write ρ(θ, φ) (all anions) as CSV")
    p.add_argument("--rho-anion", type=int, metavar="K",
                   help="--rho/--rho-csv for polyanion K only (index in the identification order) instead of all")
    p.add_argument("--series", action="store_true",
                   help="include the angle projections in the JSON (every frame up to 20,000 frames, else a "
                        "strided preview; see --angles-csv)")
    p.add_argument("--angles-csv", metavar="FILE",
                   help="write the angle projections θa, θb, θc of every anion at every frame as CSV (streamed to "
                        "disk chunk by chunk)")
    add_memory_option(p)
    add_reader_options(p)
    add_output_options(p, json=True, plot=True)
    p.set_defaults(func=run)
    return p


def _rho_of(res, anion):
    if anion is None:
        return res.rho, f"{res.n_anions} × {res.species}"
    if not 0 <= anion < res.n_anions:
        from ..errors import OptionError

        raise OptionError(f"--rho-anion {anion} out of range: there are {res.n_anions} polyanions (0..{res.n_anions - 1})")
    return res.rho_per_anion[anion], f"{res.species} #{anion}"


def rho_csv(res, anion=None) -> str:
    """ρ(θ, φ) as CSV: theta_lo, theta_hi, phi_lo, phi_hi (degrees), rho (sr⁻¹); all anions or anion K."""
    rho, what = _rho_of(res, anion)
    te, pe = res.rho_theta_edges, res.rho_phi_edges
    lines = [f"# rho(theta, phi) of the ligand bond directions of {what}, sr^-1; theta from z, phi from y (degrees)",
             "theta_lo_deg,theta_hi_deg,phi_lo_deg,phi_hi_deg,rho_per_sr"]
    for i in range(len(te) - 1):
        for j in range(len(pe) - 1):
            lines.append(f"{te[i]:.4f},{te[i + 1]:.4f},{pe[j]:.4f},{pe[j + 1]:.4f},{rho[i, j]:.8g}")
    return "\n".join(lines) + "\n"


def plot_rho(res, path, overwrite=False, anion=None):
    """Picture of ρ(θ, φ) (all anions, or anion K)."""
    from ..results import check_output

    rho, what = _rho_of(res, anion)
    check_output(path, overwrite)
    plt = need_matplotlib()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    m = ax.pcolormesh(res.rho_phi_edges, res.rho_theta_edges, rho, shading="flat", cmap="viridis")
    ax.set_xlabel("φ (deg, from y)")
    ax.set_ylabel("θ (deg, from z)")
    ax.invert_yaxis()
    ax.set_title(f"ρ(θ, φ) of the bond directions of {what}")
    fig.colorbar(m, ax=ax, label="ρ (sr⁻¹)")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_reorientation(res, path, overwrite=False):
    """Four panels: C1/C2, angle projections of anion 0, rotation events per anion, ρ(θ, φ)."""
    from ..results import check_output

    check_output(path, overwrite)
    plt = need_matplotlib()
    fig, ax = plt.subplots(2, 2, figsize=(10, 7.5))
    a = ax[0, 0]
    a.plot(res.lag_ps, res.C1, label="C1")
    a.plot(res.lag_ps, res.C2, label="C2")
    a.axhline(0.9, color="grey", ls="--", lw=0.8, label="0.9 (paper 003)")
    a.axvline(res.reliable_lag_ps, color="k", ls=":", lw=0.8, label="longest reliable lag")
    a.set_xlabel("lag (ps)")
    a.set_ylabel("C(t)")
    a.set_title(f"{res.n_anions} × {res.species}: rotating = {res.rotating}")
    a.legend(fontsize=8)
    a = ax[0, 1]
    for k, lab in enumerate("abc"):
        a.plot(res.times_ps, res.angles_deg[:, 0, k], lw=0.8, label=f"θ{lab}")   # (strided) preview
    ev = res.events[res.meta["event_method"]]
    for t in ev["time_ps"][ev["anion"] == 0]:
        a.axvline(t, color="r", lw=0.6, alpha=0.6)
    a.set_xlabel("time (ps)")
    a.set_ylabel("angle to cell vector (deg)")
    a.set_title("angle projections, anion 0 (red: rotation events)")
    a.legend(fontsize=8)
    a = ax[1, 0]
    a.bar(np.arange(res.n_anions), ev["per_anion"], color="C2")
    a.set_xlabel("anion")
    a.set_ylabel("rotation events")
    a.set_title(f"{res.rotation_frequency_per_ns:.3g} events per anion per ns ({res.meta['event_method']})")
    a = ax[1, 1]
    m = a.pcolormesh(res.rho_phi_edges, res.rho_theta_edges, res.rho, shading="flat", cmap="viridis")
    a.invert_yaxis()
    a.set_xlabel("φ (deg)")
    a.set_ylabel("θ (deg)")
    a.set_title("ρ(θ, φ) (sr⁻¹)")
    fig.colorbar(m, ax=a)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(args) -> int:
    from ..analysis.reorientation import reorientation
    from ..results import write_json, write_text_atomic

    check_outputs(args, args.json, args.plot, args.rho, args.rho_csv, args.angles_csv)
    with open_from_args(args) as traj:
        res = reorientation(traj, center=args.center, ligand=args.ligand, cutoff=args.cutoff, cluster=args.cluster,
                            threshold=args.threshold, event_method="symmetry" if args.symmetry else "threshold",
                            site_tolerance=args.site_tolerance, reliable_fraction=args.reliable_fraction,
                            start=args.start, stop=args.stop, step=args.step, memory=args.memory,
                            angles_csv=args.angles_csv, overwrite=args.overwrite, progress=progress_of(args))
        cation = None
        if args.cation:
            from ..analysis.hops import hops

            h = hops(traj, species=args.cation, a=args.hop_a, residence=args.hop_residence, window=args.hop_window,
                     start=args.start, stop=args.stop, step=args.step, progress=progress_of(args))
            cation = {"species": args.cation, "jump_frequency_per_ns": h.jump_frequency_per_ns,
                      "n_hops": h.n_events, "a_A": h.a_A, "residence_ps": h.residence_ps, "window_ps": h.window_ps}
    print(res.summary())
    if cation:
        print(f"{args.cation} jumps         {cation['n_hops']} ({cation['jump_frequency_per_ns']:.4g} per cation "
              f"per ns, a = {cation['a_A']:.3f} Å)")
    if args.json:
        # the JSON dict (lists of every lag and event) only when asked for: it grows with the trajectory
        d = res.to_dict(include_series=args.series)
        if cation:
            d["cation"] = cation
            d["cation_jump_frequency_per_ns"] = cation["jump_frequency_per_ns"]
        write_json(args.json, d, overwrite=args.overwrite)
        del d
    if args.rho_csv:
        write_text_atomic(args.rho_csv, rho_csv(res, args.rho_anion), overwrite=args.overwrite)
    if args.rho:
        plot_rho(res, args.rho, overwrite=args.overwrite, anion=args.rho_anion)
    if args.plot:
        plot_reorientation(res, args.plot, overwrite=args.overwrite)
    return 0
