"""``anionmotion polyanions TRAJ --center P --ligand S``: identify polyanions and check them along the run (SPEC §4)."""

from __future__ import annotations

import numpy as np

from ._common import (add_memory_option, add_output_options, add_polyanion_options, add_reader_options,
                      check_outputs, open_from_args, progress_of)

__all__ = ["register", "run", "polyanions_dict"]


def register(sub):
    p = sub.add_parser("polyanions", help="identify the polyanions, framework descriptors, integrity along the run",
                       description="Identify the polyanions (centre + ligands within the cutoff, or bonded centre-less "
                                   "clusters; SPEC §4) in the first analysed frame, print the framework descriptors "
                                   "(connectivity, VPA, AAL) and check in one streamed pass that every ligand stays "
                                   "with its centre.")
    p.add_argument("traj", help="trajectory file")
    add_polyanion_options(p)
    p.add_argument("--no-integrity", action="store_true", help="identify only; do not stream the trajectory")
    add_memory_option(p)
    add_reader_options(p)
    add_output_options(p, json=True)
    p.set_defaults(func=run)
    return p


def polyanions_dict(obj, departures, bonds) -> dict:
    """JSON-ready description of a :class:`~anionmotion.analysis.polyanions.Polyanions` and its integrity."""
    return {"label": obj.label, "center": obj.center_species, "ligand": obj.ligand_species,
            "n_anions": obj.n_anions, "n_ligands_per_anion": obj.n_ligands, "cutoff_A": obj.cutoff,
            "cutoff_source": obj.cutoff_source, "centers": obj.centers, "ligands": obj.ligands,
            "framework": {"connectivity": obj.connectivity, "VPA_A3": obj.vpa_A3, "AAL_A": obj.aal_A},
            "integrity": None if departures is None else {"intact": not departures, "departures": departures},
            "bond_lengths_A": bonds, "identification_frame": obj.frame, "meta": obj.meta}


def run(args) -> int:
    from ..analysis.base import resolve_memory
    from ..analysis.polyanions import find_polyanions
    from ..results import write_json

    check_outputs(args, args.json)
    budget = resolve_memory(args.memory)
    with open_from_args(args) as traj:
        fr = traj.frame_range(start=args.start, stop=args.stop, step=args.step)
        if len(fr) == 0:
            from ..errors import OptionError

            raise OptionError(f"{traj.path}: no frames in the range --start {args.start} --stop {args.stop} "
                              f"--step {args.step} ({traj.n_frames} frames)")
        obj = find_polyanions(traj, center=args.center, ligand=args.ligand, cutoff=args.cutoff, cluster=args.cluster,
                              frame=fr.start)
        first = traj.read(atoms=obj.atoms, frames=slice(obj.frame, obj.frame + 1), progress=False)
        bonds = np.linalg.norm(obj.ligand_vectors(first)[0], axis=-1)
        bonds = bonds[np.isfinite(bonds) & (bonds > 0)]
        departures = None
        if not args.no_integrity:
            fpc = max(1, int(0.25 * budget // max(len(obj.atoms) * 3 * 8 * 6, 1)))
            departures = obj.check_integrity(traj, frames_per_chunk=fpc, start=fr.start, stop=fr.stop, step=fr.step,
                                             progress=progress_of(args))
    print(f"polyanions        {obj.n_anions} × {obj.label} ({obj.connectivity}; cutoff {obj.cutoff:.3f} Å, "
          f"{obj.cutoff_source})")
    print(f"VPA / AAL         {obj.vpa_A3:.3f} Å³ / {obj.aal_A:.4f} Å")
    if bonds.size:
        print(f"bond lengths      {bonds.min():.3f} … {bonds.max():.3f} Å (mean {bonds.mean():.3f}) in frame {obj.frame}")
    if departures is not None:
        print("integrity         " + ("intact along the run" if not departures else
                                      f"NOT intact: {len(departures)} ligand departure(s), first at frame "
                                      f"{departures[0]['frame']}"))
    if args.json:
        write_json(args.json, polyanions_dict(obj, departures, bonds), overwrite=args.overwrite)
    return 0
