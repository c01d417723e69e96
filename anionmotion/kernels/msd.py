"""Exact all-origin mean-squared displacement (SPEC §2): façade over ``ext/_msd.pyx`` with numpy twins.

Functional tier (arrays in, arrays out, time axis first):

- :func:`msd_fft` — evenly spaced frames, O(n_atoms · T log T), exact.
- :func:`msd_direct_ref` — the direct double loop over lags and origins (the oracle).
- :func:`msd_pairs` — frames at arbitrary times (log-spaced dumps): every frame
  pair, grouped by time difference, O(n_atoms · T²).

Algorithm of :func:`msd_fft`
----------------------------
For one direction k and the selection of N atoms,

    MSD_k(m) = [S1_k(m) − 2 S2_k(m)] / (N (T − m)),

    S1_k(m) = Σ_{t=0}^{T−1−m} [d_k(t) + d_k(t+m)],   d_k(t) = Σ_i x_ik(t)²,
    S2_k(m) = Σ_i Σ_{t=0}^{T−1−m} x_ik(t) x_ik(t+m).

S1 follows from the Kneller–Calandrini recursion S1(0) = 2 Σ_t d(t),
S1(m) = S1(m−1) − d(m−1) − d(T−m).  S2 is the sum over atoms of the
position autocorrelations; by the Wiener–Khinchin theorem it is the inverse
FFT of Σ_i |X̂_ik|², with every series zero-padded to L ≥ 2T − 1
(``scipy.fft.next_fast_len``) so that the circular correlation equals the
linear one.  The atom sum is taken on the power spectrum *before* the inverse
transform: one forward real FFT per atom and direction, but only one inverse
FFT per direction.  Every series is first centred on its time average (the
MSD does not change under a constant shift), which keeps S1 and 2·S2 small and
the cancellation error at the level of the direct loop's rounding.
"""

from __future__ import annotations


import numpy as np
import scipy.fft

from .._validate import as_array
from ..errors import OptionError
from ._loader import load_ext

__all__ = [
    "msd_fft", "msd_direct_ref", "msd_pairs", "msd_pairs_ref", "lag_keys", "fft_length", "MSDAccumulator",
    "gather_block_tm_ref", "gather_block_am_ref", "accumulate_power_ref", "s1_recursion_ref", "subtract_drift_am_ref",
    "workspace_bytes_per_atom", "DEFAULT_WORKSPACE", "msd_covariance", "msd_covariance_ref",
]

_msd = load_ext("_msd")

DEFAULT_WORKSPACE = 256 * 1024**2
"""Bytes of FFT workspace per atom block when the caller gives no budget."""


# ----------------------------------------------------------------- numpy twins
def gather_block_tm_ref(pos, a0, n_block, drift, buf, sq, ends):
    """Numpy twin of ``_msd.gather_block_tm`` (same IN/OUT contract)."""
    n = pos.shape[0]
    if n == 0:
        return
    v = pos[:, a0:a0 + n_block, :]
    if drift.shape[0]:
        v = v - drift[:, None, :]
    rows = np.ascontiguousarray(v.reshape(n, 3 * n_block).T)
    _finish_rows_ref(rows, buf, sq, ends)


def gather_block_am_ref(src, buf, sq, ends):
    """Numpy twin of ``_msd.gather_block_am``."""
    if src.shape[2] == 0:
        return
    _finish_rows_ref(src.reshape(-1, src.shape[2]), buf, sq, ends)


def _finish_rows_ref(rows, buf, sq, ends):
    n = rows.shape[1]
    c = rows - rows.mean(axis=1, keepdims=True)
    buf[:len(c), :n] = c
    buf[:len(c), n:] = 0.0
    c3 = c.reshape(-1, 3, n)
    sq += (c3 ** 2).sum(axis=0)
    ends[0] += ((c3[:, :, -1] - c3[:, :, 0]) ** 2).sum(axis=0)


