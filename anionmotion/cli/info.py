"""``anionmotion info TRAJ``: read and validate every frame, then describe the trajectory."""

from __future__ import annotations

import warnings

import numpy as np

from ._common import add_output_options, add_reader_options, open_from_args, progress_of

__all__ = ["register", "run", "describe"]


def register(sub):
    p = sub.add_parser("info", help="read and validate every frame; report atoms, frames, times, cell, units",
                       description="Read and validate every frame of a trajectory and describe it.")
    p.add_argument("traj", help="trajectory file")
    add_reader_options(p)
    add_output_options(p, json=True)
    p.set_defaults(func=run)
    return p


def describe(traj, *, frames_per_chunk=2000, progress=None) -> dict:
    """Read every frame of ``traj`` (validating it) and return a description dict.

    The description holds the atoms per species, frame count, time span and
    spacing, the cell and whether it changes, coordinate style, velocities,
    units and any warnings raised while reading.
    """
    times = traj.times
    caught = []
    cmin = cmax = None
    vol_min, vol_max = np.inf, -np.inf
    max_speed = 0.0
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter("always")
        for chunk in traj.iter_chunks(frames_per_chunk, progress=progress, desc="validating"):
            c = chunk.cells
            cmin = c.min(axis=0) if cmin is None else np.minimum(cmin, c.min(axis=0))
            cmax = c.max(axis=0) if cmax is None else np.maximum(cmax, c.max(axis=0))
            v = chunk.volumes
            vol_min, vol_max = min(vol_min, v.min()), max(vol_max, v.max())
            if chunk.velocities is not None:
                max_speed = max(max_speed, float(np.sqrt((chunk.velocities ** 2).sum(-1)).max()))
    for w in wlist:
        caught.append(f"{w.category.__name__}: {w.message}")
    # warnings raised at open time by readers are re-emitted for the user
    dt = np.diff(times)
    uniform = traj.is_uniform
    cell0 = traj.cells[0] if traj.n_frames else np.zeros((3, 3))
    changes = bool(cmin is not None and np.any(cmax - cmin > 1e-6))
    lengths = np.linalg.norm(cell0, axis=1)
    a, b, c = cell0

    def ang(u, v):
        return float(np.degrees(np.arccos(np.clip(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1))))

    return {
        "path": traj.path,
        "format": traj.format,
        "n_atoms": traj.n_atoms,
        "species": traj.species_counts(),
        "n_frames": traj.n_frames,
        "time": {
            "start_ps": float(times[0]) if len(times) else None,
            "end_ps": float(times[-1]) if len(times) else None,
            "span_ps": float(times[-1] - times[0]) if len(times) else 0.0,
            "spacing_ps": float(np.median(dt)) if len(dt) else None,
            "min_spacing_ps": float(dt.min()) if len(dt) else None,
            "max_spacing_ps": float(dt.max()) if len(dt) else None,
            "uniform": bool(uniform),
            "source": traj.units.get("time_source", "file" if traj._reader.times is not None else "frame_interval"),
        },
        "cell": {
            "first_frame_A": cell0,
            "lengths_A": lengths,
            "angles_deg": [ang(b, c), ang(a, c), ang(a, b)] if traj.n_frames else None,
            "orthogonal": bool(np.all(np.abs(cell0 - np.diag(np.diag(cell0))) < 1e-8)),
            "changes": changes,
            "volume_min_A3": float(vol_min) if np.isfinite(vol_min) else None,
            "volume_max_A3": float(vol_max) if np.isfinite(vol_max) else None,
        },
        "coordinates": traj.coord_style,
        "velocities": bool(traj.has_velocities),
        "max_speed_A_ps": max_speed if traj.has_velocities else None,
        "masses_known": bool(np.all(np.isfinite(traj.masses))),
        "charges_known": traj.charges is not None,
        "units": traj.units,
        "metadata": traj.metadata,
        "warnings": caught,
    }


def _text(d) -> str:
    t, c = d["time"], d["cell"]
    lines = [
        f"file         {d['path']}",
        f"format       {d['format']}",
        f"atoms        {d['n_atoms']}  (" + ", ".join(f"{k} {v}" for k, v in d["species"].items()) + ")",
        f"frames       {d['n_frames']}",
        f"time         {t['start_ps']:.6g} … {t['end_ps']:.6g} ps (span {t['span_ps']:.6g} ps; from {t['source']})"
        if d["n_frames"] else "time         -",
        (f"spacing      {t['spacing_ps']:.6g} ps, " + ("uniform" if t["uniform"] else
                                                      f"NOT uniform ({t['min_spacing_ps']:.6g} … {t['max_spacing_ps']:.6g} ps)"))
        if t["spacing_ps"] is not None else "spacing      single frame",
        "cell         a = [" + ", ".join(f"{x:.5f}" for x in c["first_frame_A"][0]) + "]",
        "             b = [" + ", ".join(f"{x:.5f}" for x in c["first_frame_A"][1]) + "]",
        "             c = [" + ", ".join(f"{x:.5f}" for x in c["first_frame_A"][2]) + "]",
        "             lengths " + " ".join(f"{x:.4f}" for x in c["lengths_A"]) + " Å, angles "
        + (" ".join(f"{x:.3f}" for x in c["angles_deg"]) if c["angles_deg"] else "-") + "°, "
        + ("orthogonal" if c["orthogonal"] else "triclinic") + ", "
        + (f"changes (volume {c['volume_min_A3']:.2f} … {c['volume_max_A3']:.2f} Å³)" if c["changes"]
           else f"constant (volume {c['volume_min_A3']:.2f} Å³)" if c["volume_min_A3"] else "constant"),
        f"coordinates  {d['coordinates']}",
        f"velocities   {'yes' if d['velocities'] else 'no'}",
        "units        " + ", ".join(f"{k}: {v}" for k, v in d["units"].items()),
    ]
    if d["metadata"]:
        lines.append("metadata     " + ", ".join(f"{k}={v}" for k, v in d["metadata"].items()))
    for w in d["warnings"]:
        lines.append(f"warning      {w}")
    return "\n".join(lines)


def run(args) -> int:
    from ..results import check_output, write_json

    if args.json:
        check_output(args.json, args.overwrite)
    with open_from_args(args) as traj:
        d = describe(traj, progress=progress_of(args))
    print(_text(d))
    if args.json:
        write_json(args.json, d, overwrite=args.overwrite)
    return 0
