"""Cation hops from the long-lived displacement functional (SPEC §3).

``hops(traj, species="Na", a=3.8)`` evaluates h_i(t; a, Δt, t_a) (paper 003
eq. 5) for every selected atom on every frame, finds one event per maximal
run of consecutive h_i = 1 (at the run's centre) and reports the cation jump
frequency (events per cation per ns, paper 000 Fig. 2f).

The positions are streamed in frame chunks that overlap by 2·m_hi frames and
the runs of h = 1 are found online (the open run of every atom is carried
across chunks), so memory is bounded by the budget whatever the trajectory's
length.  The whole h array (one byte per atom and frame) is kept only when
asked (``keep_h=True``) or when it fits 1/8 of the memory budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError
from ..kernels.hops import find_runs, half_separations, hop_functional
from ..kernels.pbc import minimum_image_ref
from ..results import Result
from .base import AnalysisBase

__all__ = ["hops", "Hops", "HopsResult", "nearest_neighbour_distance"]

DEFAULT_RESIDENCE_PS = 3.0
"""Δt of paper 003 (ps)."""
DEFAULT_WINDOW_PS = 9.0
"""t_a of paper 003 (ps)."""


@dataclass(frozen=True, repr=False)
class HopsResult(Result):
    """Hop events of a selection (SPEC §3).

    Attributes
    ----------
    species : str
        Selected species (or ``"selection"`` for an index selection).
    atom_indices : ndarray, shape (n_atoms,), int64
        Trajectory index of each selected atom (column order of :attr:`h`).
    frame_indices : ndarray, shape (n_frames,), int64
        Trajectory index of each analysed frame (row order of :attr:`h`).
    times : ndarray, shape (n_frames,), float64, ps
        Time of each analysed frame.
    h : ndarray, shape (n_frames, n_atoms), uint8, or None
        h_i(t); 0 on the undefined frames (the first and last ``m_hi``).  None
        when it was not kept (``keep_h=False``, or by default when it would
        take more than 1/8 of the memory budget; see :class:`Hops`).
    event_atom : ndarray, shape (n_events,), int64
        Trajectory atom index of each event.
    event_frame : ndarray, shape (n_events,), int64
        Trajectory frame index of each event (centre of its run of h = 1).
    event_time_ps : ndarray, shape (n_events,), float64, ps
        Time of each event.
    event_start_frame, event_stop_frame : ndarray, shape (n_events,), int64
        Trajectory frame index of the first and of the last frame of the run of h = 1.
    a_A : float, Å
        Minimum displacement a.
    residence_ps, window_ps : float, ps
        Δt and t_a.
    observed_ps : float, ps
        Time over which h is defined, (n_frames − 2·m_hi)·dt: the denominator of the frequency.
    jump_frequency_per_ns : float, ns⁻¹
        Events per selected atom per ns.
    jump_frequency_per_atom_per_ns : ndarray, shape (n_atoms,), ns⁻¹
        Events of each atom per ns.
    meta : dict
        Parameters, defaults and how ``a`` was chosen.
    """

    species: str
    atom_indices: np.ndarray
    frame_indices: np.ndarray
    times: np.ndarray
    h: np.ndarray
    event_atom: np.ndarray
    event_frame: np.ndarray
    event_time_ps: np.ndarray
    event_start_frame: np.ndarray
    event_stop_frame: np.ndarray
    a_A: float
    residence_ps: float
    window_ps: float
    observed_ps: float
    jump_frequency_per_ns: float
    jump_frequency_per_atom_per_ns: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        return int(len(self.event_atom))

    @property
    def n_atoms(self) -> int:
        return int(len(self.atom_indices))

    def h_of(self, atom) -> np.ndarray:
        """h_i(t), shape (n_frames,) uint8, of one atom given by its trajectory index."""
        self._need_h()
        col = np.nonzero(self.atom_indices == int(atom))[0]
        if not len(col):
            raise OptionError(f"atom {atom} is not in the selection ({self.species}, {self.n_atoms} atoms)")
        return self.h[:, col[0]]

    def _need_h(self):
        if self.h is None:
            raise OptionError(f"h was not kept ({len(self.frame_indices)} frames × {self.n_atoms} atoms, "
                              f"{self.meta.get('memory_budget_bytes', 0)} bytes of budget); run hops with "
                              "keep_h=True (or a larger memory=)")

    @property
    def events(self) -> list:
        """Events as a list of dicts ``{atom, frame, time_ps, start_frame, stop_frame}``."""
        return [{"atom": int(a), "frame": int(f), "time_ps": float(t), "start_frame": int(s), "stop_frame": int(e)}
                for a, f, t, s, e in zip(self.event_atom, self.event_frame, self.event_time_ps,
                                         self.event_start_frame, self.event_stop_frame)]

    def to_dict(self, include_h: bool = False) -> dict:
        """JSON-ready dict: events, frequencies and parameters (h only when ``include_h``)."""
        from ..results import to_jsonable

        d = {
            "species": self.species,
            "n_atoms": self.n_atoms,
            "n_frames": int(len(self.frame_indices)),
            "a_A": self.a_A,
            "residence_ps": self.residence_ps,
            "window_ps": self.window_ps,
            "observed_ps": self.observed_ps,
            "n_events": self.n_events,
            "events": self.events,
            "jump_frequency_per_ns": self.jump_frequency_per_ns,
            "jump_frequency_per_atom_per_ns": dict(zip(map(str, self.atom_indices.tolist()),
                                                       self.jump_frequency_per_atom_per_ns.tolist())),
            "atom_indices": self.atom_indices,
            "meta": self.meta,
        }
        if include_h:
            self._need_h()
            d["h"] = self.h.T  # atom-major: one row per atom
        return to_jsonable(d)

    def summary(self) -> str:
        m = self.meta
        return "\n".join([
            f"hops of {self.species}: {self.n_atoms} atoms, {len(self.frame_indices)} frames",
            f"a = {self.a_A:.4g} Å ({m.get('a_source', '')}), Δt = {self.residence_ps:g} ps, t_a = {self.window_ps:g} ps "
            f"(m = {m.get('m_lo')}…{m.get('m_hi')} frames)",
            f"events       {self.n_events} over {self.observed_ps:.6g} ps observed",
            f"jump frequency {self.jump_frequency_per_ns:.6g} per cation per ns",
        ])

    def __repr__(self):
        return (f"HopsResult(species={self.species!r}, n_atoms={self.n_atoms}, n_events={self.n_events}, "
                f"a_A={self.a_A:.4g}, jump_frequency_per_ns={self.jump_frequency_per_ns:.4g})")


def nearest_neighbour_distance(traj, atoms, *, start=0, frames=1, block=256) -> float:
    """Median nearest-neighbour distance (Å, minimum image) within a selection.

    Sites are estimated as the positions averaged over the first ``frames``
    frames (removing thermal vibration); the distance from each atom to its
    nearest other selected atom is taken and the median over atoms returned.

    Parameters
    ----------
    traj : Trajectory
    atoms : selection
        See :meth:`Trajectory.select`; at least 2 atoms.
    start : int
        First frame.
    frames : int
        Number of frames averaged from ``start``.
    block : int
        Rows of the pair matrix computed at a time (memory ∝ block · n_atoms; at most 2e6 pairs).

    Notes
    -----
    For more than 1000 atoms the median is taken over 1000 atoms evenly spaced in index
    (each against every atom of the selection).
    """
    idx = traj.select(atoms)
    if len(idx) < 2:
        raise OptionError(f"cannot derive a from the nearest-neighbour distance: the selection has {len(idx)} atom; "
                          "give a explicitly (a= / --a, Å)")
    start = int(start)
    n = max(1, min(int(frames), traj.n_frames - start))
    chunk = traj.read(atoms=idx, start=start, stop=start + n)
    sites = chunk.positions.mean(axis=0)
    cell = chunk.cells.mean(axis=0)
    n = len(idx)
    # at most 1000 atoms (evenly spaced in index) as the rows: the median is then cheap for any selection
    rows = np.unique(np.linspace(0, n - 1, min(n, 1000)).astype(np.int64))
    block = max(1, min(int(block), 2_000_000 // n))  # bounds the (block, n, 3) temporaries
    nearest = np.empty(len(rows))
    for lo in range(0, len(rows), block):
        rr = rows[lo:lo + block]
        d = sites[None, :, :] - sites[rr, None, :]
        d = minimum_image_ref(d, cell)
        r = np.sqrt(np.einsum("ijk,ijk->ij", d, d))
        r[np.arange(len(rr)), rr] = np.inf
        nearest[lo:lo + len(rr)] = r.min(axis=1)
    return float(np.median(nearest))


class Hops(AnalysisBase):
    """Analysis object: long-lived displacements and hop events (SPEC §3).

    Parameters
    ----------
    species : str or selection
        The cations (``"Na"``) or any selection accepted by :meth:`Trajectory.select`.
    a : float or None, Å
        Minimum displacement; None = the median nearest-neighbour distance of
        the selection (sites averaged over the first Δt; see
        :func:`nearest_neighbour_distance`).
    residence : float, ps
        Δt (default 3 ps, paper 003).
    window : float, ps
        t_a (default 9 ps, paper 003).
    memory : int or str, optional
        Memory budget of the analysis (``"500MB"``); default half of the
        available RAM (:func:`~anionmotion.analysis.base.resolve_memory`).
        A quarter of it holds one chunk of positions.
    progress : bool, optional
        Progress bar (None = the trajectory's setting).
    keep_h : bool or None
        Keep h_i(t) for every frame and atom (one byte each) in
        :attr:`HopsResult.h`.  None (default) keeps it when it takes at most
        1/8 of the memory budget; False never (``h`` is then None and the
        memory does not grow with the trajectory length); True always.
    use_ext : bool
        Compiled kernels (True) or the numpy twins.

    Notes
    -----
    h is computed chunk by chunk (chunks overlap by 2·m_hi frames) and its
    runs of ones are found online: the open run of every atom is carried
    across chunk boundaries, so the events are those of the whole h array
    whatever the chunking.

    Examples
    --------
    >>> import numpy as np, anionmotion
    >>> pos = np.zeros((200, 2, 3)); pos[100:, 0, 0] = 4.0          # atom 0 jumps 4 Å at frame 100
    >>> traj = anionmotion.from_arrays(pos, np.eye(3) * 20, species=["Na", "Na"], frame_interval=0.1)
    >>> res = Hops(species="Na", a=3.0, residence=3, window=9).run(traj)
    >>> res.events[0]["atom"], res.events[0]["frame"]
    (0, 99)
    """

    name = "hops"
    needs_velocities = False
    KEEP_H_FRACTION = 0.125
    """h is kept automatically when n_frames · n_atoms bytes ≤ this fraction of the budget."""

    def __init__(self, species, *, a=None, residence=DEFAULT_RESIDENCE_PS, window=DEFAULT_WINDOW_PS, memory=None,
                 progress=None, keep_h=None, use_ext=True):
        super().__init__(memory=memory, progress=progress, use_ext=use_ext)
        self.species = species
        self.a = a
        self.residence = residence
        self.window = window
        self.keep_h = keep_h

    def __repr__(self):
        return (f"Hops(species={self.species!r}, a={self.a!r}, residence={self.residence!r}, window={self.window!r}, "
                f"memory={self.memory!r}, progress={self.progress!r}, keep_h={self.keep_h!r})")

    # -------------------------------------------------------------- hooks
    def _atoms(self):
        return self._idx

    def _setup(self, traj, start=None, stop=None, step=None):
        if self.a is not None and not (isinstance(self.a, (int, float, np.integer, np.floating))
                                       and math.isfinite(self.a) and self.a > 0):
            raise OptionError(f"a must be a positive distance in Å; got {self.a!r}")
        self._idx = traj.select(self.species)
        if len(self._idx) == 0:
            raise OptionError(f"the selection {self.species!r} is empty")
        super()._setup(traj, start, stop, step)

    def _prepare(self):
        traj, n = self.traj, self.n_frames
        if n < 2:
            raise OptionError(f"hops need at least 2 frames; got {n}")
        if not self.uniform:
            d = np.diff(self.times)
            i = int(np.argmax(np.abs(d - d[0])))
            raise OptionError(f"hops need evenly spaced frames; frames {self.frames[i]} and {self.frames[i + 1]} are "
                              f"{d[i]:g} ps apart while the first spacing is {d[0]:g} ps")
        dt = self.dt
        self._m_lo, self._m_hi = half_separations(float(self.residence), float(self.window), dt)
        if n <= 2 * self._m_hi:
            raise OptionError(f"the trajectory is too short for the hop window: {n} frames × {dt:g} ps; h needs more "
                              f"than 2·m_hi = {2 * self._m_hi} frames (t_a = {self.window:g} ps). Shorten window/"
                              "residence")
        fstart = self.frame_range.start
        if self.a is None:
            nframes = max(1, int(round(float(self.residence) / dt)))
            self._a = nearest_neighbour_distance(traj, self._idx, start=fstart, frames=nframes)
            if not self._a > 0:
                raise OptionError(f"the median nearest {self.species}–{self.species} distance is {self._a:g} Å (atoms "
                                  "on top of each other); give a explicitly (a= / --a, Å)")
            self._a_source = (f"median nearest {self.species}–{self.species} distance (minimum image) of the sites "
                              f"averaged over {nframes} frame(s) from frame {fstart}")
        else:
            self._a = float(self.a)
            self._a_source = "given"
        n_at = len(self._idx)
        keep = self.keep_h
        if keep is None:
            keep = n * n_at <= self.KEEP_H_FRACTION * self.budget
        self._h = np.zeros((n, n_at), dtype=np.uint8) if keep else None
        self._runs = _OnlineRuns(n_at)
        self._tail = None
        self._g0 = 0  # position (in analysed frames) of the first frame of the buffer

    def _accumulate(self, chunk):
        buf = chunk.positions if self._tail is None else np.concatenate([self._tail, chunk.positions])
        m = self._m_hi
        if len(buf) > 2 * m:
            hb = hop_functional(buf, a=self._a, m_lo=self._m_lo, m_hi=m, use_ext=self.use_ext)[m:len(buf) - m]
            r0 = self._g0 + m
            if self._h is not None:
                self._h[r0:r0 + len(hb)] = hb
            self._runs.add(hb, r0, use_ext=self.use_ext)
            keep = 2 * m
            self._g0 += len(buf) - keep
            self._tail = buf[len(buf) - keep:].copy()
        else:
            self._tail = buf

    def _finish(self):
        n, m = self.n_frames, self._m_hi
        self._tail = None
        col, s, e = self._runs.close()
        centre = (s + e - 1) // 2
        observed = (n - 2 * m) * self.dt
        counts = np.bincount(col, minlength=len(self._idx)).astype(np.float64)
        per_atom = counts / (observed * 1e-3)
        meta = {
            "residence_ps": float(self.residence), "window_ps": float(self.window),
            "residence_default": self.residence == DEFAULT_RESIDENCE_PS,
            "window_default": self.window == DEFAULT_WINDOW_PS,
            "a_A": self._a, "a_source": self._a_source,
            "dt_ps": self.dt, "m_lo": self._m_lo, "m_hi": self._m_hi,
            "defined_frames": [int(self.frames[m]), int(self.frames[n - 1 - m])],
            "event_rule": "one event per maximal run of consecutive h_i = 1, at its centre frame (start+stop-1)//2",
            "frequency_rule": "events / (n_atoms · observed time), observed = (n_frames − 2·m_hi)·dt",
            "equation": "h_i(t) = Π_{t'=t_a/2−Δt}^{t_a/2} θ(|r_i(t+t') − r_i(t−t')| − a) (paper 003 eq. 5)",
            "h_kept": self._h is not None, "frames_per_chunk": int(getattr(self, "frames_per_chunk", 0)),
            "memory_budget_bytes": int(self.budget),
        }
        order = np.lexsort((col, centre))  # chronological, ties by atom
        return HopsResult(
            species=str(self.species) if isinstance(self.species, str) else "selection",
            atom_indices=self._idx, frame_indices=self.frames, times=self.times, h=self._h,
            event_atom=self._idx[col[order]], event_frame=self.frames[centre[order]],
            event_time_ps=self.times[centre[order]],
            event_start_frame=self.frames[s[order]], event_stop_frame=self.frames[e[order] - 1],
            a_A=self._a, residence_ps=float(self.residence), window_ps=float(self.window),
            observed_ps=float(observed), jump_frequency_per_ns=float(per_atom.mean()),
            jump_frequency_per_atom_per_ns=per_atom, meta=meta)

    def _iterate(self, desc="h(t)"):
        super()._iterate(desc)

    def run(self, traj, start=None, stop=None, step=None) -> HopsResult:
        """Evaluate h on ``traj`` (frames ``start:stop:step``) and return a :class:`HopsResult`."""
        return super().run(traj, start=start, stop=stop, step=step)


class _OnlineRuns:
    """Maximal runs of ones in the columns of a (frames, columns) 0/1 array fed block by block in frame order.

    The open run of every column is carried across blocks; :meth:`close`
    returns the same runs as :func:`~anionmotion.kernels.hops.find_runs` on
    the whole array (frames outside the blocks count as 0), sorted by column
    then start.  Memory: the open runs (one int per column) and the closed
    runs found so far.
    """

    def __init__(self, n_cols):
        self.open_start = np.full(int(n_cols), -1, dtype=np.int64)
        self.end = 0
        self._cols, self._starts, self._stops = [], [], []

    def _emit(self, c, s, e):
        if len(c):
            self._cols.append(np.asarray(c, np.int64))
            self._starts.append(np.asarray(s, np.int64))
            self._stops.append(np.asarray(e, np.int64))

    def add(self, block, r0, *, use_ext=True):
        """Feed rows ``r0 … r0 + len(block) − 1`` (consecutive with the previous block, or after a gap of zeros)."""
        nb = len(block)
        if nb == 0:
            return
        if r0 != self.end:  # a gap of undefined (zero) rows closes every open run
            self._close_open(np.ones(len(self.open_start), bool), self.end)
        col, s, e = find_runs(block, use_ext=use_ext)
        first = np.asarray(block[0], dtype=bool)
        # open runs that do not continue into this block end at its first row
        self._close_open(~first, r0)
        gs = r0 + s
        cont = (s == 0) & (self.open_start[col] >= 0)
        gs[cont] = self.open_start[col[cont]]
        done = e < nb
        self._emit(col[done], gs[done], r0 + e[done])
        self.open_start[:] = -1
        self.open_start[col[~done]] = gs[~done]
        self.end = r0 + nb

    def _close_open(self, mask, stop):
        sel = np.nonzero(mask & (self.open_start >= 0))[0]
        self._emit(sel, self.open_start[sel], np.full(len(sel), stop, np.int64))
        self.open_start[sel] = -1

    def close(self):
        """Close the open runs at the last fed row and return ``(column, start, stop)`` sorted by column, start."""
        self._close_open(np.ones(len(self.open_start), bool), self.end)
        if not self._cols:
            z = np.zeros(0, np.int64)
            return z, z.copy(), z.copy()
        c, s, e = (np.concatenate(x) for x in (self._cols, self._starts, self._stops))
        o = np.lexsort((s, c))
        return c[o], s[o], e[o]


def hops(traj, *, species, a=None, residence=DEFAULT_RESIDENCE_PS, window=DEFAULT_WINDOW_PS, start=None, stop=None,
         step=None, memory=None, progress=None, keep_h=None, use_ext=True) -> HopsResult:
    """Hop events of ``species`` from the long-lived displacement functional (SPEC §3).

    Parameters
    ----------
    traj : Trajectory
    species : str or selection
        Cations to analyse (``"Na"``).
    a : float or None, Å
        Minimum displacement (paper 003: 3.8 Å for NaNbCl6); None = the median
        nearest-neighbour distance within the selection (sites averaged over
        the first Δt of the trajectory), recorded in ``meta["a_source"]``.
    residence : float, ps
        Δt, default 3 ps.
    window : float, ps
        t_a, default 9 ps.
    start, stop, step : int, optional
        Frame range.
    memory : int or str, optional
        Memory budget (``"2GB"``); default half of the available RAM.  Peak
        memory does not grow with the trajectory length unless h is kept.
    progress : bool, optional
    keep_h : bool or None
        Keep the whole h array in the result (None: when it takes at most 1/8
        of the budget; see :class:`Hops`).
    use_ext : bool
        Compiled kernels (True) or the numpy twins.

    Returns
    -------
    HopsResult

    Notes
    -----
    h_i(t; a, Δt, t_a) = Π_{t'=t_a/2−Δt}^{t_a/2} θ(|r_i(t+t') − r_i(t−t')| − a),
    evaluated for t' = m·dt, m = ⌈(t_a/2 − Δt)/dt⌉ … ⌊t_a/2/dt⌋ (at least 1).
    h is defined on frames m_hi … n_frames − 1 − m_hi. One event per maximal
    run of h_i = 1, located at the run's centre frame. Jump frequency =
    events / (n_atoms · (n_frames − 2 m_hi)·dt), per ns.

    References
    ----------
    SPEC §3; paper 003 eq. 5; paper 000 Fig. 2f.
    """
    return Hops(species, a=a, residence=residence, window=window, memory=memory, progress=progress, keep_h=keep_h,
                use_ext=use_ext).run(
        traj, start=start, stop=stop, step=step)
