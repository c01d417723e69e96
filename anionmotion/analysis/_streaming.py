"""Streaming helpers shared by the spectra (VACF, libration) and structure (density, g(r)) analyses.

Two ways of splitting a streamed analysis into independent tasks, each of
which can run under a ``mapper`` (``mapper(function, items) -> results`` in
order: the built-in :func:`map`, or one that submits Dask tasks such as the
batch runner's):

* **row blocks of an all-origin correlation** (:func:`correlate_store`): the
  series of a :class:`~anionmotion.analysis.base.SeriesStore` (one row per
  atom × component) are transformed block by block; each task returns the
  weighted power spectrum of its rows, the spectra are summed in block order
  and one inverse FFT gives the origin sums.  Serial and mapped runs use the
  same blocks, so they agree bit for bit; the in-memory and the out-of-core
  store give the same rows, so they agree bit for bit as well.
* **frame blocks of a histogram** (:func:`run_frame_blocks`): each task reads
  frames ``start:stop:step`` of the trajectory (or opens the file itself when
  given a path, for process or remote workers) and returns its partial
  accumulators, which the caller merges in block order (integer counts:
  exactly; float sums: to rounding).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..errors import OptionError
from ..kernels.correlate import acf_from_power, acf_nfft, acf_power_rows
from .base import AnalysisBase, FrameRange, format_bytes

__all__ = ["stream_chunks", "MAX_CHUNK_BYTES", "capped_chunk_frames", "acf_fixed_bytes", "acf_row_bytes",
           "check_acf_memory", "correlate_store",
           "frame_blocks", "run_frame_blocks", "open_source"]


def stream_chunks(traj, need_unwrap, frames_per_chunk, atoms, *, start=None, stop=None, step=None, progress=None,
                  desc=None):
    """``traj.iter_chunks`` that skips the unwrapping step when the caller does not need continuous positions.

    Density grids and g(r) wrap positions anyway, and a VACF from file velocities never looks at them:
    skipping the unwrap saves two coordinate transforms per frame and spurious :class:`UnwrapWarning`\\ s on
    coarsely sampled runs.  The trajectory's own setting is left untouched.
    """
    yield from traj.iter_chunks(frames_per_chunk, atoms, start=start, stop=stop, step=step, progress=progress,
                                desc=desc, unwrap=bool(traj.unwrap and need_unwrap))


MAX_CHUNK_BYTES = 128 * 1024 ** 2
"""Largest working memory of one streamed chunk (bytes): bigger chunks are not faster, only heavier."""


def capped_chunk_frames(analysis) -> int:
    """Frames per chunk of an :class:`AnalysisBase`: its budget share, at most :data:`MAX_CHUNK_BYTES` of work."""
    n_read = len(analysis._atoms())
    bpf = max(int(analysis._bytes_per_frame(n_read)), 1)
    return max(1, min(AnalysisBase._chunk_frames(analysis), MAX_CHUNK_BYTES // bpf))


# ---------------------------------------------------------------------------- row blocks of an ACF
def acf_fixed_bytes(n_frames, n_w) -> int:
    """Bytes of the summed power spectra and the inverse transform of an ACF of ``n_frames`` frames."""
    nfft = acf_nfft(n_frames)
    return int(8 * (nfft // 2 + 1) * n_w + 8 * nfft * n_w)


def acf_row_bytes(n_frames) -> int:
    """Working bytes per row of a block: the row read back, its complex transform and its power."""
    nfft = acf_nfft(n_frames)
    nf = nfft // 2 + 1
    return int(8 * n_frames + 16 * nf + 8 * nf)


def check_acf_memory(budget, n_frames, n_w, what, memory):
    """Raise :class:`OptionError` when ``budget`` cannot hold the transform of one row plus the summed spectra."""
    need = acf_fixed_bytes(n_frames, n_w) + acf_row_bytes(n_frames)
    if need > 0.5 * budget:
        raise OptionError(f"memory={memory!r} is too small for {what} and {n_frames} frames; the all-origin "
                          f"correlation needs at least {format_bytes(2 * need)} (give --memory / memory= "
                          f"of at least {2 * need / 2 ** 20:.1f} MB)")


def _power_task(item):
    """One row block: read its rows (array, or (path, n_frames, r0, nr) of a scratch file) → weighted power."""
    src, nfft, weights = item
    if isinstance(src, tuple):
        path, n_frames, r0, nr = src
        rows = np.fromfile(path, dtype=np.float64, count=nr * n_frames, offset=8 * r0 * n_frames)
        rows = rows.reshape(nr, n_frames)
    else:
        rows = src
    return acf_power_rows(rows, nfft, weights=weights)


def correlate_store(store, weights, n_lags, *, budget, fraction=0.5, mapper=None, bar=None, rows_per_block=None):
    """Exact all-origin origin sums of every row of a :class:`SeriesStore`, computed in blocks of rows.

    Parameters
    ----------
    store : SeriesStore
        ``n_rows`` series of length T (in memory or in a scratch file).
    weights : ndarray, shape (n_rows, n_w)
        Weight columns (e.g. one indicator and one mass column per species).
    n_lags : int
    budget : int, bytes
        Memory budget; ``fraction`` of it bounds the rows read back at once (when the store is in memory its
        share of the budget is already taken, so the transform uses the rest).
    mapper : callable, optional
        ``mapper(function, items)`` returning the results in order (default the built-in ``map``); with a
        scratch-file store each task reads its own rows from the file (workers must see the same disk).
    bar : progress bar, optional
        Advanced by the rows of each finished block.
    rows_per_block : int, optional
        Force the block size (tests).

    Returns
    -------
    sums : ndarray, shape (n_lags, n_w)
        S_j(m) = Σ_r w_rj Σ_{t=0}^{T−1−m} x_r(t) x_r(t+m), identical to :func:`acf_sum` of the whole set up to
        floating-point summation order.
    n_blocks : int
    """
    T, n_rows = store.n_frames, store.n_rows
    weights = np.asarray(weights, dtype=np.float64).reshape(n_rows, -1)
    n_w = weights.shape[1]
    nfft = acf_nfft(T)
    nf = nfft // 2 + 1
    if rows_per_block is None:
        free = fraction * budget - acf_fixed_bytes(T, n_w)
        rows_per_block = int(max(1, free // max(acf_row_bytes(T), 1)))
        if mapper is not None:
            # every block's spectrum may be held at once by a mapper that gathers its results
            cap = max(1, int((0.25 * budget) // max(8 * nf * n_w, 1)))
            rows_per_block = max(rows_per_block, -(-n_rows // cap))
    rows_per_block = int(max(1, min(int(rows_per_block), n_rows)))
    blocks = [(r0, min(rows_per_block, n_rows - r0)) for r0 in range(0, n_rows, rows_per_block)]
    power = np.zeros((nf, n_w))
    if mapper is None or (not store.in_memory and store.path is None):
        # serial (or an anonymous scratch file other processes cannot open): read each block when it is transformed
        for r0, nr in blocks:
            power += _power_task((store.read_rows(r0, nr), nfft, weights[r0:r0 + nr]))
            if bar is not None:
                bar.update(nr)
        return acf_from_power(power, nfft, n_lags), len(blocks)
    items = [(store.read_rows(r0, nr) if store.in_memory else (store.path, T, r0, nr), nfft, weights[r0:r0 + nr])
             for r0, nr in blocks]
    for (src, _, w), p in zip(items, mapper(_power_task, items)):
        power += p
        if bar is not None:
            bar.update(len(w))
    return acf_from_power(power, nfft, n_lags), len(blocks)


# ---------------------------------------------------------------------------- frame blocks
def frame_blocks(frame_range: FrameRange, block_frames) -> list:
    """Split the analysed frames into consecutive :class:`FrameRange` blocks of at most ``block_frames`` frames."""
    b = int(block_frames)
    if b < 1:
        raise OptionError(f"block_frames must be a positive number of frames; got {block_frames!r}")
    start, stop, step = frame_range
    n = len(frame_range)
    out = []
    for k0 in range(0, n, b):
        k1 = min(n, k0 + b)
        out.append(FrameRange(start + k0 * step, min(stop, start + k1 * step), step))
    return out


@contextmanager
def open_source(source):
    """A Trajectory as is, or ``path`` / ``(path, reader_options)`` opened (and closed afterwards)."""
    if isinstance(source, (str, tuple)):
        import anionmotion

        path, opts = (source, None) if isinstance(source, str) else source
        traj = anionmotion.open(path, **(opts or {}))
        try:
            yield traj
        finally:
            traj.close()
    else:
        yield source


def _frame_block_task(item):
    """One frame block: stream its frames through a fresh accumulator and return the accumulator's state."""
    acc_cls, plan, source, fr, fpc, atoms, unwrap = item
    acc = acc_cls(plan)
    with open_source(source) as traj:
        for chunk in traj.iter_chunks(fpc, atoms, start=fr.start, stop=fr.stop, step=fr.step, progress=False,
                                      unwrap=bool(traj.unwrap and unwrap), velocities=False):  # positions only
            acc.add(chunk)
    return acc.state()


