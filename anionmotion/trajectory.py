"""The trajectory model (SPEC §0–1): one object over every file format.

:func:`anionmotion.open` returns a :class:`Trajectory`.  It knows the number
of atoms and frames, the species, masses, charges and times without parsing
every number (format readers keep a frame-offset index), reads any frame range
into memory (:meth:`Trajectory.read`) or streams it in bounded memory
(:meth:`Trajectory.iter_chunks`), and always hands out **unwrapped** Cartesian
positions in Å, velocities in Å/ps, cells in Å (rows a, b, c) and times in ps.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from ._validate import as_array
from .elements import masses_of, normalize_symbol
from .errors import OptionError, OptionTypeError, TrajectoryError, UnwrapWarning
from .io.base import BaseReader, RawFrames, ReaderOptions
from .kernels.unwrap import cart_to_frac, frac_to_cart, unwrap_fractional_summary

__all__ = ["Chunk", "Trajectory", "open", "from_arrays", "UNWRAP_JUMP_LIMIT"]

UNWRAP_JUMP_LIMIT = 0.35
"""Fractional frame-to-frame jump above which unwrapping is ambiguous (SPEC §1)."""

_CELL_BLOCK = 65536
"""Frames whose cells are read and checked at once by :attr:`Trajectory.cells` (4.5 MiB of float64)."""


@dataclass(frozen=True)
class Chunk:
    """A block of frames in memory.

    Attributes
    ----------
    positions : ndarray, shape (n_frames, n_atoms, 3), float64, Å
        Unwrapped Cartesian positions.
    velocities : ndarray, shape (n_frames, n_atoms, 3), float64, Å/ps, or None
    cells : ndarray, shape (n_frames, 3, 3), float64, Å
        Rows are the lattice vectors a, b, c.
    times : ndarray, shape (n_frames,), float64, ps
    frame_indices : ndarray, shape (n_frames,), int64
        Index of each frame in the trajectory.
    atom_indices : ndarray, shape (n_atoms,), int64
        Index (in id order) of each atom in the trajectory.
    species : ndarray, shape (n_atoms,), str
        Element symbol of each atom.
    masses : ndarray, shape (n_atoms,), float64, amu
    origins : ndarray, shape (n_frames, 3), float64, Å
        Cell origin (LAMMPS box lo; zero for most formats).
    """

    positions: np.ndarray
    velocities: Optional[np.ndarray]
    cells: np.ndarray
    times: np.ndarray
    frame_indices: np.ndarray
    atom_indices: np.ndarray
    species: np.ndarray
    masses: np.ndarray
    origins: np.ndarray

    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[1]

    @property
    def frame_offset(self) -> int:
        """Index of the first frame of the chunk in the trajectory."""
        return int(self.frame_indices[0]) if len(self.frame_indices) else 0

    @property
    def volumes(self) -> np.ndarray:
        """Cell volume of every frame, Å³."""
        return np.abs(np.linalg.det(self.cells))

    def fractional(self, wrap: bool = True) -> np.ndarray:
        """Fractional coordinates relative to the cell origin, in [0, 1) when ``wrap``."""
        pos = self.positions - self.origins[:, None, :]
        s = cart_to_frac(pos, self.cells)
        if wrap:
            s -= np.floor(s)
        return s

    def __repr__(self):
        return (f"Chunk(n_frames={self.n_frames}, n_atoms={self.n_atoms}, frames {self.frame_offset}.."
                f"{self.frame_offset + self.n_frames - 1}, velocities={'yes' if self.velocities is not None else 'no'})")


class Trajectory:
    """A trajectory file (or in-memory arrays) behind one interface.

    Do not construct directly: use :func:`anionmotion.open` or
    :func:`anionmotion.from_arrays`.

    Attributes
    ----------
    path : str
    format : str
        Name of the reader (``lammps``, ``netcdf``, ``cp2k``, ``xdatcar``, ``extxyz``, ``mdtraj``, ``memory``).
    n_atoms, n_frames : int
    species : ndarray of str, shape (n_atoms,)
    masses : ndarray, shape (n_atoms,), amu
    charges : ndarray, shape (n_atoms,), e, or None
    has_velocities : bool
    coord_style : str
        How the file stores positions: ``wrapped``, ``fractional``, ``unwrapped`` or ``image`` (wrapped + image flags).
    metadata : dict
        File-level attributes (e.g. ``constraint_mode`` written by ``anionmotion md``).
    """

    def __init__(self, reader: BaseReader, *, frame_interval: Optional[float] = None, progress: Optional[bool] = None,
                 unwrap: bool = True):
        self._reader = reader
        self.path = reader.path
        self.format = reader.format_name
        self.n_atoms = int(reader.n_atoms)
        self.n_frames = int(reader.n_frames)
        self.species = np.asarray([normalize_symbol(s) for s in reader.species], dtype=object)
        m = reader.masses
        if m is None:
            m = masses_of(self.species)
        self.masses = np.asarray(m, dtype=np.float64)
        self.charges = None if reader.charges is None else np.asarray(reader.charges, dtype=np.float64)
        self.has_velocities = bool(reader.has_velocities)
        self.coord_style = reader.coord_style
        self.metadata = dict(reader.metadata)
        self.units = dict(reader.units)
        self.progress = progress
        self.unwrap = unwrap
        if frame_interval is not None:
            if not np.isfinite(frame_interval) or frame_interval <= 0:
                raise OptionError(f"frame_interval must be a positive time in ps; got {frame_interval}")
        self._frame_interval = frame_interval
        self._times = None
        self._cells = None
        self._cell0 = None

    # ------------------------------------------------------------------ time
    @property
    def times(self) -> np.ndarray:
        """Time of every frame, ps (non-uniform spacing is kept)."""
        if self._times is None:
            t = self._reader.times
            if t is None:
                if self._frame_interval is None:
                    raise OptionError(self._missing_time_message())
                t = self._frame_interval * np.arange(self.n_frames, dtype=np.float64)
            t = np.asarray(t, dtype=np.float64)
            if len(t) != self.n_frames:
                raise TrajectoryError(f"{len(t)} times for {self.n_frames} frames", path=self.path)
            bad = np.nonzero(np.diff(t) <= 0)[0]
            if len(bad):
                i = int(bad[0]) + 1
                raise TrajectoryError(f"time does not increase: {t[i]:g} ps after {t[i - 1]:g} ps "
                                      f"(frames {i - 1} and {i}); times must be strictly increasing",
                                      path=self.path, frame=i)
            if not np.all(np.isfinite(t)):
                i = int(np.nonzero(~np.isfinite(t))[0][0])
                raise TrajectoryError("time is NaN or inf", path=self.path, frame=i)
            self._times = t
        return self._times

    @property
    def has_times(self) -> bool:
        """True when times are known (from the file or from ``frame_interval``)."""
        return self._reader.times is not None or self._frame_interval is not None

    def _missing_time_message(self):
        if self.format == "lammps":
            return (f"{self.path}: the dump has TIMESTEP values but the MD time step is unknown; give "
                    "timestep= (ps) / --timestep, e.g. --timestep 0.001 for 1 fs in units metal, "
                    "or frame_interval= / --frame-interval (ps between stored frames)")
        return (f"{self.path}: the file carries no time information; give the time between stored frames "
                "with frame_interval= / --frame-interval (ps; for VASP, POTIM × NBLOCK / 1000)")

    @property
    def steps(self):
        """MD step numbers of the frames when the file has them, else None."""
        return self._reader.steps

    @property
    def dt(self) -> float:
        """Median time between stored frames, ps."""
        t = self.times
        return float(np.median(np.diff(t))) if len(t) > 1 else 0.0

    @property
    def is_uniform(self) -> bool:
        """Whether the frames are evenly spaced in time (the package's one rule:
        :func:`anionmotion.analysis.base.uniform_spacing`, 1e-6 relative or float32 rounding of the times)."""
        from .analysis.base import uniform_spacing

        return uniform_spacing(self.times)[0]

    # ---------------------------------------------------------------- cells
    @property
    def cells(self) -> np.ndarray:
        """Cell of every frame, shape (n_frames, 3, 3), Å, rows a, b, c.

        When every frame has the same cell (:attr:`cell_constant`) this is a
        read-only broadcast view of the one cell: it costs 72 bytes, not
        72 bytes per frame (index it, or use ``cells[0]``; do not write to it).
        The cells are checked (positive volume) block by block as they are read.
        """
        if self._cells is None:
            self._load_cells()
        return self._cells

    @property
    def cell_constant(self) -> bool:
        """True when every frame has the same cell (bit for bit); :attr:`cells` is then a broadcast view."""
        if self._cells is None:
            self._load_cells()
        return self._cell0 is not None

    @property
    def volume(self) -> float:
        """Time-averaged cell volume, Å³ (the one cell's volume when the cell is constant, O(1))."""
        if self.cell_constant:
            return float(abs(np.linalg.det(self._cell0)))
        return float(np.mean(np.abs(np.linalg.det(self.cells))))

    def _load_cells(self):
        """Read the cells once, in blocks of frames: keep one cell when they are all equal, else all of them."""
        n = self.n_frames
        self._cell0 = None
        hint = getattr(self._reader, "constant_cell", lambda: None)()
        if hint is not None and n:
            c0 = np.array(hint, dtype=np.float64).reshape(3, 3)
            self._set_constant_cell(c0)
            return
        full = None
        c0 = None
        for s in range(0, n, _CELL_BLOCK):
            e = min(n, s + _CELL_BLOCK)
            blk = np.ascontiguousarray(self._reader.read_cells(s, e), dtype=np.float64)
            if blk.shape != (e - s, 3, 3):
                raise TrajectoryError(f"the reader returned cells of shape {blk.shape} for frames {s}..{e - 1}; "
                                      f"expected ({e - s}, 3, 3)", path=self.path)
            self._check_cells(blk, s)
            if c0 is None:
                c0 = np.array(blk[0])
            if full is None:
                # bit-for-bit equality (also tells -0.0 from 0.0): a broadcast view must give exactly the stored cells
                if np.all(blk.reshape(-1, 9).view(np.int64) == c0.reshape(9).view(np.int64)):
                    continue
                full = np.empty((n, 3, 3))
                full[:s] = c0
            full[s:e] = blk
        if full is not None:
            self._cells = full
        elif c0 is not None:
            self._set_constant_cell(c0)
        else:
            self._cells = np.zeros((0, 3, 3))

    def _set_constant_cell(self, c0):
        self._check_cells(c0[None], 0)
        c0.flags.writeable = False
        self._cell0 = c0
        self._cells = np.broadcast_to(c0, (self.n_frames, 3, 3))

    def _check_cells(self, cells, frame0):
        vol = np.linalg.det(cells)
        bad = np.nonzero(~(vol > 1e-12))[0]
        if len(bad):
            i = int(bad[0])
            raise TrajectoryError(f"cell volume is {vol[i]:g} Å³ (cell {np.array2string(cells[i], precision=4)}); "
                                  "expected a positive volume (right-handed a, b, c)",
                                  path=self.path, frame=frame0 + i)

    # ------------------------------------------------------------ selection
    def select(self, atoms=None, *, species=None, indices=None) -> np.ndarray:
        """Indices (in id order) of a selection.

        Parameters
        ----------
        atoms : str, sequence of str, sequence of int, slice or None
            ``"Li"``, ``"Li P"``, ``["Li", "Na"]``, ``[0, 5, 7]``, ``slice(0, 10)``; None = all atoms.
        species : str or sequence of str, optional
            Select by element symbol.
        indices : sequence of int, optional
            Select by index.

        Returns
        -------
        ndarray of int64, sorted.
        """
        if species is not None:
            return self._select_species(species)
        if indices is not None:
            return self._select_indices(indices)
        if atoms is None:
            return np.arange(self.n_atoms, dtype=np.int64)
        if isinstance(atoms, slice):
            return np.arange(self.n_atoms, dtype=np.int64)[atoms]
        if isinstance(atoms, str):
            return self._select_species(atoms)
        arr = np.asarray(atoms)
        if arr.dtype.kind in "US" or arr.dtype == object:
            return self._select_species(list(arr))
        return self._select_indices(arr)

    def _select_species(self, species):
        if isinstance(species, str):
            species = species.replace(",", " ").split()
        elif isinstance(species, (list, tuple, set, frozenset, np.ndarray)) and all(isinstance(x, (str, np.str_))
                                                                                for x in species):
            species = sorted(species) if isinstance(species, (set, frozenset)) else list(species)
        else:
            raise OptionTypeError(f"species must be a symbol or a list of symbols (e.g. 'Li' or ['Li', 'Na']); "
                                  f"got {species!r}")
        if not species:
            raise OptionError("species selection is empty; give at least one element symbol")
        wanted = [normalize_symbol(s) for s in species]
        present = sorted(set(self.species))
        missing = [s for s in wanted if s not in present]
        if missing:
            raise OptionError(f"{self.path}: no atoms of species {', '.join(missing)}; "
                              f"the trajectory has {', '.join(present)}")
        return np.nonzero(np.isin(self.species, wanted))[0].astype(np.int64)

    def _select_indices(self, indices):
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self.n_atoms,):
                raise OptionError(f"a boolean atom mask must have length {self.n_atoms}; got {idx.shape}")
            return np.nonzero(idx)[0].astype(np.int64)
        if idx.dtype.kind not in "iu":
            raise OptionTypeError(f"atom indices must be integers; got {idx.dtype}")
        idx = idx.astype(np.int64).ravel()
        if len(idx) and (idx.min() < 0 or idx.max() >= self.n_atoms):
            bad = idx[(idx < 0) | (idx >= self.n_atoms)][0]
            raise OptionError(f"atom index {bad} out of range for {self.n_atoms} atoms")
        if len(np.unique(idx)) != len(idx):
            raise OptionError("atom indices contain duplicates")
        return np.sort(idx)

    def species_counts(self) -> dict:
        """Number of atoms of each species, in order of first appearance."""
        out = {}
        for s in self.species:
            out[s] = out.get(s, 0) + 1
        return out

    # ----------------------------------------------------------------- read
    def frame_range(self, frames=None, *, start=None, stop=None, step=None):
        """The analysed frames as a :class:`~anionmotion.analysis.base.FrameRange` (start, stop, step).

        Parameters
        ----------
        frames : slice, optional
            E.g. ``slice(100, None, 2)``; alternatively ``start``/``stop``/``step``
            (Python slice semantics, negative values count from the end).

        Raises
        ------
        OptionError
            For a step that is not positive (:class:`~anionmotion.errors.OptionTypeError`,
            also a TypeError, for a start/stop/step that is not an integer).
        """
        from ._validate import check_int
        from .analysis.base import FrameRange

        if frames is not None:
            if isinstance(frames, slice):
                start, stop, step = frames.start, frames.stop, frames.step
            else:
                raise OptionTypeError("frames must be a slice (e.g. slice(0, 100, 2)); got "
                                      f"{type(frames).__name__}")
        start = check_int(start, "start frame", allow_none=True)
        stop = check_int(stop, "stop frame", allow_none=True)
        step = check_int(step, "frame step", allow_none=True)
        if step is not None and step <= 0:
            raise OptionError(f"frame step must be positive; got {step}")
        start, stop, step = slice(start, stop, step).indices(self.n_frames)
        return FrameRange(int(start), int(max(stop, start)), int(step))

    def _frame_range(self, frames=None, start=None, stop=None, step=None):
        """Tuple form of :meth:`frame_range` (kept for callers of 0.1)."""
        fr = self.frame_range(frames, start=start, stop=stop, step=step)
        return fr.start, fr.stop, fr.step

    def read(self, atoms=None, frames=None, *, start=None, stop=None, step=None, progress=None,
             velocities=None) -> Chunk:
        """Read a frame range into memory.

        Parameters
        ----------
        atoms : selection, optional
            See :meth:`select`; None = all atoms.
        frames : slice, optional
            Frame range, e.g. ``slice(100, 200)``; alternatively ``start``/``stop``/``step``.
        velocities : bool or None
            See :meth:`iter_chunks` (None: as stored; False: not read; True: required).

        Returns
        -------
        Chunk
            Unwrapped positions (continuous from the first frame read, which
            is taken as stored), velocities, cells and times.
        """
        idx = self.select(atoms)
        lo, hi, st = self.frame_range(frames, start=start, stop=stop, step=step)
        n_out = len(range(lo, hi, st))
        # one output array filled chunk by chunk: peak memory is the result plus one chunk, not twice the result
        pos = np.empty((n_out, len(idx), 3))
        vel = None
        cells = np.empty((n_out, 3, 3))
        times = np.empty(n_out)
        fidx = np.empty(n_out, dtype=np.int64)
        origins = np.empty((n_out, 3))
        k = 0
        for c in self.iter_chunks(frames_per_chunk=1024, atoms=idx, start=lo, stop=hi, step=st, progress=progress,
                                  velocities=velocities):
            n = c.n_frames
            pos[k:k + n] = c.positions
            if c.velocities is not None:
                if vel is None:
                    vel = np.empty_like(pos)
                vel[k:k + n] = c.velocities
            cells[k:k + n] = c.cells
            times[k:k + n] = c.times
            fidx[k:k + n] = c.frame_indices
            origins[k:k + n] = c.origins
            k += n
        return Chunk(pos[:k], vel if vel is None else vel[:k], cells[:k], times[:k], fidx[:k], idx,
                     self.species[idx], self.masses[idx], origins[:k])

    def iter_chunks(self, frames_per_chunk: int = 1000, atoms=None, *, frames=None, start=None, stop=None, step=None,
                    progress=None, desc=None, unwrap=None, velocities=None) -> Iterator[Chunk]:
        """Stream unwrapped positions (and velocities, cells, times) with bounded memory.

        Parameters
        ----------
        frames_per_chunk : int
            Frames per chunk (after striding).
        atoms : selection, optional
            See :meth:`select`.
        frames, start, stop, step :
            Frame range (as :meth:`read`).  With ``step > 1`` every frame in
            between is still read, so that unwrapping stays exact.
        progress : bool or None
            Show a tqdm progress bar; None = only on a terminal.
        unwrap : bool or None
            False hands out positions as stored (for analyses that wrap them
            anyway: density grids, g(r)); None uses the trajectory's setting.
        velocities : bool or None
            None: velocities as stored (None when the file has none); False:
            velocities are not read at all (``Chunk.velocities`` is None — less
            I/O and memory for analyses of positions); True: velocities are
            required (:class:`~anionmotion.errors.OptionError` when the file
            has none).

        Yields
        ------
        Chunk
            Unwrapping is continuous across chunk boundaries.

        Notes
        -----
        Only the selected atoms are read (readers select while reading, see
        :class:`~anionmotion.io.base.BaseReader`), and wrapped positions are
        unwrapped in place in the chunk's own array.
        """
        if frames_per_chunk is None or int(frames_per_chunk) < 1:
            raise OptionError(f"frames_per_chunk must be a positive integer; got {frames_per_chunk}")
        frames_per_chunk = int(frames_per_chunk)
        fr = self.frame_range(frames, start=start, stop=stop, step=step)
        start, stop, step = fr.start, fr.stop, fr.step
        idx = self.select(atoms)
        if velocities is not None:
            velocities = bool(velocities)
            if velocities and not self.has_velocities:
                raise OptionError(f"{self.path}: velocities were asked for but the trajectory stores none")
        times = self.times
        species = self.species[idx]
        masses = self.masses[idx]
        state = None  # (prev_wrapped_frac, prev_unwrapped_frac)
        do_unwrap = self.unwrap if unwrap is None else bool(unwrap)
        n_out = len(range(start, stop, step))
        pbar = _progress(n_out, progress if progress is not None else self.progress, desc or f"reading {self.path}")
        raw_per_read = frames_per_chunk * step
        # with a stride every frame in between is read (exact unwrapping), in sub-blocks of at most
        # max(frames_per_chunk, step) frames: a chunk costs its kept frames plus one sub-block, not step × them
        sub_len = max(step, (frames_per_chunk // step) * step)
        do_vel = velocities is not False

        def block(lo, hi, state):
            if velocities is None:
                raw = self._reader.read(lo, hi, idx)
            else:
                raw = self._reader.read(lo, hi, idx, velocities=velocities)
            return self._process(raw, lo, idx, state, times, species, masses, do_unwrap, do_vel)

        try:
            pos = start
            while pos < stop:
                hi = min(stop, pos + raw_per_read)
                if step == 1:
                    chunk, state = block(pos, hi, state)
                else:
                    chunk, state = self._strided_chunk(block, pos, hi, step, sub_len, state, idx, times, species,
                                                       masses)
                if pbar is not None:
                    pbar.update(chunk.n_frames)
                if chunk.n_frames:
                    yield chunk
                # keep no reference while the next block is read: a consumer that lets the chunk go frees it
                chunk = None
                pos = hi
        finally:
            if pbar is not None:
                pbar.close()

    @staticmethod
    def _strided_chunk(block, lo, hi, step, sub_len, state, idx, times, species, masses):
        """Frames ``lo, lo+step, … < hi`` as one chunk, read and unwrapped in sub-blocks of ``sub_len`` frames.

        ``lo`` is a kept frame and ``sub_len`` a multiple of ``step``, so every
        sub-block starts on a kept frame; the kept frames are copied into
        arrays of the chunk's final size as each sub-block is done.
        """
        fi = np.arange(lo, hi, step, dtype=np.int64)
        n = len(fi)
        out = None
        k = 0
        sub = lo
        while sub < hi:
            sh = min(hi, sub + sub_len)
            ch, state = block(sub, sh, state)
            if out is None:
                out = (np.empty((n,) + ch.positions.shape[1:]),
                       None if ch.velocities is None else np.empty((n,) + ch.velocities.shape[1:]),
                       np.empty((n, 3, 3)), np.empty((n, 3)))
            m = len(range(0, sh - sub, step))
            out[0][k:k + m] = ch.positions[::step]
            if out[1] is not None:
                out[1][k:k + m] = ch.velocities[::step]
            out[2][k:k + m] = ch.cells[::step]
            out[3][k:k + m] = ch.origins[::step]
            k += m
            sub = sh
            del ch
        return Chunk(out[0], out[1], out[2], times[fi], fi, idx, species, masses, out[3]), state

    # ------------------------------------------------------------ internals
    def _process(self, raw: RawFrames, frame0, idx, state, times, species, masses, do_unwrap=True, want_vel=True):
        """Check, convert and unwrap one block of frames.

        Only the selected atoms are in ``raw``.  Wrapped coordinates are
        unwrapped in place in one float64 array of the chunk's size: the
        reader's own when it hands it over (``raw.owned``) or converted from
        float32, otherwise one copy; no further full-size temporaries.
        """
        n = raw.coords.shape[0]
        cells = np.ascontiguousarray(raw.cells, dtype=np.float64)
        self._check_cells(cells, frame0)
        coords = np.ascontiguousarray(raw.coords, dtype=np.float64)
        owned = bool(getattr(raw, "owned", False)) or not np.may_share_memory(coords, raw.coords)
        _check_finite(coords, "coordinates", self.path, frame0, idx)
        vel = raw.velocities if want_vel else None
        if vel is not None:
            vel = np.ascontiguousarray(vel, dtype=np.float64)
            _check_finite(vel, "velocities", self.path, frame0, idx)
        origins = np.zeros((n, 3)) if raw.origins is None else np.asarray(raw.origins, dtype=np.float64)
        if raw.style == "unwrapped" or not do_unwrap:
            pos = coords if raw.style != "fractional" else frac_to_cart(coords, cells, out=coords if owned else None)
        elif raw.images is not None:
            img = np.asarray(raw.images, dtype=np.float64)
            if raw.style == "fractional":
                if owned:
                    coords += img
                    pos = frac_to_cart(coords, cells, out=coords)
                else:
                    pos = frac_to_cart(coords + img, cells)
            else:
                shift = np.einsum("tik,tkl->til", img, cells)
                if owned:
                    coords += shift
                    pos = coords
                else:
                    pos = coords + shift
        else:
            if raw.style == "fractional":
                frac = coords
            else:
                if raw.origins is not None:
                    # r − origin (subtracting zeros would change nothing, bit for bit, so it is skipped)
                    if owned:
                        coords -= origins[:, None, :]
                        shifted = coords
                    else:
                        shifted = coords - origins[:, None, :]
                        owned = True
                else:
                    shifted = coords
                frac = cart_to_frac(shifted, cells, out=shifted if owned else None)
                owned = True
            if state is None:
                if n == 0:
                    return self._chunk(coords, vel, cells, frame0, idx, times, species, masses, origins), state
                state = (frac[0].copy(), frac[0].copy())
            unwrapped, jumps = unwrap_fractional_summary(frac, state[0], state[1], UNWRAP_JUMP_LIMIT,
                                                         out=frac if owned else None)
            self._warn_jumps(jumps, n, frame0, idx)
            pos = frac_to_cart(unwrapped, cells, out=unwrapped)
            if raw.style != "fractional":
                pos += origins[:, None, :]
        return self._chunk(pos, vel, cells, frame0, idx, times, species, masses, origins), state

    def _chunk(self, pos, vel, cells, frame0, idx, times, species, masses, origins):
        n = pos.shape[0]
        fi = np.arange(frame0, frame0 + n, dtype=np.int64)
        return Chunk(pos, vel, cells, times[frame0:frame0 + n], fi, idx, species, masses, origins)

    def _warn_jumps(self, jumps, n, frame0, idx):
        """UnwrapWarning for a block of ``n`` frames from the summary (n_over, frame, atom, largest) of its jumps."""
        n_over, t, i, largest = jumps
        if not n_over:
            return
        warnings.warn(
            f"{self.path}: {n_over} frame-to-frame jump(s) larger than {UNWRAP_JUMP_LIMIT} of a cell vector "
            f"in frames {frame0}..{frame0 + n - 1}; largest: atom {int(idx[i])} ({self.species[idx[i]]}) "
            f"moved {largest:.3f} of a cell vector into frame {frame0 + t}. The trajectory is too coarsely "
            "sampled for unambiguous unwrapping (SPEC §1)",
            UnwrapWarning, stacklevel=4)

    # ------------------------------------------------------------- protocol
    def close(self):
        self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self):
        return self.n_frames

    def __repr__(self):
        counts = " ".join(f"{k}{v}" for k, v in self.species_counts().items())
        return (f"<anionmotion.Trajectory {self.path!r} format={self.format} n_atoms={self.n_atoms} "
                f"({counts}) n_frames={self.n_frames}>")


def _check_finite(arr, what, path, frame0, idx):
    if arr.size == 0:
        return
    # one summation pass, no temporary: the sum is finite when every element is (and overflow
    # of huge finite values only sends us to the exact check below)
    if np.isfinite(np.add.reduce(arr, axis=None)):
        return
    ok = np.isfinite(arr)
    if ok.all():
        return
    t, i, k = np.argwhere(~ok)[0]
    raise TrajectoryError(f"{what} contain {arr[t, i, k]} (component {'xyz'[k]}); expected finite numbers",
                          path=path, frame=frame0 + int(t), atom=int(idx[i]) if len(idx) else int(i))


def _progress(total, enabled, desc):
    if enabled is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return None
    disable = None if enabled is None else (not enabled)
    return tqdm(total=total, desc=desc, unit="frame", disable=disable, file=sys.stderr, leave=False,
                dynamic_ncols=True)


def open(path, *, format=None, timestep=None, frame_interval=None, lammps_units="metal", types=None, cell=None,
         vel=None, cell_file=None, topology=None, progress=None, unwrap=True) -> Trajectory:
    """Open a trajectory file.

    Parameters
    ----------
    path : str or path-like
    format : str, optional
        One of ``lammps``, ``netcdf``, ``cp2k``, ``xdatcar``, ``extxyz``, ``mdtraj``, ``vasprun``, ``outcar``, ``ase``;
        detected when None.
    timestep : float, optional
        MD time step, ps (LAMMPS: times = TIMESTEP × timestep).
    frame_interval : float, optional
        Time between stored frames, ps (files without times: XDATCAR, plain xyz, DCD).
    lammps_units : {"metal", "real", "electron", "lj"}
        Unit style of a LAMMPS dump (``lj``: reduced units, passed through unconverted with a warning).
    types : dict or str, optional
        LAMMPS type → element, e.g. ``{1: "Li", 2: "P"}`` or ``"1=Li,2=P"``.
    cell : array_like (3, 3) or (3,), optional
        Cell (Å) for files without one.
    vel, cell_file : str, optional
        CP2K velocity / cell file when not found next to the positions.
    topology : str, optional
        Topology for MDTraj formats.
    progress : bool, optional
        Progress bars (None = only on a terminal).
    unwrap : bool
        Unwrap positions (SPEC §1); default True.

    Returns
    -------
    Trajectory
    """
    from .io import open_reader

    reader = open_reader(path, format=format, timestep=timestep, frame_interval=frame_interval,
                         lammps_units=lammps_units, types=types, cell=cell, vel=vel, cell_file=cell_file,
                         topology=topology)
    return Trajectory(reader, frame_interval=frame_interval, progress=progress, unwrap=unwrap)


# ------------------------------------------------------------------------ memory
class MemoryReader(BaseReader):
    """Reader over arrays already in memory (used by :func:`from_arrays`)."""

    format_name = "memory"
    description = "arrays in memory"

    def __init__(self, positions, cells, times, species, *, velocities=None, masses=None, charges=None,
                 style="unwrapped", images=None, origins=None, path="<memory>", metadata=None):
        super().__init__(path, ReaderOptions())
        self._pos = as_array(positions, "positions", shape=(None, None, 3))
        n_frames, n_atoms = self._pos.shape[:2]
        cells = np.asarray(cells, dtype=np.float64)
        self._cell = None
        if cells.shape == (3, 3):
            self._cell = np.array(cells)
            cells = np.broadcast_to(self._cell, (n_frames, 3, 3))
        self._cells = as_array(cells, "cells", shape=(n_frames, 3, 3))
        self._vel = None if velocities is None else as_array(velocities, "velocities", shape=(n_frames, n_atoms, 3))
        self._img = None if images is None else np.asarray(images).reshape(n_frames, n_atoms, 3)
        self._origins = None if origins is None else as_array(origins, "origins", shape=(n_frames, 3))
        if style not in ("wrapped", "fractional", "unwrapped"):
            raise OptionError(f"invalid style {style!r}; choose one of wrapped, fractional, unwrapped")
        self._style = style
        self.n_atoms, self.n_frames = n_atoms, n_frames
        species = np.asarray(species, dtype=object).ravel()
        if len(species) != n_atoms:
            raise ValueError(f"species must have length n_atoms = {n_atoms}; got {len(species)}")
        self.species = species
        self.masses = None if masses is None else as_array(masses, "masses", shape=(n_atoms,))
        self.charges = None if charges is None else as_array(charges, "charges", shape=(n_atoms,))
        self.has_velocities = self._vel is not None
        self.coord_style = "image" if self._img is not None else style
        self.times = None if times is None else as_array(times, "times", shape=(n_frames,))
        self.units = {"length": "Å", "time": "ps", "velocity": "Å/ps"}
        self.metadata = dict(metadata or {})

    def read(self, start, stop, atoms=None, velocities=None):
        sel = slice(None) if atoms is None else np.asarray(atoms, dtype=np.int64)
        if not isinstance(sel, slice) and len(sel) == self.n_atoms and np.array_equal(sel, np.arange(self.n_atoms)):
            sel = slice(None)  # every atom in order: views of the arrays, no copy
        p = self._pos[start:stop][:, sel]
        vel = None if self._vel is None or velocities is False else self._vel[start:stop][:, sel]
        return RawFrames(
            coords=p, style=self._style, cells=self._cells[start:stop],
            times=None if self.times is None else self.times[start:stop],
            velocities=vel,
            images=None if self._img is None else self._img[start:stop][:, sel],
            origins=None if self._origins is None else self._origins[start:stop],
            owned=not isinstance(sel, slice))  # a selection is a fresh copy; a slice is a view of the caller's data

    def read_cells(self, start, stop):
        return np.array(self._cells[start:stop])

    def constant_cell(self):
        return self._cell if self._cell is not None else None


def from_arrays(positions, cells, times=None, species=None, *, velocities=None, masses=None, charges=None,
                style="unwrapped", images=None, frame_interval=None, metadata=None, path="<memory>") -> Trajectory:
    """Make a :class:`Trajectory` from arrays in memory.

    Parameters
    ----------
    positions : array_like, shape (n_frames, n_atoms, 3), Å (fractional if ``style="fractional"``)
    cells : array_like, shape (3, 3) or (n_frames, 3, 3), Å, rows a, b, c
    times : array_like, shape (n_frames,), ps, optional
        Or give ``frame_interval``.
    species : sequence of str, length n_atoms
    velocities : array_like, shape (n_frames, n_atoms, 3), Å/ps, optional
    masses, charges : array_like, shape (n_atoms,), optional
        Default masses come from the element table.
    style : {"unwrapped", "wrapped", "fractional"}
        How ``positions`` are given; wrapped input is unwrapped (SPEC §1).
    images : array_like of int, shape (n_frames, n_atoms, 3), optional

    Examples
    --------
    >>> import numpy as np, anionmotion
    >>> pos = np.zeros((5, 2, 3)); pos[:, 1, 0] = np.arange(5)
    >>> traj = anionmotion.from_arrays(pos, np.eye(3) * 10, species=["Li", "Li"], frame_interval=0.1)
    >>> traj.n_frames, traj.times[-1]
    (5, 0.4)
    """
    if species is None:
        raise TypeError("species is required (one element symbol per atom)")
    reader = MemoryReader(positions, cells, times, species, velocities=velocities, masses=masses, charges=charges,
                          style=style, images=images, path=path, metadata=metadata)
    return Trajectory(reader, frame_interval=frame_interval, progress=False)