def subtract_drift_am_ref(block, drift, t0):
    """Numpy twin of ``_msd.subtract_drift_am``."""
    block -= drift[t0:t0 + block.shape[2]].T[None]


def accumulate_power_ref(F, n_block, power):
    """Numpy twin of ``_msd.accumulate_power``."""
    if n_block == 0:
        return
    p = F[:3 * n_block].real ** 2 + F[:3 * n_block].imag ** 2
    power += p.reshape(n_block, 3, -1).sum(axis=0)


def s1_recursion_ref(sq, out):
    """Numpy twin of ``_msd.s1_recursion`` (cumulative sums instead of the recursion)."""
    n = sq.shape[1]
    if n == 0:
        return
    cs = np.concatenate([np.zeros((3, 1)), np.cumsum(sq, axis=1)], axis=1)
    m = np.arange(n)
    out[...] = cs[:, n - m] + (cs[:, n][:, None] - cs[:, m])


# ---------------------------------------------------------------- block engine
def fft_length(n_frames: int) -> int:
    """Zero-padded FFT length L ≥ 2·n_frames − 1 (a fast size for pocketfft)."""
    return int(scipy.fft.next_fast_len(max(2 * int(n_frames) - 1, 1), real=True))


def workspace_bytes_per_atom(n_frames: int) -> int:
    """FFT workspace of one atom (3 padded real rows + their complex spectra), bytes."""
    L = fft_length(n_frames)
    return 3 * (8 * L + 16 * (L // 2 + 1))


class MSDAccumulator:
    """Accumulate the exact FFT MSD over atom blocks (used by :func:`msd_fft` and the out-of-core path).

    Parameters
    ----------
    n_frames : int
        T, frames per series (evenly spaced).
    block_atoms : int
        Largest number of atoms passed to one ``add_*`` call (sizes the buffers).
    workers : int
        Threads for scipy.fft.
    use_ext : bool
        Compiled kernels or the numpy twins.

    Notes
    -----
    Atoms must be added in the same order whatever the block size; the sums
    are then identical (bit for bit) however the selection is split.

    Memory: the block buffer (``block_atoms`` × :func:`workspace_bytes_per_atom`
    bytes, allocated by the first ``add_*`` call) plus O(n_frames) sums;
    :meth:`free_workspace` drops the buffer before :meth:`finish` so that the
    final inverse FFT does not add to the peak.
    """

    def __init__(self, n_frames, block_atoms, *, workers=2, use_ext=True):
        self.n_frames = int(n_frames)
        self.block_atoms = max(1, int(block_atoms))
        self.L = fft_length(self.n_frames)
        self.workers = workers
        self.use_ext = use_ext
        self.n_atoms = 0
        self._buf = None
        self._sq = np.zeros((3, self.n_frames))
        self._ends = np.zeros((1, 3))
        self._power = np.zeros((3, self.L // 2 + 1))

    def _buffer(self):
        # columns n_frames: of the buffer are the zero padding; the gather kernels never write there
        if self._buf is None:
            self._buf = np.zeros((3 * self.block_atoms, self.L))
        return self._buf

    def free_workspace(self):
        """Release the block buffer (bytes: ``block_atoms`` × :func:`workspace_bytes_per_atom`); a later
        ``add_*`` call allocates it again."""
        self._buf = None

    def _transform(self, n_block):
        if self.n_frames == 0 or n_block == 0:
            return
        F = scipy.fft.rfft(self._buf[:3 * n_block], axis=-1, workers=self.workers)
        (_msd.accumulate_power if self.use_ext else accumulate_power_ref)(F, n_block, self._power)
        self.n_atoms += n_block

    def add_time_major(self, pos, a0, n_block, drift=None):
        """Add atoms ``a0 … a0+n_block−1`` of ``pos`` (n_frames, n_atoms, 3), minus ``drift`` (n_frames, 3)."""
        if n_block > self.block_atoms:
            raise ValueError(f"block of {n_block} atoms exceeds the buffer ({self.block_atoms})")
        d = np.zeros((0, 3)) if drift is None else drift
        (_msd.gather_block_tm if self.use_ext else gather_block_tm_ref)(
            pos, a0, n_block, d, self._buffer(), self._sq, self._ends)
        self._transform(n_block)

    def add_atom_major(self, src):
        """Add a block ``src`` of shape (n_block, 3, n_frames) (drift already removed)."""
        n_block = src.shape[0]
        if n_block > self.block_atoms:
            raise ValueError(f"block of {n_block} atoms exceeds the buffer ({self.block_atoms})")
        (_msd.gather_block_am if self.use_ext else gather_block_am_ref)(src, self._buffer(), self._sq, self._ends)
        self._transform(n_block)

    def finish(self):
        """Return ``(msd, msd_xyz, tmsd_xyz)``: shapes (T,), (T, 3), (3,), Å², averaged over the atoms added."""
        T, N = self.n_frames, self.n_atoms
        if T == 0 or N == 0:
            return np.zeros(T), np.zeros((T, 3)), np.zeros(3)
        s1 = np.empty((3, T))
        (_msd.s1_recursion if self.use_ext else s1_recursion_ref)(self._sq, s1)
        s2 = scipy.fft.irfft(self._power, n=self.L, axis=-1, workers=self.workers)[:, :T]
        norm = N * (T - np.arange(T, dtype=np.float64))
        msd_xyz = ((s1 - 2.0 * s2) / norm).T.copy()
        msd_xyz[0] = 0.0
        return msd_xyz.sum(axis=1), msd_xyz, self._ends[0] / N


def _block_size(n_atoms, n_frames, workspace):
    per = workspace_bytes_per_atom(n_frames)
    if workspace is None:
        workspace = DEFAULT_WORKSPACE
    return int(max(1, min(max(n_atoms, 1), workspace // per)))


# ------------------------------------------------------------------ public API
def msd_fft(positions, *, drift=None, workspace=None, workers=2, use_ext=True):
    """Exact all-origin MSD of evenly spaced positions by FFT.

    Parameters
    ----------
    positions : ndarray, shape (n_frames, n_atoms, 3), float64, Å
        Unwrapped positions, time axis first.
    drift : ndarray, shape (n_frames, 3), float64, Å, optional
        Displacement subtracted from every atom at each frame (e.g. the
        framework's centre-of-mass motion).
    workspace : int, optional
        Bytes of FFT workspace (atoms are processed in blocks that fit);
        default 256 MiB, at least one atom.
    workers : int
        Threads for scipy.fft (default 2; -1 = all cores).
    use_ext : bool
        Compiled kernels (True) or the numpy twins.

    Returns
    -------
    msd : ndarray, shape (n_frames,), float64, Å²
        MSD(m·dt), m = 0 … n_frames − 1, averaged over atoms and origins.
    msd_xyz : ndarray, shape (n_frames, 3), float64, Å²
        The x, y and z parts (``msd = msd_xyz.sum(axis=1)``).

    Notes
    -----
    MSD(m) = (1/N) Σ_i (1/(T−m)) Σ_{t=0}^{T−1−m} |r_i(t+m) − r_i(t)|², computed
    as [S1(m) − 2·S2(m)] / (N (T − m)) (module docstring).  Cost
    O(N·T log T) time; memory: the input plus ``workspace``.  Agrees with
    :func:`msd_direct_ref` to rounding (≈1e-13 of the positions' variance).

    References
    ----------
    SPEC §2; Kneller et al., Comput. Phys. Commun. 91, 191 (1995); Calandrini et al.,
    Collection SFN 12, 201 (2011).

    Examples
    --------
    >>> import numpy as np
    >>> pos = np.zeros((4, 1, 3)); pos[:, 0, 0] = [0, 1, 2, 3]   # ballistic, v = 1 Å/frame
    >>> msd, msd_xyz = msd_fft(pos)
    >>> np.round(msd, 12).tolist()
    [0.0, 1.0, 4.0, 9.0]
    """
    pos = as_array(positions, "positions", shape=(None, None, 3))
    T, N = pos.shape[:2]
    if drift is not None:
        drift = as_array(drift, "drift", shape=(T, 3))
    acc = MSDAccumulator(T, _block_size(N, T, workspace), workers=workers, use_ext=use_ext)
    for a0 in range(0, N, acc.block_atoms):
        acc.add_time_major(pos, a0, min(acc.block_atoms, N - a0), drift)
    msd, msd_xyz, _ = acc.finish()
    return msd, msd_xyz


def msd_direct_ref(positions):
    """The direct double loop over lags and origins (the oracle of :func:`msd_fft`).

    Parameters
    ----------
    positions : ndarray, shape (n_frames, n_atoms, 3), float64, Å

    Returns
    -------
    msd : ndarray, shape (n_frames,), Å²
    msd_xyz : ndarray, shape (n_frames, 3), Å²

    Notes
    -----
    O(N·T²); for tests and small inputs only.
    """
    pos = as_array(positions, "positions", shape=(None, None, 3))
    T, N = pos.shape[:2]
    out = np.zeros((T, 3))
    if N == 0:
        return out.sum(axis=1), out
    for m in range(1, T):
        d = pos[m:] - pos[:T - m]
        out[m] = (d * d).sum(axis=(0, 1)) / (N * (T - m))
    return out.sum(axis=1), out


def lag_keys(times, quantum=None):
    """Distinct time differences of a set of frames, as integer keys.

    Parameters
    ----------
    times : ndarray, shape (n_frames,), float64, ps, strictly increasing
    quantum : float, ps, optional
        Resolution: two lags closer than this are the same lag.  Default
        1e-6 of the smallest frame spacing.

    Returns
    -------
    keys : ndarray, shape (n_lags,), int64, sorted
        round(lag / quantum) for every distinct lag (0 included).
    quantum : float
    """
    t = np.asarray(times, dtype=np.float64)
    if len(t) < 2:
        return np.zeros(min(len(t), 1), dtype=np.int64), float(quantum or 1.0)
    if quantum is None:
        quantum = float(np.min(np.diff(t))) * 1e-6
    keys = set()
    for lo in range(0, len(t), 256):
        d = t[None, :] - t[lo:lo + 256, None]
        keys.update(np.unique(np.floor(d[d >= 0] / quantum + 0.5).astype(np.int64)).tolist())
    return np.array(sorted(keys), dtype=np.int64), float(quantum)


def msd_pairs_ref(pos, times, keys, quantum, acc, count):
    """Numpy twin of ``_msd.msd_pairs``."""
    T = pos.shape[0]
    bad = -1
    for i in range(T):
        k = np.floor((times[i:] - times[i]) / quantum + 0.5).astype(np.int64)
        b = np.searchsorted(keys, k)
        ok = (b < len(keys)) & (keys[np.minimum(b, len(keys) - 1)] == k) if len(keys) else np.zeros(len(k), bool)
        if not ok.all():
            bad = i
        d = pos[i:][ok] - pos[i]
        np.add.at(acc, b[ok], (d * d).sum(axis=1))
        np.add.at(count, b[ok], 1)
    return bad


def msd_pairs(positions, times, *, quantum=None, use_ext=True):
    """Exact MSD of frames at arbitrary times: every frame pair, grouped by time difference.

    Parameters
    ----------
    positions : ndarray, shape (n_frames, n_atoms, 3), float64, Å
    times : ndarray, shape (n_frames,), float64, ps, strictly increasing
    quantum : float, ps, optional
        Lags closer than this are merged (default 1e-6 of the smallest spacing).

    Returns
    -------
    lags : ndarray, shape (n_lags,), ps
        Every distinct time difference (0 first).
    msd : ndarray, shape (n_lags,), Å²
    msd_xyz : ndarray, shape (n_lags, 3), Å²
    n_pairs : ndarray, shape (n_lags,), int64
        Number of frame pairs (origins) behind each lag.

    Notes
    -----
    MSD(τ) = (1/N) Σ_i (1/n_τ) Σ_{(t1,t2): t2−t1=τ} |r_i(t2) − r_i(t1)|²: the
    windowed MSD with every available origin for every lag that occurs.
    Cost O(N·T²) time and O(n_lags) memory; meant for log-spaced dumps
    (typically a few hundred to a few thousand frames).
    """
    pos = as_array(positions, "positions", shape=(None, None, 3))
    T, N = pos.shape[:2]
    t = as_array(times, "times", shape=(T,))
    if T > 1 and np.any(np.diff(t) <= 0):
        raise OptionError("times must be strictly increasing")
    keys, quantum = lag_keys(t, quantum)
    acc = np.zeros((len(keys), 3))
    count = np.zeros(len(keys), dtype=np.int64)
    if T:
        (_msd.msd_pairs if use_ext else msd_pairs_ref)(pos, t, keys, quantum, acc, count)
    with np.errstate(invalid="ignore", divide="ignore"):
        msd_xyz = acc / (np.maximum(count, 1) * max(N, 1))[:, None]
    return keys * quantum, msd_xyz.sum(axis=1), msd_xyz, count


def msd_covariance_ref(lags, n_frames, s2, e2, out):
    """Numpy twin of ``_msd.msd_covariance`` (same IN/OUT contract)."""
    T = int(n_frames)
    for p, m in enumerate(lags):
        for q, n in enumerate(lags):
            if q < p:
                continue
            d = np.arange(-n, m + 1)
            cnt = np.minimum(T - m, T - n - d) - np.maximum(-d, 0)
            ov = np.clip(np.minimum(m, d + n) - np.maximum(d, 0), 0, None).astype(np.float64)
            c = s2 * ov + e2 * ((d == m - n).astype(float) - (d == m) - (d == -n) + (d == 0))
            ok = cnt > 0
            out[p, q] = out[q, p] = 2.0 * np.sum(cnt[ok] * c[ok] ** 2) / ((T - m) * float(T - n))


def msd_covariance(lags, n_frames, *, s2, e2, use_ext=True):
    """Covariance of the all-origin MSD estimator of one Gaussian series (the GLS weight of the D fit).

    Parameters
    ----------
    lags : ndarray, shape (K,), int
        Lags in frames, 1 ≤ lag < n_frames.
    n_frames : int
        T, length of the series.
    s2 : float, Å²
        Variance of one step of the random walk (one direction).
    e2 : float, Å²
        Variance of the white (vibrational) noise on each position.

    Returns
    -------
    ndarray, shape (K, K), Å⁴
        Cov(M_m, M_n) for the series X(t) = W(t) + ε(t) (random walk plus
        white noise); E[M_m] = m·s2 + 2·e2.

    Notes
    -----
    Cov(M_m, M_n) = 2/((T−m)(T−n)) Σ_t Σ_u c(t,m;u,n)² (Isserlis), c = s2 ×
    |[t, t+m) ∩ [u, u+n)| + e2 × (δ_{t+m,u+n} − δ_{t+m,u} − δ_{t,u+n} + δ_{t,u}).
    O(Σ (m + n)) over the K² pairs.
    """
    lags = np.ascontiguousarray(lags, dtype=np.int64).ravel()
    T = int(n_frames)
    if len(lags) and (lags.min() < 1 or lags.max() >= T):
        raise OptionError(f"lags must lie in 1 … n_frames − 1 = {T - 1}; got {lags.min()} … {lags.max()}")
    out = np.zeros((len(lags), len(lags)))
    (_msd.msd_covariance if use_ext else msd_covariance_ref)(lags, T, float(s2), float(e2), out)
    return out