def run_frame_blocks(acc_cls, plan, source, blocks, *, frames_per_chunk, atoms, unwrap, mapper=None, bar=None):
    """Run ``acc_cls(plan)`` over every frame block (as mapper tasks) and yield the states in block order.

    ``acc_cls`` is a module-level class with ``__init__(plan)``, ``add(chunk)`` and ``state()``; the caller
    merges the yielded states in order.
    """
    items = [(acc_cls, plan, source, fr, frames_per_chunk, atoms, unwrap) for fr in blocks]
    for fr, st in zip(blocks, (mapper or map)(_frame_block_task, items)):
        if bar is not None:
            bar.update(len(fr))
        yield st


def cell_stats(traj, frame_range: FrameRange, *, block=65536):
    """Mean cell, whether every analysed frame has exactly the first frame's cell, and the smallest
    perpendicular width, computed over blocks of frames (no strided copy of every cell).

    Returns
    -------
    mean_cell : ndarray, shape (3, 3), Å
    constant : bool
        Every analysed cell equals the first bit for bit.
    min_width : float, Å
        Smallest perpendicular width of any analysed cell.
    """
    from ..kernels.pbc import perpendicular_widths

    cells = traj.cells
    start, stop, step = frame_range
    n = len(frame_range)
    if getattr(traj, "cell_constant", False):  # one cell for every frame (a broadcast view): O(1)
        c0 = np.array(cells[start], dtype=np.float64)
        return c0, True, float(perpendicular_widths(c0[None]).min())
    total = np.zeros((3, 3))
    first = np.asarray(cells[start], dtype=np.float64)
    constant = True
    wmin = np.inf
    for k0 in range(0, n, block):
        k1 = min(n, k0 + block)
        c = np.asarray(cells[start + k0 * step:start + (k1 - 1) * step + 1:step], dtype=np.float64)
        total += c.sum(axis=0)
        constant = constant and bool(np.all(c == first))
        wmin = min(wmin, float(perpendicular_widths(c).min()))
    return total / n, constant, wmin
