"""Hop timelines (SPEC §5; paper 003 Fig. 3b, paper 002 Figs. S3–S8).

For each detected cation hop: the cation displacement |r(t) − r(t_ini)|, the
angular displacement of every ligand of its nearest polyanions
∠(u_l(t), u_l(t_ini)), the centre–ligand distances and the cation–ligand
distances, over a window around the hop.

Streaming: the hops are found first (streamed, h not kept); the nearest
polyanions of each selected hop are taken at its frame by reading only the hop
frames; then only the frames inside the windows (merged where they overlap)
are read, chunk by chunk, and each hop's arrays are filled as its window
passes.  Memory: one chunk (set by ``memory``) plus the result itself
(n_selected_hops × window × n_nearest × n_ligands values), never a per-frame
array of the whole trajectory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError
from ..results import Result
from .base import AnalysisBase, uniform_spacing
from .coupling import _angle, _local_frames, chunk_system, min_image_rows, nearest_anions
from .polyanions import find_polyanions, parse_species

__all__ = ["timeline", "Timeline", "TimelineResult"]


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
        With ``keep=k`` only the first k selected hops are here (see :func:`timeline`).
    n_hops_total : int
        Hops detected (all of them, even those not selected).
    half_width_ps : float, ps
    meta : dict
    summaries : list of dict
        One small entry per selected hop (also those not kept): ``hop``, ``cation_atom``, ``hop_frame``,
        ``hop_time_ps``, ``anions``, ``max_displacement_A``, ``max_ligand_angle_deg``.
    """

    cation: str
    species: str
    hops: list
    n_hops_total: int
    half_width_ps: float
    meta: dict = field(default_factory=dict)
    summaries: list = field(default_factory=list)

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
        lines = [_csv_comment(self.cation, self.species), CSV_HEADER]
        for r in self.table():
            if r[5] < 0:
                continue
            lines.append(f"{int(r[0])},{r[1]:.6g},{r[2]:.6g},{int(r[3])},{int(r[4])},{int(r[5])},{r[6]:.6g},"
                         f"{r[7]:.6g},{r[8]:.6g}")
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        hs = self.summaries or [_hop_summary(h) for h in self.hops]
        lines = [f"{self.n_hops_total} {self.cation} hops; {len(hs)} timeline(s) of ±{self.half_width_ps:g} ps "
                 f"with the {self.meta.get('n_nearest')} nearest {self.species} ({self.meta.get('selection', '')})"]
        for h in hs:
            lines.append(f"  hop {h['hop']}: {self.cation} atom {h['cation_atom']} at {h['hop_time_ps']:.3f} ps, "
                         f"max displacement {h['max_displacement_A']:.2f} Å, anions "
                         f"{', '.join(str(a) for a in h['anions'])}, max ligand angle {h['max_ligand_angle_deg']:.1f}°")
        return "\n".join(lines)

    def __repr__(self):
        return f"TimelineResult({len(self.hops)} of {self.n_hops_total} {self.cation} hops, {self.species})"


CSV_HEADER = ("hop,time_ps,cation_displacement_A,anion,center_atom,ligand_atom,ligand_angle_deg,center_ligand_A,"
              "cation_ligand_A")


def _csv_comment(cation, species):
    return f"# hop timelines of {cation} with {species}; times in ps, distances in Å, angles in degrees"


def _hop_summary(h):
    """The small per-hop summary of a full timeline entry."""
    ang = float(np.nanmax(h["ligand_angle_deg"])) if h["ligand_angle_deg"].size else float("nan")
    return {"hop": h["hop"], "cation_atom": h["cation_atom"], "hop_frame": h["hop_frame"],
            "hop_time_ps": h["hop_time_ps"], "anions": h["anions"],
            "max_displacement_A": float(np.max(h["cation_displacement_A"])), "max_ligand_angle_deg": ang}


