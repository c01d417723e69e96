"""``anionmotion sites TRAJ --species Li``: site occupancies, residence times, transitions and jumps (docs/sites.md)."""

from __future__ import annotations

from ._common import (add_frame_options, add_memory_option, add_output_options, add_reader_options, check_outputs,
                      open_from_args, progress_of, finish_result)

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("sites", help="crystallographic sites: occupancy, residence times, transition rates, jumps",
                       description="Assign every mobile ion to a site in every frame (polyhedral, spherical or "
                                   "Voronoi sites from a reference structure, or the maxima of the ion's own "
                                   "density), debounce rattling, and report per-site and per-type occupancy, "
                                   "residence-time distributions, transition counts and rates between site types, "
                                   "the attempt frequency, jump vectors and collective jumps (docs/sites.md).")
    p.add_argument("traj", help="trajectory file")
    p.add_argument("--species", required=True, help="mobile species, e.g. Li")
    g = p.add_argument_group("sites from a reference structure")
    g.add_argument("--reference", metavar="FILE",
                   help="reference structure (CIF with partial occupancies, POSCAR, … read by pymatgen); a unit "
                        "cell is tiled to the trajectory cell. Without it the sites are the density maxima")
    g.add_argument("--site-species", metavar="SPECIES",
                   help="species of the reference whose positions are the site centres (default --species), e.g. "
                        "'Li' or dummy species marking site types")
    g.add_argument("--kind", choices=("polyhedral", "sphere", "voronoi"),
                   help="assignment: polyhedral (tetrahedra of --vertex-species; the default with it), sphere "
                        "(within --radius) or voronoi (nearest centre; the default otherwise)")
    g.add_argument("--vertex-species", metavar="SPECIES",
                   help="framework species of the tetrahedra's vertices, e.g. 'S Cl' (same list for reference and "
                        "trajectory)")
    g.add_argument("--vertex-cutoff", type=float, default=3.0, metavar="Å",
                   help="largest centre–vertex distance in the reference (default 3.0 Å)")
    g.add_argument("--radius", type=float, metavar="Å", help="sphere radius for --kind sphere")
    g.add_argument("--align", metavar="SPECIES",
                   help="align the reference to the first analysed frame by a translation fitted on this species "
                        "(e.g. P)")
    g.add_argument("--type-by", choices=("label", "species"), default="label",
                   help="site types from the CIF site labels (default) or from the centre species")
    d = p.add_argument_group("sites from the density maxima (without --reference)")
    d.add_argument("--spacing", type=float, default=0.2, metavar="Å", help="density grid spacing (default 0.2 Å)")
    d.add_argument("--smooth", type=float, default=0.3, metavar="Å",
                   help="σ of the periodic Gaussian smoothing (default 0.3 Å)")
    d.add_argument("--min-separation", type=float, default=1.0, metavar="Å",
                   help="maxima closer than this are one site (default 1.0 Å)")
    d.add_argument("--threshold", type=float, default=0.05,
                   help="smallest maximum as a fraction of the highest (default 0.05)")
    d.add_argument("--min-prominence", type=float, default=0.5, metavar="FRACTION",
                   help="smallest relative persistence (h − s)/h of a maximum: the density must fall below "
                        "(1 − this) × its height before a higher maximum is reached (default 0.5: a barrier of "
                        "k_BT ln 2); 0 keeps every maximum")
    d.add_argument("--significance", type=float, default=1.0, metavar="Z",
                   help="smallest persistence in standard errors of the density, the noise from the two halves of "
                        "the run (default 1.0; 0 switches the test off)")
    a = p.add_argument_group("residences and jumps")
    a.add_argument("--debounce", type=int, metavar="FRAMES",
                   help="frames an ion must stay in a new site before it has jumped (default from --min-residence)")
    a.add_argument("--min-residence", type=float, default=0.2, metavar="PS",
                   help="debounce as a time: n = max(1, ceil(t/dt)) frames (default 0.2 ps)")
    a.add_argument("--window", type=float, default=0.2, metavar="PS",
                   help="collective jumps: entries within ± this time (default 0.2 ps)")
    a.add_argument("--pair-distance", type=float, default=3.0, metavar="Å",
                   help="collective jumps: jump midpoints within this distance (default 3.0 Å)")
    add_memory_option(p)
    add_frame_options(p)
    add_reader_options(p)
    add_output_options(p, json=True, csv=True, plot=True)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..analysis.sites import sites

    check_outputs(args, args.json, args.csv, args.plot)
    with open_from_args(args) as traj:
        res = sites(traj, args.species, reference=args.reference, site_species=args.site_species, kind=args.kind,
                    vertex_species=args.vertex_species, cutoff=args.vertex_cutoff, radius=args.radius,
                    align=args.align, type_by=args.type_by, spacing=args.spacing, smooth=args.smooth,
                    min_separation=args.min_separation, threshold=args.threshold,
                    min_prominence=args.min_prominence, significance=args.significance, debounce=args.debounce,
                    min_residence=args.min_residence, window=args.window, pair_distance=args.pair_distance,
                    start=args.start, stop=args.stop, step=args.step, memory=args.memory,
                    progress=progress_of(args))
    return finish_result(args, res)
