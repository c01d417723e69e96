"""``anionmotion vdos TRAJ``: VACF and vibrational density of states per species (SPEC §6)."""

from __future__ import annotations

from ._common import (add_frame_options, add_memory_option, add_output_options, add_reader_options, check_outputs,
                      need_matplotlib, open_from_args, progress_of, write_outputs)

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("vdos", help="velocity autocorrelation and vibrational density of states",
                       description="All-origin VACF by FFT and the mass-weighted VDOS per species and total "
                                   "(normalised to 3N), with band centres (SPEC §6).")
    p.add_argument("traj", help="trajectory file")
    p.add_argument("--species", nargs="+", help="species to analyse (default: all)")
    p.add_argument("--max-freq", type=float, help="highest frequency reported and band-centre limit, THz "
                                                  "(default: Nyquist)")
    p.add_argument("--window", default="hann", help="lag window: hann (default), hamming, blackman, none")
    p.add_argument("--max-lag", type=float, help="longest correlation time kept, ps (default: whole run/segment)")
    p.add_argument("--velocities", default="auto", choices=("auto", "file", "positions"),
                   help="velocity source (auto: the file's, else central differences of positions)")
    p.add_argument("--origins", default="all", choices=("all", "first"),
                   help="all time origins (default) or a single origin at the first frame (as LAMMPS compute vacf)")
    add_memory_option(p)
    p.add_argument("--scratch-dir", help="directory of the velocity scratch file used when the velocities do not "
                                         "fit half of --memory (default: system temp); the VACF stays exact")
    p.add_argument("--segment-frames", type=int, help="block-average over segments of this many frames instead of "
                                                      "one all-origin VACF over the whole run")
    add_frame_options(p)
    add_reader_options(p)
    add_output_options(p, json=True, csv=True, plot=True)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..analysis.vdos import vdos

    check_outputs(args, args.json, args.csv, args.plot)
    with open_from_args(args) as traj:
        res = vdos(traj, species=args.species, window=args.window, max_freq=args.max_freq, max_lag=args.max_lag,
                   velocities=args.velocities, origins=args.origins, memory=args.memory,
                   segment_frames=args.segment_frames, scratch_dir=args.scratch_dir, start=args.start,
                   stop=args.stop, step=args.step, progress=progress_of(args))
    print(res.summary())
    write_outputs(args, json_data=res.to_dict(), csv_text=res.to_csv() if args.csv else None)
    if args.plot:
        plot(res, args.plot)
    return 0


def plot(res, path):
    """Figure: g(ν) per species and total (left), VACF (right)."""
    plt = need_matplotlib()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for s, g in res.vdos.items():
        ax1.plot(res.freq_THz, g, label=f"{s} (ν̄ = {res.band_center_THz[s]:.2f} THz)",
                 lw=1.6 if s == "total" else 1.0, color="k" if s == "total" else None)
    ax1.set_xlabel("ν (THz)")
    ax1.set_ylabel("g(ν) (1/THz)")
    ax1.legend(fontsize=8)
    for s, c in res.vacf.items():
        if s != "total":
            ax2.plot(res.lag_ps, c / c[0] if c[0] else c, label=s)
    ax2.set_xlabel("t (ps)")
    ax2.set_ylabel("VACF / VACF(0)")
    ax2.set_xlim(0, min(res.lag_ps[-1], 2.0) if len(res.lag_ps) > 1 else 1)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