class _TimelineJSON:
    """The JSON of :meth:`TimelineResult.save` written hop by hop: the same text as ``write_json(res.to_dict())``.

    The fields before ``hops`` are written first, each hop's entry as its window ends, the fields after
    ``hops`` at the end (atomic rename on close).
    """

    def __init__(self, path, overwrite=False):
        import os

        from ..results import check_output, temp_output

        self.path = check_output(path, overwrite)
        fd, self._tmp = temp_output(self.path)
        self._fh = os.fdopen(fd, "w", encoding="utf-8")
        self._n = 0

    @staticmethod
    def _item(key, value):
        import json

        from ..results import to_jsonable

        text = json.dumps({key: to_jsonable(value)}, indent=2, allow_nan=False)
        return text[2:-2]   # '  "key": value' without the enclosing braces

    def begin(self, head):
        """``head``: the fields before ``hops`` (dict, in order)."""
        self._fh.write("{\n" + ",\n".join(self._item(k, v) for k, v in head.items()) + ",\n  \"hops\": [")

    def write_hop(self, h):
        import json
        import textwrap

        from ..results import to_jsonable

        text = textwrap.indent(json.dumps(to_jsonable(h), indent=2, allow_nan=False), "    ")
        self._fh.write(("\n" if self._n == 0 else ",\n") + text)
        self._n += 1

    def end(self, tail):
        """``tail``: the fields after ``hops``; closes and renames the file into place."""
        import os

        self._fh.write(("]" if self._n == 0 else "\n  ]") + ",\n" + ",\n".join(self._item(k, v) for k, v in tail.items())
                       + "\n}\n")
        self._fh.close()
        os.replace(self._tmp, self.path)

    def abort(self):
        import os

        self._fh.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)


class _TimelineCSV:
    """The long CSV table of :meth:`TimelineResult.to_csv`, written hop by hop (atomic rename on close)."""

    FMT = ["%d", "%.6g", "%.6g", "%d", "%d", "%d", "%.6g", "%.6g", "%.6g"]

    def __init__(self, path, cation, species, overwrite=False):
        import os

        from ..results import check_output, temp_output

        self.path = check_output(path, overwrite)
        fd, self._tmp = temp_output(self.path)
        self._fh = os.fdopen(fd, "w", encoding="utf-8")
        self._fh.write(_csv_comment(cation, species) + "\n" + CSV_HEADER + "\n")

    def write_hop(self, h):
        rows = TimelineResult("", "", [h], 0, 0.0).table()
        rows = rows[rows[:, 5] >= 0]
        if len(rows):
            np.savetxt(self._fh, rows, fmt=self.FMT, delimiter=",")

    def close(self):
        import os

        self._fh.close()
        os.replace(self._tmp, self.path)

    def abort(self):
        import os

        self._fh.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)


