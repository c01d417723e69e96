"""The analysis base: one place for the frame range, spacing rule, memory budget, chunking and progress.

Every trajectory analysis of the package is a subclass of :class:`AnalysisBase`
(the idea of MDAnalysis's ``AnalysisBase`` and freud's compute objects, shaped
for streaming).  The base owns

* the **frame range** (:meth:`Trajectory.frame_range`, public) and the one
  **uniform-spacing rule** (:func:`uniform_spacing`);
* the **memory budget** (:func:`resolve_memory`: ``memory=`` / ``--memory``,
  default half of the available RAM) and the number of frames per chunk that
  follows from it (:func:`frames_per_chunk`);
* **chunked iteration** with the trajectory's unwrapping (continuous across
  chunks), reading only the atoms the analysis asks for;
* **progress bars** for every phase whose cost grows with the trajectory
  (:meth:`AnalysisBase._bar`);

and hands the chunks to three hooks::

    _prepare()                 # selection, options, allocations (bounded)
    _accumulate(chunk)         # called once per chunk, in frame order
    _finish() -> Result        # everything that needs the whole pass

Two helpers keep memory flat when an exact result needs the whole series:

* :class:`SeriesStore` — ``n_rows`` time series of length T (float64), filled
  frame chunk by frame chunk and read back in blocks of rows.  It lives in
  memory when it fits the budget and otherwise in an atom-major scratch file
  (``pwrite``/``preadv``, deleted afterwards) — the pattern that makes the
  out-of-core MSD exact, reused by C1/C2 and the VACF;
* :class:`FrameTableWriter` — per-frame or per-event tables that grow with T
  go to a CSV file chunk by chunk instead of RAM, while a strided preview of
  at most ``preview`` frames is kept for figures.

Kernels stay the numeric layer (each with its numpy twin); the base only moves data.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .._validate import parse_memory
from ..errors import OptionError

__all__ = ["AnalysisBase", "FrameRange", "SeriesStore", "FrameTableWriter", "uniform_spacing", "resolve_memory",
           "default_memory", "frames_per_chunk", "progress_bar", "format_bytes", "MIN_MEMORY"]

MIN_MEMORY = 256 * 1024 ** 2
"""Smallest default memory budget (bytes)."""

UNIFORM_RTOL = 1e-6
"""Frames are evenly spaced when every spacing equals the first to this relative tolerance (or float32 rounding)."""


# ---------------------------------------------------------------------------- memory
def _proc_kib(path, key):
    """A ``key:  N kB`` value of a /proc file in bytes, or None."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_int(path):
    try:
        with open(path) as fh:
            text = fh.read().strip()
        return None if text in ("", "max") else int(text)
    except (OSError, ValueError):
        return None


def available_memory() -> int:
    """Bytes this process may still use: the smallest of the memory the system has available, the room left
    under the cgroup (container) limit and the room left under the address-space limit (``ulimit -v``)."""
    avail = _proc_kib("/proc/meminfo", "MemAvailable:")
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 4 * 1024 ** 3
    limits = [avail]
    cg_max, cg_cur = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if cg_max is not None and cg_cur is not None:
        limits.append(max(0, cg_max - cg_cur))
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            used = _proc_kib("/proc/self/status", "VmSize:") or 0
            limits.append(max(0, soft - used))
    except (ImportError, ValueError, OSError):
        pass
    return int(min(limits))


