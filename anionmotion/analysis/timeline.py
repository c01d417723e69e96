"""Hop timelines (SPEC §5; paper 003 Fig. 3b, paper 002 Figs. S3–S8).

For each detected cation hop: the cation displacement |r(t) − r(t_ini)|, the
angular displacement of every ligand of its nearest polyanions
∠(u_l(t), u_l(t_ini)), the centre–ligand distances and the cation–ligand
distances, over a window around the hop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError
from ..results import Result
from .coupling import _angle, _local_frames, load_system, min_image_rows, nearest_anions
from .polyanions import find_polyanions, parse_species

__all__ = ["timeline", "TimelineResult"]


@dataclass(frozen=True, repr=False)
class TimelineResult(Result):
    """Timelines around cation hops.

    Attributes
    ----------
    cation : str
    species : str
        Polyanion label.
    hops : list of dict
        One entry per hop: ``hop`` (index in the hop list), ``cation_atom``, ``hop_frame``, ``hop_time_ps``,
        ``t_ini_ps`` (start of the window), ``times_ps`` (n_t,), ``cation_displacement_A`` (n_t,),
        ``anions`` (n_nearest,) polyanion indices, ``center_atoms`` (n_nearest,) (−1 for clusters),
        ``ligand_atoms`` (n_nearest, n_lig), ``ligand_angle_deg`` (n_t, n_nearest, n_lig),
        ``center_ligand_A`` (n_t, n_nearest, n_lig), ``cation_ligand_A`` (n_t, n_nearest, n_lig).
    n_hops_total : int
        Hops detected (all of them, even those not selected).
    half_width_ps : float, ps
    meta : dict
    """

    cation: str
    species: str
    hops: list
    n_hops_total: int
    half_width_ps: float
    meta: dict = field(default_factory=dict)

    def table(self):
        """Long-format rows: hop, time_ps, cation_displacement_A, anion, center_atom, ligand_atom,
        ligand_angle_deg, center_ligand_A, cation_ligand_A."""
        rows = []
        for h in self.hops:
            nt, na, nl = h["ligand_angle_deg"].shape
            t = np.repeat(h["times_ps"], na * nl)
            disp = np.repeat(h["cation_displacement_A"], na * nl)
            an = np.tile(np.repeat(h["anions"], nl), nt)
            ca = np.tile(np.repeat(h["center_atoms"], nl), nt)
            la = np.tile(h["ligand_atoms"].ravel(), nt)
            rows.append(np.column_stack([np.full(len(t), h["hop"]), t, disp, an, ca, la,
                                         h["ligand_angle_deg"].ravel(), h["center_ligand_A"].ravel(),
                                         h["cation_ligand_A"].ravel()]))
        return np.concatenate(rows) if rows else np.zeros((0, 9))

    def to_csv(self) -> str:
        """The :meth:`table` as CSV text (padding ligands, −1, are left out)."""
        head = ("hop,time_ps,cation_displacement_A,anion,center_atom,ligand_atom,ligand_angle_deg,center_ligand_A,"
                "cation_ligand_A")
        lines = [f"# hop timelines of {self.cation} with {self.species}; times in ps, distances in Å, angles in degrees",
                 head]
        for r in self.table():
            if r[5] < 0:
                continue
            lines.append(f"{int(r[0])},{r[1]:.6g},{r[2]:.6g},{int(r[3])},{int(r[4])},{int(r[5])},{r[6]:.6g},"
                         f"{r[7]:.6g},{r[8]:.6g}")
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        lines = [f"{self.n_hops_total} {self.cation} hops; {len(self.hops)} timeline(s) of ±{self.half_width_ps:g} ps "
                 f"with the {self.meta.get('n_nearest')} nearest {self.species}"]
        for h in self.hops:
            ang = np.nanmax(h["ligand_angle_deg"]) if h["ligand_angle_deg"].size else float("nan")
            lines.append(f"  hop {h['hop']}: {self.cation} atom {h['cation_atom']} at {h['hop_time_ps']:.3f} ps, "
                         f"max displacement {np.max(h['cation_displacement_A']):.2f} Å, anions "
                         f"{', '.join(str(a) for a in h['anions'])}, max ligand angle {ang:.1f}°")
        return "\n".join(lines)

    def __repr__(self):
        return f"TimelineResult({len(self.hops)} of {self.n_hops_total} {self.cation} hops, {self.species})"


def timeline(traj, *, cation, center=None, ligand=None, cutoff=None, cluster=None, polyanions=None, hops=None,
             hop=None, hop_a=None, hop_residence=3.0, hop_window=9.0, half_width=None, n_nearest=2, start=None,
             stop=None, step=None, progress=None, use_ext=True) -> TimelineResult:
    """Timelines of cation hops and the motion of the nearest polyanions.

    Parameters
    ----------
    traj : Trajectory
    cation : str
    center, ligand, cutoff, cluster, polyanions :
        Polyanion definition (see :func:`~anionmotion.analysis.polyanions.find_polyanions`).
    hops : HopsResult, optional
        Hop events; computed with :func:`anionmotion.hops` when not given.
    hop : int or sequence of int, optional
        Which hops (indices into the hop list, ordered by time); default all.
    hop_a, hop_residence, hop_window : float
        Parameters of :func:`anionmotion.hops` (Å, ps, ps).
    half_width : float, optional, ps
        The timeline covers [t_h − half_width, t_h + half_width], clipped to
        the trajectory; default the hop window t_a (so the whole displacement
        that defines the hop is inside).
    n_nearest : int
        Polyanions nearest to the cation at the hop frame (default 2, as paper 003 Fig. 3b).

    Returns
    -------
    TimelineResult

    Notes
    -----
    t_ini is the first frame of the window.  Cation displacement
    |r(t) − r(t_ini)| (unwrapped); ligand angular displacement
    ∠(u_l(t), u_l(t_ini)) with u_l the centre→ligand vector; centre–ligand
    |u_l(t)| and cation–ligand distances use the minimum image.

    References
    ----------
    SPEC §5; paper 003 Fig. 3b; paper 002 Figs. S3–S8.
    """
    n_nearest = 2 if n_nearest is None else n_nearest
    hop_residence = 3.0 if hop_residence is None else hop_residence
    hop_window = 9.0 if hop_window is None else hop_window
    cs = parse_species(cation, "cation")
    if cs is None or len(cs) != 1:
        raise OptionError(f"cation must be one species (e.g. cation='Li'); got {cation!r}")
    cation = cs[0]
    cat_idx = traj.select(species=cation)
    if int(n_nearest) < 1:
        raise OptionError(f"n_nearest must be at least 1; got {n_nearest}")
    if polyanions is None:
        s0 = slice(start, stop, step).indices(traj.n_frames)[0] if traj.n_frames else 0
        polyanions = find_polyanions(traj, center=center, ligand=ligand, cutoff=cutoff, cluster=cluster, frame=s0)
    pa = polyanions
    if hops is None:
        from .hops import hops as run_hops

        hops = run_hops(traj, species=cation, a=hop_a, residence=hop_residence, window=hop_window, start=start,
                        stop=stop, step=step, progress=progress)
    ev_atom = np.asarray(hops.event_atom, dtype=np.int64)
    ev_frame = np.asarray(hops.event_frame, dtype=np.int64)
    keep = np.isin(ev_atom, cat_idx)
    ev_atom, ev_frame = ev_atom[keep], ev_frame[keep]
    order = np.lexsort((ev_atom, ev_frame))
    ev_atom, ev_frame = ev_atom[order], ev_frame[order]
    n_total = len(ev_atom)
    if hop is None:
        chosen = np.arange(n_total)
    else:
        chosen = np.atleast_1d(np.asarray(hop))
        if chosen.dtype.kind not in "iu":
            raise OptionError(f"hop must be an integer index (or indices); got {hop!r}")
        bad = chosen[(chosen < 0) | (chosen >= n_total)]
        if len(bad):
            raise OptionError(f"hop {int(bad[0])} does not exist: {n_total} {cation} hop(s) were detected "
                              f"(indices 0..{n_total - 1})")
    sysd = load_system(traj, pa, cat_idx, start=start, stop=stop, step=step, progress=progress, use_ext=use_ext)
    times, frames, cells = sysd["times"], sysd["frames"], sysd["cells"]
    n = len(times)
    dt = float(np.median(np.diff(times))) if n > 1 else 0.0
    if half_width is None:
        half_width = float(getattr(hops, "window_ps", hop_window))
    half_width = float(half_width)
    if not half_width > 0:
        raise OptionError(f"half_width must be a positive time in ps; got {half_width}")
    w = max(1, int(round(half_width / dt))) if dt > 0 else 0
    out = []
    if len(chosen):
        fl = _local_frames(frames, ev_frame[chosen])
        cl = np.searchsorted(cat_idx, ev_atom[chosen])
        near = nearest_anions(sysd, cl, fl, int(n_nearest), use_ext)
        for k, (h, f, c) in enumerate(zip(chosen, fl, cl)):   # loop over selected hops; frames vectorised
            lo, hi = max(0, f - w), min(n, f + w + 1)
            an = near[k]
            r = sysd["cat"][lo:hi, c]
            disp = np.linalg.norm(r - r[0], axis=-1)
            lig = sysd["lig"][lo:hi][:, an]                           # (nt, k, L, 3)
            u = sysd["u"][lo:hi][:, an]
            ang = _angle(u, np.broadcast_to(u[0], u.shape))
            dcl = np.linalg.norm(lig, axis=-1)
            # cation–ligand: C→cation minus C→ligand, minimum image
            cc = sysd["cat"][lo:hi, c][:, None, :] - sysd["cen"][lo:hi][:, an]          # (nt, k, 3)
            nt, kk = cc.shape[:2]
            cc = min_image_rows(cc.reshape(-1, 3), np.repeat(cells[lo:hi], kk, axis=0)).reshape(nt, kk, 3)
            dnl = np.linalg.norm(cc[:, :, None, :] - lig, axis=-1)
            out.append({"hop": int(h), "cation_atom": int(ev_atom[h]), "hop_frame": int(ev_frame[h]),
                        "hop_time_ps": float(times[f]), "t_ini_ps": float(times[lo]), "times_ps": times[lo:hi],
                        "cation_displacement_A": disp, "anions": an.astype(np.int64),
                        "center_atoms": pa.centers[an], "ligand_atoms": pa.ligands[an],
                        "ligand_angle_deg": ang, "center_ligand_A": dcl, "cation_ligand_A": dnl})
    meta = {"n_nearest": int(n_nearest), "half_width_frames": int(w), "dt_ps": dt,
            "hop_a_A": float(getattr(hops, "a_A", float("nan"))),
            "hop_residence_ps": float(getattr(hops, "residence_ps", float("nan"))),
            "hop_window_ps": float(getattr(hops, "window_ps", float("nan"))),
            "t_ini": "first frame of the window", "center": pa.center_species, "ligand": pa.ligand_species,
            "nearest": "polyanion centres nearest to the cation at the hop frame (minimum image)"}
    return TimelineResult(cation=cation, species=pa.label, hops=out, n_hops_total=int(n_total),
                          half_width_ps=half_width, meta=meta)