class Timeline(AnalysisBase):
    """Hop timelines in bounded memory (see :func:`timeline` for the parameters and definitions)."""

    name = "timeline"
    needs_velocities = False
    MAX_CHUNK_FRAMES = 1024
    """Largest chunk (frames): windows are short, larger chunks only delay the progress bar."""

    def __init__(self, cation, *, center=None, ligand=None, cutoff=None, cluster=None, polyanions=None, hops=None,
                 hop=None, hop_a=None, hop_residence=3.0, hop_window=9.0, half_width=None, n_nearest=2, memory=None,
                 progress=None, use_ext=True, keep=None, csv=None, json=None, overwrite=False, max_hops=None):
        super().__init__(memory=memory, progress=progress, use_ext=use_ext)
        if max_hops is not None and int(max_hops) < 0:
            raise OptionError(f"max_hops must be a number of hops (0 = all) or None; got {max_hops}")
        self.max_hops = None if max_hops is None or int(max_hops) == 0 else int(max_hops)
        if keep is not None and int(keep) < 0:
            raise OptionError(f"keep must be a number of hops (0 or more) or None; got {keep}")
        self.keep, self.csv, self.json, self.overwrite = keep, csv, json, overwrite
        self.cation, self.center, self.ligand, self.cutoff, self.cluster = cation, center, ligand, cutoff, cluster
        self.polyanions, self.hops, self.hop, self.hop_a = polyanions, hops, hop, hop_a
        self.hop_residence, self.hop_window, self.half_width, self.n_nearest = (hop_residence, hop_window, half_width,
                                                                                n_nearest)

    def _atoms(self):
        return self._read_atoms

    def _bytes_per_frame(self, n_atoms_read) -> int:
        pa = self._pa
        lig = pa.n_anions * max(pa.n_ligands, 1) * 3 * 8
        return int(n_atoms_read * 3 * 8 * 4 + lig * 4)

    def run(self, traj, start=None, stop=None, step=None) -> TimelineResult:
        """Timelines of the selected hops in frames ``start:stop:step`` of ``traj``."""
        for path in (self.csv, self.json):   # refuse an existing output before any work
            if path is not None:
                from ..results import check_output

                check_output(path, self.overwrite)
        n_nearest = 2 if self.n_nearest is None else self.n_nearest
        hop_residence = 3.0 if self.hop_residence is None else self.hop_residence
        hop_window = 9.0 if self.hop_window is None else self.hop_window
        cs = parse_species(self.cation, "cation")
        if cs is None or len(cs) != 1:
            raise OptionError(f"cation must be one species (e.g. cation='Li'); got {self.cation!r}")
        cation = cs[0]
        cat_idx = traj.select(species=cation)
        self._cation_idx = cat_idx
        if int(n_nearest) < 1:
            raise OptionError(f"n_nearest must be at least 1; got {n_nearest}")
        fr = traj.frame_range(start=start, stop=stop, step=step)
        pa = self.polyanions
        if pa is None:
            pa = find_polyanions(traj, center=self.center, ligand=self.ligand, cutoff=self.cutoff,
                                 cluster=self.cluster, frame=fr.start if traj.n_frames else 0)
        self._pa = pa
        hops = self.hops
        if hops is None:
            from .hops import hops as run_hops

            hops = run_hops(traj, species=cation, a=self.hop_a, residence=hop_residence, window=hop_window,
                            start=fr.start, stop=fr.stop, step=fr.step, memory=self.memory, progress=self.progress,
                            keep_h=False, use_ext=self.use_ext)
        ev_atom = np.asarray(hops.event_atom, dtype=np.int64)
        ev_frame = np.asarray(hops.event_frame, dtype=np.int64)
        keep = np.isin(ev_atom, cat_idx)
        ev_atom, ev_frame = ev_atom[keep], ev_frame[keep]
        order = np.lexsort((ev_atom, ev_frame))
        ev_atom, ev_frame = ev_atom[order], ev_frame[order]
        n_total = len(ev_atom)
        if self.hop is None:
            chosen = np.arange(n_total)
            if self.max_hops is not None and n_total > self.max_hops:
                # evenly spread over the run: every part of the trajectory is represented
                chosen = np.unique(np.round(np.linspace(0, n_total - 1, self.max_hops)).astype(np.int64))
        else:
            chosen = np.atleast_1d(np.asarray(self.hop))
            if chosen.dtype.kind not in "iu":
                raise OptionError(f"hop must be an integer index (or indices); got {self.hop!r}")
            bad = chosen[(chosen < 0) | (chosen >= n_total)]
            if len(bad):
                raise OptionError(f"hop {int(bad[0])} does not exist: {n_total} {cation} hop(s) were detected "
                                  f"(indices 0..{n_total - 1})")
        self._setup(traj, fr.start, fr.stop, fr.step)
        self._read_atoms = np.union1d(cat_idx, pa.atoms).astype(np.int64)
        times, frames, n = self.times, self.frames, self.n_frames
        if n > 1:
            uni, dtu = uniform_spacing(times)
            dt = dtu if uni else float(np.median(np.diff(times)))
        else:
            dt = 0.0
        half_width = self.half_width
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
            near = self._nearest(fl, cl, int(n_nearest))
            lo, hi = np.maximum(0, fl - w), np.minimum(n, fl + w + 1)
            n_keep = len(chosen) if self.keep is None else min(len(chosen), int(self.keep))
            kept = [None] * n_keep
            summaries = [None] * len(chosen)

            def done(j, a):
                h, an = int(chosen[j]), near[j]
                entry = {"hop": h, "cation_atom": int(ev_atom[h]), "hop_frame": int(ev_frame[h]),
                         "hop_time_ps": float(times[fl[j]]), "t_ini_ps": float(times[lo[j]]),
                         "times_ps": times[lo[j]:hi[j]].copy(), "cation_displacement_A": a["disp"],
                         "anions": an.astype(np.int64), "center_atoms": pa.centers[an],
                         "ligand_atoms": pa.ligands[an], "ligand_angle_deg": a["ang"], "center_ligand_A": a["dcl"],
                         "cation_ligand_A": a["dnl"]}
                summaries[j] = _hop_summary(entry)
                if csv is not None:
                    csv.write_hop(entry)
                if jsn is not None:
                    jsn.write_hop(entry)
                if j < n_keep:
                    kept[j] = entry

        else:
            summaries = []
        csv = None if self.csv is None else _TimelineCSV(self.csv, cation, pa.label, self.overwrite)
        jsn = None if self.json is None else _TimelineJSON(self.json, self.overwrite)
        try:
            if jsn is not None:
                jsn.begin({"cation": cation, "species": pa.label})
            if len(chosen):
                self._fill(lo, hi, cl, near, done)
                out = kept
        except BaseException:
            for wtr in (csv, jsn):
                if wtr is not None:
                    wtr.abort()
            raise
        if csv is not None:
            csv.close()
        meta = {"n_nearest": int(n_nearest), "half_width_frames": int(w), "dt_ps": dt,
                "hop_a_A": float(getattr(hops, "a_A", float("nan"))),
                "hop_residence_ps": float(getattr(hops, "residence_ps", float("nan"))),
                "hop_window_ps": float(getattr(hops, "window_ps", float("nan"))),
                "t_ini": "first frame of the window", "center": pa.center_species, "ligand": pa.ligand_species,
                "nearest": "polyanion centres nearest to the cation at the hop frame (minimum image)",
                "memory_budget_bytes": int(self.budget), "n_selected": int(len(chosen)),
                "selection": ("given hop indices" if self.hop is not None else
                              f"{len(chosen)} of {n_total} hops evenly spread over the run (max_hops)"
                              if len(chosen) < n_total else "every hop")}
        res = TimelineResult(cation=cation, species=pa.label, hops=out, n_hops_total=int(n_total),
                             half_width_ps=half_width, meta=meta, summaries=summaries)
        if jsn is not None:
            jsn.end({"n_hops_total": res.n_hops_total, "half_width_ps": res.half_width_ps, "meta": res.meta,
                     "summaries": res.summaries})
        return res

    def _nearest(self, fl, cl, k):
        """The k polyanions nearest to each hopping cation at its hop frame, reading only the hop frames."""
        near = np.zeros((len(fl), min(k, self._pa.n_anions)), dtype=np.int64)
        uniq = np.unique(fl)
        with self._phase(len(uniq), "hop frames", unit="frame") as bar:
            for f in uniq:
                sel = np.nonzero(fl == f)[0]
                t = int(self.frames[f])
                # minimum-image distances: the frame as stored is enough
                for ch in self.traj.iter_chunks(1, atoms=self._read_atoms, start=t, stop=t + 1, progress=False,
                                                unwrap=False, velocities=False):
                    sysd = chunk_system(ch, self._pa, self._cation_idx, use_ext=self.use_ext)
                    near[sel] = nearest_anions(sysd, cl[sel], np.zeros(len(sel), np.int64), k, self.use_ext)
                bar.update(1)
        return near

    def _fill(self, lo, hi, cl, near, done):
        """Stream the frames inside the windows (merged intervals), fill each hop's arrays, ``done(j, arrays)``."""
        order = np.argsort(lo, kind="stable")
        intervals = []
        for j in order:
            if intervals and lo[j] <= intervals[-1][1]:
                intervals[-1][1] = max(intervals[-1][1], int(hi[j]))
            else:
                intervals.append([int(lo[j]), int(hi[j])])
        fpc = min(self._chunk_frames(), self.MAX_CHUNK_FRAMES)
        self.frames_per_chunk = fpc
        frames, step = self.frames, self.frame_range.step
        refs, arrays = {}, {}
        n_done = 0
        k, L = near.shape[1], self._pa.n_ligands
        with self._phase(sum(b - a for a, b in intervals), "hop windows", unit="frame") as bar:
            for a, b in intervals:
                c0 = a
                for ch in self.traj.iter_chunks(fpc, atoms=self._read_atoms, start=int(frames[a]),
                                                stop=int(frames[b - 1]) + 1, step=step, progress=False,
                                                unwrap=bool(self.traj.unwrap and self.needs_unwrap),
                                                velocities=False):
                    c1 = c0 + ch.n_frames
                    sysd = chunk_system(ch, self._pa, self._cation_idx, use_ext=self.use_ext)
                    for j in np.nonzero((lo < c1) & (hi > c0) & (lo >= a) & (hi <= b))[0]:
                        if lo[j] >= c0:     # the window starts in this chunk
                            nt = int(hi[j] - lo[j])
                            arrays[j] = {"disp": np.empty(nt), "ang": np.empty((nt, k, L)),
                                         "dcl": np.empty((nt, k, L)), "dnl": np.empty((nt, k, L))}
                        self._fill_one(j, sysd, c0, c1, lo[j], hi[j], cl[j], near[j], arrays[j], refs)
                        if hi[j] <= c1:     # ... and ends here
                            done(j, arrays.pop(j))
                            n_done += 1
                            # writing a hop's JSON/CSV takes a while: the bar shows every finished window
                            bar.set_description(f"{self.name}: hop windows ({n_done}/{len(lo)} hops)")
                    bar.update(ch.n_frames)
                    c0 = c1

    @staticmethod
    def _fill_one(j, sysd, c0, c1, lo, hi, c, an, arr, refs):
        r0, r1 = max(lo, c0), min(hi, c1)
        rows = slice(r0 - c0, r1 - c0)
        out = slice(r0 - lo, r1 - lo)
        r = sysd["cat"][rows, c]
        u = sysd["u"][rows][:, an]                                   # (nt, k, L, 3)
        lig = sysd["lig"][rows][:, an]
        if r0 == lo:    # the window starts here: t_ini references
            refs[j] = (r[0].copy(), u[0].copy())
        ref_r, ref_u = refs[j]
        arr["disp"][out] = np.linalg.norm(r - ref_r, axis=-1)
        arr["ang"][out] = _angle(u, np.broadcast_to(ref_u, u.shape))
        arr["dcl"][out] = np.linalg.norm(lig, axis=-1)
        # cation–ligand: C→cation minus C→ligand, minimum image
        cc = sysd["cat"][rows, c][:, None, :] - sysd["cen"][rows][:, an]          # (nt, k, 3)
        nt, kk = cc.shape[:2]
        cc = min_image_rows(cc.reshape(-1, 3), np.repeat(sysd["cells"][rows], kk, axis=0)).reshape(nt, kk, 3)
        arr["dnl"][out] = np.linalg.norm(cc[:, :, None, :] - lig, axis=-1)
        if r1 == hi:
            refs.pop(j, None)