def default_memory() -> int:
    """Default memory budget: half of :func:`available_memory` (bytes), at least 256 MiB."""
    return max(MIN_MEMORY, available_memory() // 2)


def resolve_memory(memory) -> int:
    """The memory budget in bytes: ``memory`` parsed (``"2GB"``, int bytes) or :func:`default_memory`."""
    return default_memory() if memory is None else parse_memory(memory)


def frames_per_chunk(bytes_per_frame, budget, *, fraction=0.25, minimum=1, maximum=None) -> int:
    """Frames per streamed chunk so that ``fraction`` of the budget holds one chunk's working arrays."""
    n = int(max(minimum, (fraction * budget) // max(int(bytes_per_frame), 1)))
    if maximum is not None:
        n = min(n, int(maximum))
    return max(1, n)


def format_bytes(n) -> str:
    for unit, f in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= f:
            return f"{n / f:.3g} {unit}"
    return f"{int(n)} bytes"


# ---------------------------------------------------------------------------- frames
@dataclass(frozen=True)
class FrameRange:
    """Frames ``start:stop:step`` of a trajectory (0-based, stop exclusive, step ≥ 1)."""

    start: int
    stop: int
    step: int

    def __len__(self):
        return len(range(self.start, self.stop, self.step))

    @property
    def n_frames(self) -> int:
        return len(self)

    def indices(self) -> np.ndarray:
        """Trajectory frame index of every analysed frame, int64."""
        return np.arange(self.start, self.stop, self.step, dtype=np.int64)

    def __iter__(self):  # start, stop, step = frame_range
        return iter((self.start, self.stop, self.step))


def uniform_spacing(times):
    """The package's one rule for evenly spaced frames.

    Parameters
    ----------
    times : ndarray, shape (n,), ps

    Returns
    -------
    uniform : bool
        Every spacing equals the first to 1e-6 relative, or to the rounding of
        float32 times (AMBER NetCDF stores float32: 0.01 ps steps at 20 ps differ
        by ~4e-6 ps after rounding).
    dt : float or None, ps
        Mean spacing (exactly (t_last − t_first)/(n − 1)) when uniform, else None;
        None also for fewer than 2 frames.
    """
    t = np.asarray(times, dtype=np.float64)
    if len(t) < 2:
        return True, None
    d = np.diff(t)
    if len(t) >= 3:
        tol = max(UNIFORM_RTOL * abs(d[0]), 8.0 * float(np.finfo(np.float32).eps) * float(np.max(np.abs(t))))
        if not np.all(np.abs(d - d[0]) <= tol):
            return False, None
    return True, float((t[-1] - t[0]) / (len(t) - 1))


# ---------------------------------------------------------------------------- progress
class _NoBar:
    def update(self, n=1):
        pass

    def set_description(self, *a, **k):
        pass

    def close(self):
        pass


def progress_bar(total, enabled, desc, unit="frame"):
    """A tqdm bar on stderr (``enabled`` None = only on a terminal, False = never) or a silent stand-in."""
    if enabled is False:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled is None else not enabled, file=sys.stderr,
                leave=False, dynamic_ncols=True)


# ---------------------------------------------------------------------------- base
class AnalysisBase:
    """Base class of the streamed analyses.

    Subclasses set :attr:`name` and implement :meth:`_prepare`,
    :meth:`_accumulate` and :meth:`_finish`; they may override
    :meth:`_atoms` (what to read), :attr:`needs_unwrap` and
    :meth:`_bytes_per_frame` (working memory per frame of a chunk).

    Parameters
    ----------
    memory : int or str, optional
        Memory budget for the whole analysis (``"2GB"``); default half of the
        available RAM.  Peak memory does not grow with the trajectory length.
    progress : bool, optional
        Progress bars (None = the trajectory's setting; on a terminal only).
    use_ext : bool
        Compiled kernels (True) or their numpy twins.

    Notes
    -----
    After :meth:`run` the object holds ``traj``, ``frame_range`` (:class:`FrameRange`),
    ``frames`` (trajectory index of every analysed frame, int64), ``times`` (ps),
    ``n_frames``, ``uniform`` and ``dt`` (:func:`uniform_spacing`; ps or None) and
    ``budget`` (bytes).

    Attributes
    ----------
    traj : Trajectory
    frame_range : FrameRange
    frames : ndarray of int64
        Trajectory index of every analysed frame.
    times : ndarray, ps
    n_frames : int
    uniform : bool
    dt : float or None, ps
    budget : int, bytes
    """

    name = "analysis"
    needs_unwrap = True
    needs_velocities = None  # None: velocities as stored; False: not read; True: required
    chunk_fraction = 0.25

    def __init__(self, *, memory=None, progress=None, use_ext=True):
        self.memory = memory
        self.progress = progress
        self.use_ext = use_ext

    # ------------------------------------------------------------- hooks
    def _prepare(self):  # pragma: no cover - abstract
        pass

    def _accumulate(self, chunk):  # pragma: no cover - abstract
        raise NotImplementedError

    def _finish(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _atoms(self):
        """Atoms to read (selection accepted by :meth:`Trajectory.select`); None = all."""
        return None

    def _bytes_per_frame(self, n_atoms_read) -> int:
        """Working bytes per frame of a chunk: raw + unwrapped float64 positions (and velocities) by default."""
        return int(n_atoms_read) * 3 * 8 * 4

    # ------------------------------------------------------------- driver
    def _setup(self, traj, start=None, stop=None, step=None):
        self.traj = traj
        self.frame_range = traj.frame_range(start=start, stop=stop, step=step)
        self.frames = self.frame_range.indices()
        self.n_frames = len(self.frames)
        if self.n_frames == 0:
            raise OptionError(f"{traj.path}: no frames in the range start={start}, stop={stop}, step={step} "
                              f"({traj.n_frames} frames)")
        self.times = traj.times[self.frames]
        self.uniform, self.dt = uniform_spacing(self.times)
        self.budget = resolve_memory(self.memory)

    def _require_uniform(self, what):
        """Raise the one 'needs evenly spaced frames' error."""
        if self.uniform:
            return
        d = np.diff(self.times)
        i = int(np.argmax(np.abs(d - d[0])))
        raise OptionError(f"{self.traj.path}: {what} needs evenly spaced frames; frames {self.frames[i]} and "
                          f"{self.frames[i + 1]} are {d[i]:g} ps apart while the first spacing is {d[0]:g} ps")

    def _progress_enabled(self):
        return self.progress if self.progress is not None else getattr(self.traj, "progress", None)

    def _bar(self, total, desc, unit="frame"):
        """Progress bar of one phase (reading, transforming, …)."""
        return progress_bar(total, self._progress_enabled(), f"{self.name}: {desc}", unit)

    @contextmanager
    def _phase(self, total, desc, unit="step"):
        bar = self._bar(total, desc, unit)
        try:
            yield bar
        finally:
            bar.close()

    def _chunk_frames(self):
        atoms = self._atoms()
        n_read = self.traj.n_atoms if atoms is None else len(self.traj.select(atoms))
        return frames_per_chunk(self._bytes_per_frame(n_read), self.budget, fraction=self.chunk_fraction)

    def _iterate(self, desc="reading"):
        """Stream the analysed frames through :meth:`_accumulate` with a progress bar."""
        fr = self.frame_range
        fpc = self._chunk_frames()
        self.frames_per_chunk = fpc
        with self._phase(self.n_frames, desc, unit="frame") as bar:
            for chunk in self.traj.iter_chunks(fpc, atoms=self._atoms(), start=fr.start, stop=fr.stop, step=fr.step,
                                               progress=False,
                                               unwrap=bool(self.traj.unwrap and self.needs_unwrap),
                                               velocities=self.needs_velocities):
                self._accumulate(chunk)
                bar.update(chunk.n_frames)

    def _release(self):
        """Free what a run holds outside the result (scratch stores, open files); called after every run,
        also when it fails.  Subclasses that keep a :class:`SeriesStore` in ``self.store`` get it closed."""
        store = getattr(self, "store", None)
        if isinstance(store, SeriesStore):
            store.close()

    def run(self, traj, start=None, stop=None, step=None):
        """Analyse frames ``start:stop:step`` of ``traj`` and return the result object."""
        try:
            self._setup(traj, start, stop, step)
            self._prepare()
            self._iterate()
            return self._finish()
        finally:
            self._release()


# ---------------------------------------------------------------------------- series store
class SeriesStore:
    """``n_rows`` float64 time series of length ``n_frames``: written by frame chunks, read back by row blocks.

    Parameters
    ----------
    n_rows, n_frames : int
    budget : int, bytes
        The store is kept in memory when ``8 · n_rows · n_frames`` ≤ ``in_memory_fraction`` × budget,
        otherwise in a scratch file laid out row-major (row r's series at offset r·T).
    mode : {"auto", "memory", "out-of-core"}
    scratch_dir : str, optional
        Folder of the scratch file (default: the system temp dir); the file is
        created mode 0600.
    keep_path : bool
        Keep the scratch file's name until :meth:`close` (for tasks in other
        processes that open it by :attr:`path`).  By default the name is removed
        right after the file is created, so the disk space is returned when the
        file is closed or the process ends in any way, even killed: no scratch
        file is ever left behind.

    Notes
    -----
    The readback of a block of rows gives exactly the values written (no
    conversion), so an exact all-origin correlation computed block by block
    from the store equals the in-memory one bit for bit when the blocks are
    the same.
    """

    def __init__(self, n_rows, n_frames, *, budget, mode="auto", scratch_dir=None, in_memory_fraction=0.5,
                 prefix="anionmotion-series-", keep_path=False):
        if mode not in ("auto", "memory", "out-of-core"):
            raise OptionError(f"invalid mode {mode!r}; choose one of auto, memory, out-of-core")
        self.n_rows, self.n_frames = int(n_rows), int(n_frames)
        self.nbytes = 8 * self.n_rows * self.n_frames
        self.in_memory = mode == "memory" or (mode == "auto" and self.nbytes <= in_memory_fraction * budget)
        self._fd = None
        self._dir = self._path = None
        self._arr = None
        if self.in_memory:
            self._arr = np.empty((self.n_rows, self.n_frames))
        else:
            self._dir = tempfile.mkdtemp(prefix=prefix, dir=scratch_dir)
            self._path = os.path.join(self._dir, "series_row_major.f64")
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.ftruncate(self._fd, self.nbytes)
            except OSError:
                self.close()
                raise
            if not keep_path:  # anonymous from now on: the kernel frees it with the last descriptor
                os.unlink(self._path)
                os.rmdir(self._dir)
                self._path = self._dir = None

    @property
    def path(self) -> Optional[str]:
        """Name of the scratch file (only with ``keep_path=True``; None when in memory or anonymous)."""
        return self._path

    def write(self, t0, block):
        """Store frames ``t0 … t0+n−1``: ``block`` has shape (n, n_rows) (time first) or (n, …) flattening to it."""
        block = np.asarray(block, dtype=np.float64)
        n = block.shape[0]
        block = block.reshape(n, -1)
        if block.shape[1] != self.n_rows:
            raise ValueError(f"block has {block.shape[1]} rows; the store has {self.n_rows}")
        if t0 < 0 or t0 + n > self.n_frames:
            raise ValueError(f"frames {t0}..{t0 + n - 1} outside the store's {self.n_frames} frames")
        if self.in_memory:
            self._arr[:, t0:t0 + n] = block.T
            return
        rows = np.ascontiguousarray(block.T)
        T = self.n_frames
        for r in range(self.n_rows):
            _pwrite_all(self._fd, memoryview(rows[r]).cast("B"), (r * T + t0) * 8)

    def read_rows(self, r0, nr) -> np.ndarray:
        """Rows ``r0 … r0+nr−1`` as an array of shape (nr, n_frames) (a view when in memory)."""
        if self.in_memory:
            return self._arr[r0:r0 + nr]
        out = np.empty((nr, self.n_frames))
        view = memoryview(out).cast("B")
        off = r0 * self.n_frames * 8
        pos = 0
        while pos < len(view):
            k = os.preadv(self._fd, [view[pos:]], off + pos)
            if k <= 0:  # pragma: no cover - the file was truncated under us
                raise OSError(f"short read from the scratch file {self._path}")
            pos += k
        return out

    def blocks(self, rows_per_block):
        """Yield ``(r0, array (nb, n_frames))`` over all rows in blocks of ``rows_per_block``."""
        rows_per_block = max(1, int(rows_per_block))
        for r0 in range(0, self.n_rows, rows_per_block):
            nb = min(rows_per_block, self.n_rows - r0)
            yield r0, self.read_rows(r0, nb)

    def close(self):
        """Release the memory / delete the scratch file (idempotent)."""
        self._arr = None
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = None
        if self._path is not None and os.path.exists(self._path):
            os.unlink(self._path)
        if self._dir is not None and os.path.isdir(self._dir):
            os.rmdir(self._dir)
        self._path = self._dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):  # pragma: no cover - safety net
        try:
            self.close()
        except Exception:
            pass


def _pwrite_all(fd, view, offset):
    pos = 0
    while pos < len(view):
        k = os.pwrite(fd, view[pos:], offset + pos)
        if k <= 0:  # pragma: no cover
            raise OSError("short write to the scratch file")
        pos += k


# ---------------------------------------------------------------------------- tables that grow with T
class FrameTableWriter:
    """A table that grows with the trajectory, written to CSV chunk by chunk, with a bounded preview.

    Parameters
    ----------
    path : str or None
        CSV file to write (checked with the package's no-overwrite rule by the
        caller); None = nothing is written, only the preview is kept.
    header : sequence of str
    fmt : str or sequence of str
        ``numpy.savetxt`` format(s).
    preview_rows : int
        Rows kept in memory for figures and summaries: every k-th appended row
        with k doubling whenever the preview fills (so the preview always spans
        the whole table evenly and never holds more than ``preview_rows`` rows).

    Attributes
    ----------
    n_rows : int
        Rows appended so far.
    """

    def __init__(self, path, header, *, fmt="%.10g", preview_rows=20000, overwrite=False):
        self.path = None if path is None else os.fspath(path)
        self.header = list(header)
        self.fmt = fmt
        self.preview_rows = int(max(2, preview_rows))
        self.n_rows = 0
        self._stride = 1
        self._preview = []
        self._fh = None
        self._tmp = None
        self._overwrite = overwrite
        if self.path is not None:
            from ..results import check_output, temp_output

            check_output(self.path, overwrite)
            fd, self._tmp = temp_output(self.path)
            self._fh = os.fdopen(fd, "w", encoding="utf-8")
            self._fh.write(",".join(self.header) + "\n")

    def append(self, rows):
        """Append rows (array of shape (n, n_columns))."""
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != len(self.header):
            raise ValueError(f"rows must have shape (n, {len(self.header)}); got {rows.shape}")
        if self._fh is not None and len(rows):
            np.savetxt(self._fh, rows, fmt=self.fmt, delimiter=",")
        # strided preview: keep rows whose global index is a multiple of the stride
        idx = np.arange(self.n_rows, self.n_rows + len(rows))
        keep = rows[idx % self._stride == 0]
        if len(keep):
            self._preview.append(np.array(keep, copy=True))
        self.n_rows += len(rows)
        if sum(len(p) for p in self._preview) > self.preview_rows:
            allp = np.concatenate(self._preview)
            while len(allp) > self.preview_rows:   # kept rows are 0, s, 2s, …: every other one is 0, 2s, 4s, …
                self._stride *= 2
                allp = allp[::2]
            self._preview = [allp]

    def preview(self) -> np.ndarray:
        """The kept rows (every ``stride``-th row of the table), shape (n_kept, n_columns)."""
        if not self._preview:
            return np.zeros((0, len(self.header)))
        return np.concatenate(self._preview)

    @property
    def stride(self) -> int:
        return self._stride

    def close(self):
        """Finish the CSV (atomic rename into place)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            os.replace(self._tmp, self.path)
            self._tmp = None

    def abort(self):
        """Drop the partial CSV (on error)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tmp is not None and os.path.exists(self._tmp):
            os.unlink(self._tmp)
        self._tmp = None