def timeline(traj, *, cation, center=None, ligand=None, cutoff=None, cluster=None, polyanions=None, hops=None,
             hop=None, hop_a=None, hop_residence=3.0, hop_window=9.0, half_width=None, n_nearest=2, start=None,
             stop=None, step=None, progress=None, use_ext=True, memory=None, keep=None, csv=None, json=None,
             overwrite=False, max_hops=None) -> TimelineResult:
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
        Which hops (indices into the hop list, ordered by time); default all (or ``max_hops`` of them).
    max_hops : int, optional
        Without ``hop``: at most this many hops, evenly spread over the run (indices rounded from
        ``linspace(0, n_hops − 1, max_hops)``); None or 0 = every hop.  A 10⁶-frame run has tens of
        thousands of hops, and each timeline is a ±t_a window of series.
    hop_a, hop_residence, hop_window : float
        Parameters of :func:`anionmotion.hops` (Å, ps, ps).
    half_width : float, optional, ps
        The timeline covers [t_h − half_width, t_h + half_width], clipped to
        the trajectory; default the hop window t_a (so the whole displacement
        that defines the hop is inside).
    n_nearest : int
        Polyanions nearest to the cation at the hop frame (default 2, as paper 003 Fig. 3b).
    start, stop, step : int, optional
        Frame range.
    progress : bool, optional
    use_ext : bool
        Compiled kernels (True) or the numpy twins.
    memory : int or str, optional
        Memory budget (``"2GB"``); default half of the available RAM.  Only
        the frames inside the windows are read, chunk by chunk.
    keep : int, optional
        Keep the full arrays of only the first ``keep`` selected hops in
        :attr:`TimelineResult.hops` (default all).  Every selected hop still
        gets its entry in :attr:`TimelineResult.summaries` and its rows in
        ``csv``; memory then stays bounded whatever the number of hops.
    csv : str, optional
        Write the long table of :meth:`TimelineResult.to_csv` to this file as
        each window ends (rows in the order the windows end: hop order when
        the hops are in time order, as by default).
    json : str, optional
        Write the JSON of the complete result (every selected hop, the text
        of ``save()`` of a run with ``keep=None``) hop by hop to this file.
    overwrite : bool
        Replace an existing ``csv`` / ``json`` file.

    Returns
    -------
    TimelineResult

    Notes
    -----
    t_ini is the first frame of the window.  Cation displacement
    |r(t) − r(t_ini)| (unwrapped from t_ini on); ligand angular displacement
    ∠(u_l(t), u_l(t_ini)) with u_l the centre→ligand vector; centre–ligand
    |u_l(t)| and cation–ligand distances use the minimum image.

    References
    ----------
    SPEC §5; paper 003 Fig. 3b; paper 002 Figs. S3–S8.
    """
    return Timeline(cation, center=center, ligand=ligand, cutoff=cutoff, cluster=cluster, polyanions=polyanions,
                    hops=hops, hop=hop, hop_a=hop_a, hop_residence=hop_residence, hop_window=hop_window,
                    half_width=half_width, n_nearest=n_nearest, memory=memory, progress=progress,
                    use_ext=use_ext, keep=keep, csv=csv, json=json, overwrite=overwrite, max_hops=max_hops).run(
        traj, start=start, stop=stop, step=step)
