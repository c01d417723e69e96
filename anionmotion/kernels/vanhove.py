"""Van Hove functions and the non-Gaussian parameter (SPEC §9): kernels with their numpy reference twins.

Functional tier (arrays in, arrays out, time axis first):

- :func:`self_histogram` — histogram of |Δr| of a block of displacement vectors (the G_s kernel); twin
  :func:`self_histogram_ref`.
- :func:`distinct_histogram` — histogram of the minimum-image distances |r_j(t+τ) − r_i(t)|, i ≠ j, of a
  block of frame pairs with the compiled cell-list kernel of :mod:`anionmotion.kernels.pbc` (the G_d
  kernel); twin :func:`distinct_histogram_ref` (explicit search over periodic images).
- :class:`NonGaussianAccumulator`, :func:`displacement_moments` and :func:`alpha2` — the exact all-origin
  second and fourth displacement moments ⟨Δr²⟩(m) and ⟨Δr⁴⟩(m) at *every* lag m by FFT, and
  α₂(m) = 3⟨Δr⁴⟩/(5⟨Δr²⟩²) − 1; twin :func:`displacement_moments_ref` (the direct double loop over lags
  and origins).
- :func:`van_hove_ref` — the whole G_s/G_d histogram of a small trajectory by direct loops over lags,
  origins and atom pairs (the oracle of the streamed analysis).

Fourth moment by FFT
--------------------
For one atom with position x(t) ∈ ℝ³ (centred on its time average; the moments do not change under a
constant shift), a = x(t+m), b = x(t), q(t) = |x(t)|² and p_kl(t) = x_k(t) x_l(t):

    |Δr|⁴ = (|a|² + |b|² − 2 a·b)²
          = q(t+m)² + q(t)² + 2 q(t+m) q(t) − 4 q(t+m) (a·b) − 4 q(t) (a·b) + 4 (a·b)²,

    (a·b)² = Σ_k Σ_l p_kl(t+m) p_kl(t).

Summed over the origins t = 0 … T−1−m, with C_fg(m) = Σ_t f(t+m) g(t):

    S4(m) = E4(m) + 2 C_qq(m) − 4 Σ_k [C_{q x_k, x_k}(m) + C_{x_k, q x_k}(m)]
            + 4 [Σ_k C_{p_kk p_kk}(m) + 2 Σ_{k<l} C_{p_kl p_kl}(m)],

    E4(m) = Σ_{t=0}^{T−1−m} [q(t+m)² + q(t)²]  (cumulative sums of q², as the MSD's S1).

Every correlation is the inverse real FFT of a product of spectra of the series zero-padded to
L ≥ 2T − 1 (so that circular equals linear correlation): C_ff ← |F̂|², and the two cross terms together
← 2 Re(Q̂X̂_k · conj X̂_k).  Thirteen forward transforms per atom (x_k, q x_k, q, p_kl), the products are
summed over the atoms in the spectral domain, and one inverse transform per term gives the atom sums.
The second moment is the MSD's S2(m) = E2(m) − 2 Σ_k C_{x_k x_k}(m), E2(m) = Σ_t [q(t+m) + q(t)].
⟨Δr^n⟩(m) = S_n(m) / (N (T − m)).  Cost O(N·T log T) time; memory: one atom block's 13 padded series
and their spectra (:func:`moments_workspace_bytes_per_atom`).
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from .._validate import as_array
from ..errors import OptionError
from .msd import fft_length
from .pbc import _cell_grid, _pbc, minimum_image_bruteforce, perpendicular_widths

__all__ = ["self_histogram", "self_histogram_ref", "distinct_histogram", "distinct_histogram_ref",
           "NonGaussianAccumulator", "displacement_moments", "displacement_moments_ref", "displacement_moments_pairs",
           "alpha2",
           "alpha2_from_moments", "moments_workspace_bytes_per_atom", "van_hove_ref", "N_MOMENT_SERIES"]

N_MOMENT_SERIES = 13
"""Padded real series per atom in the fourth-moment FFT: x_k (3), q·x_k (3), q (1), p_kl (6)."""

_PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


# ----------------------------------------------------------------------------------- G_s histogram
def self_histogram(disp, *, rmax, n_bins):
    """Histogram of the lengths of displacement vectors (the G_s kernel), with their moment sums.

    Parameters
    ----------
    disp : ndarray, shape (..., 3), float64, Å
        Displacements r_i(t+τ) − r_i(t) of unwrapped positions.
    rmax : float, Å
        Histogram range [0, rmax).
    n_bins : int

    Returns
    -------
    hist : ndarray, shape (n_bins,), int64
        Number of vectors with ⌊|d|·n_bins/rmax⌋ = k and |d|² < rmax² (the bin rule of the g(r) kernel).
    s2, s4 : float, Å², Å⁴
        Σ |d|² and Σ |d|⁴ over *every* vector (also those beyond rmax).
    """
    d = np.asarray(disp, dtype=np.float64).reshape(-1, 3)
    r2 = np.einsum("ij,ij->i", d, d)
    inside = r2 < rmax * rmax
    p = (np.sqrt(r2[inside]) * (n_bins / rmax)).astype(np.int64)
    p = p[p < n_bins]
    return np.bincount(p, minlength=n_bins).astype(np.int64), float(r2.sum()), float((r2 * r2).sum())


def self_histogram_ref(disp, *, rmax, n_bins):
    """Numpy twin of :func:`self_histogram`: one vector at a time."""
    hist = np.zeros(n_bins, dtype=np.int64)
    s2 = s4 = 0.0
    for v in np.asarray(disp, dtype=np.float64).reshape(-1, 3):
        r2 = float(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
        s2 += r2
        s4 += r2 * r2
        if r2 < rmax * rmax:
            k = int(np.sqrt(r2) * (n_bins / rmax))
            if k < n_bins:
                hist[k] += 1
    return hist, s2, s4


# ----------------------------------------------------------------------------------- G_d histogram
def distinct_histogram(pos_origin, pos_later, cells, *, rmax, n_bins, use_ext=True):
    """Histogram of |r_j(t+τ) − r_i(t)|, i ≠ j, minimum image, summed over a block of frame pairs.

    Parameters
    ----------
    pos_origin : ndarray, shape (n_pairs, n_atoms, 3), float64, Å
        Positions r_i(t) at the origin of each frame pair (wrapped or not).
    pos_later : ndarray, shape (n_pairs, n_atoms, 3), float64, Å
        Positions r_j(t+τ) of the same atoms, in the same order.
    cells : ndarray, shape (n_pairs, 3, 3), float64, Å
        Cell of each pair (rows a, b, c; the analysis passes the origin frame's cell).
    rmax : float, Å
        At most half the smallest perpendicular width of every cell (minimum image).
    n_bins : int
    use_ext : bool
        Compiled cell-list kernel (``ext/_pbc.pyx``, the g(r) kernel with the pairs i = j excluded) or
        :func:`distinct_histogram_ref`.

    Returns
    -------
    ndarray, shape (n_bins,), int64
        Ordered pairs (i, j), i ≠ j, per distance bin, summed over the frame pairs.
    """
    a = as_array(pos_origin, "pos_origin", shape=(None, None, 3))
    b = as_array(pos_later, "pos_later", shape=a.shape)
    cells = as_array(cells, "cells", shape=(a.shape[0], 3, 3))
    widths = perpendicular_widths(cells) if len(cells) else np.zeros((0, 3))
    if len(cells) and rmax > 0.5 * widths.min() * (1 + 1e-12):
        raise OptionError(f"rmax = {rmax:g} Å exceeds half the smallest cell width {0.5 * widths.min():g} Å; "
                          "the distinct van Hove function uses the minimum image")
    if not use_ext:
        return distinct_histogram_ref(a, b, cells, rmax=rmax, n_bins=n_bins)
    hist = np.zeros(int(n_bins), dtype=np.int64)
    if a.shape[0] == 0 or a.shape[1] < 2:
        return hist
    inv = np.linalg.inv(cells)
    fa = np.ascontiguousarray(np.einsum("tik,tkl->til", a, inv))
    fb = np.ascontiguousarray(np.einsum("tik,tkl->til", b, inv))
    n_cells, reach = (np.ascontiguousarray(x) for x in _cell_grid(widths, rmax))
    self_idx = np.arange(a.shape[1], dtype=np.int64)  # pair (i, i) is the self part: skipped
    _pbc.histogram_pairs_frames(fa, fb, np.ascontiguousarray(cells), self_idx, n_cells, reach, float(rmax), False,
                                hist)
    return hist


def _reduced(d, cell):
    """``d`` moved by whole cell vectors so that its fractional components lie in [−½, ½]."""
    s = d @ np.linalg.inv(cell)
    return (s - np.rint(s)) @ cell


def distinct_histogram_ref(pos_origin, pos_later, cells, *, rmax, n_bins):
    """Numpy twin of :func:`distinct_histogram`: every pair, the shortest of the images in [−2, 2]³ around the
    fractionally reduced difference."""
    a = np.asarray(pos_origin, dtype=np.float64)
    b = np.asarray(pos_later, dtype=np.float64)
    hist = np.zeros(int(n_bins), dtype=np.int64)
    n = a.shape[1]
    off = ~np.eye(n, dtype=bool)
    for t in range(a.shape[0]):
        d = minimum_image_bruteforce(_reduced(b[t][None, :, :] - a[t][:, None, :], cells[t]), cells[t])
        r = np.sqrt(np.einsum("ijk,ijk->ij", d, d))[off]
        r = r[r < rmax]
        k = (r * (n_bins / rmax)).astype(np.int64)
        hist += np.bincount(k[k < n_bins], minlength=n_bins)
    return hist


# ----------------------------------------------------------------------------------- moments by FFT
def moments_workspace_bytes_per_atom(n_frames: int) -> int:
    """Peak working memory of one atom in :meth:`NonGaussianAccumulator.add_atom_major`, bytes.

    The 13 series are transformed one at a time: the centred block and one product series (5 rows of T),
    one padded row (L), the three kept spectra X̂_k and one transient spectrum with its power (≈ 6 rows of
    L) — about 40·T + 56·L bytes, the same order as the MSD's 48·L.
    """
    T = int(n_frames)
    L = fft_length(T)
    return 8 * 5 * T + 8 * 7 * L


def _cumulative_ends(v):
    """E(m) = Σ_{t=0}^{T−1−m} [v(t+m) + v(t)] for every m, from cumulative sums of v (shape (T,))."""
    T = len(v)
    cs = np.concatenate([[0.0], np.cumsum(v)])
    m = np.arange(T)
    return (cs[T] - cs[m]) + cs[T - m]


class NonGaussianAccumulator:
    """Exact all-origin ⟨Δr²⟩ and ⟨Δr⁴⟩ at every lag, accumulated over atom blocks (module docstring).

    Parameters
    ----------
    n_frames : int
        T, frames per series (evenly spaced).
    block_atoms : int
        Largest number of atoms passed to one ``add_*`` call (sizes the buffer:
        ``block_atoms`` × :func:`moments_workspace_bytes_per_atom`).
    workers : int
        Threads for scipy.fft.

    Notes
    -----
    The same calls as :class:`anionmotion.kernels.msd.MSDAccumulator` (``add_time_major`` with an optional
    drift, ``add_atom_major``), so the MSD's atom-block loop can feed both.  Atoms added in the same order
    give the same sums whatever the block size, up to the order of the spectral sums.
    """

    def __init__(self, n_frames, block_atoms, *, workers=2):
        self.n_frames = int(n_frames)
        self.block_atoms = max(1, int(block_atoms))
        self.L = fft_length(self.n_frames)
        self.workers = workers
        self.n_atoms = 0
        nf = self.L // 2 + 1
        self._q = np.zeros(self.n_frames)      # Σ_atoms q(t)
        self._q2 = np.zeros(self.n_frames)     # Σ_atoms q(t)²
        self._pxx = np.zeros(nf)               # Σ |X̂_k|²
        self._pqq = np.zeros(nf)               # Σ |Q̂|²
        self._pqx = np.zeros(nf)               # Σ Re(QX̂_k conj X̂_k)
        self._ppp = np.zeros(nf)               # Σ |P̂_kk|² + 2 Σ_{k<l} |P̂_kl|²
        self._buf = None

    def free_workspace(self):
        """Release the block buffer (a later ``add_*`` call allocates it again)."""
        self._buf = None

    def add_time_major(self, pos, a0, n_block, drift=None):
        """Add atoms ``a0 … a0+n_block−1`` of ``pos`` (n_frames, n_atoms, 3), minus ``drift`` (n_frames, 3)."""
        v = np.asarray(pos[:, a0:a0 + n_block, :], dtype=np.float64)
        if drift is not None:
            v = v - np.asarray(drift)[:, None, :]
        self.add_atom_major(np.ascontiguousarray(v.transpose(1, 2, 0)))

    def add_atom_major(self, src):
        """Add a block ``src`` of shape (n_block, 3, n_frames), Å (drift already removed).

        The series are transformed one at a time (the three X̂_k are kept, every other spectrum is summed
        and dropped), so the peak is :func:`moments_workspace_bytes_per_atom` per atom.
        """
        src = np.asarray(src, dtype=np.float64)
        nb, T = src.shape[0], self.n_frames
        if nb > self.block_atoms:
            raise ValueError(f"block of {nb} atoms exceeds the buffer ({self.block_atoms})")
        if src.shape[1:] != (3, T):
            raise ValueError(f"block must have shape (n, 3, {T}); got {src.shape}")
        if nb == 0 or T == 0:
            return
        if self._buf is None or self._buf.shape[0] < nb:
            self._buf = np.zeros((self.block_atoms, self.L))
        buf = self._buf[:nb]
        buf[:, T:] = 0.0

        def spectrum(series):
            buf[:, :T] = series
            return scipy.fft.rfft(buf, axis=-1, workers=self.workers)

        def power(F):
            return (F.real ** 2 + F.imag ** 2).sum(axis=0)

        x = src - src.mean(axis=2, keepdims=True)
        q = np.einsum("akt,akt->at", x, x)
        X = [spectrum(x[:, k]) for k in range(3)]
        for F in X:
            self._pxx += power(F)
        self._pqq += power(spectrum(q))
        for k in range(3):
            F = spectrum(x[:, k] * q)
            self._pqx += (F.real * X[k].real + F.imag * X[k].imag).sum(axis=0)
        del X, F
        for s, (k, l) in enumerate(_PAIRS):
            self._ppp += (1.0 if s < 3 else 2.0) * power(spectrum(x[:, k] * x[:, l]))
        self._q += q.sum(axis=0)
        self._q2 += (q * q).sum(axis=0)
        self.n_atoms += nb

    def finish(self):
        """Return ``(m2, m4)``: ⟨Δr²⟩ (Å²) and ⟨Δr⁴⟩ (Å⁴) at lags m = 0 … T−1, averaged over atoms and origins."""
        T, N, L = self.n_frames, self.n_atoms, self.L
        if T == 0 or N == 0:
            return np.zeros(T), np.zeros(T)
        inv = scipy.fft.irfft(np.stack([self._pxx, self._pqq, self._pqx, self._ppp]), n=L, axis=-1,
                              workers=self.workers)[:, :T]
        s2 = _cumulative_ends(self._q) - 2.0 * inv[0]
        s4 = _cumulative_ends(self._q2) + 2.0 * inv[1] - 8.0 * inv[2] + 4.0 * inv[3]
        norm = N * (T - np.arange(T, dtype=np.float64))
        m2, m4 = s2 / norm, s4 / norm
        m2[0] = m4[0] = 0.0
        return m2, m4


def alpha2_from_moments(m2, m4):
    """α₂ = 3 m4 / (5 m2²) − 1 (dimensionless); NaN where m2 = 0 (lag 0)."""
    m2 = np.asarray(m2, dtype=np.float64)
    m4 = np.asarray(m4, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(m2 > 0, 3.0 * m4 / (5.0 * np.where(m2 > 0, m2, 1.0) ** 2) - 1.0, np.nan)


def displacement_moments(positions, *, drift=None, workspace=256 * 1024 ** 2, workers=2):
    """Exact all-origin ⟨Δr²⟩ and ⟨Δr⁴⟩ of evenly spaced positions at every lag, by FFT.

    Parameters
    ----------
    positions : ndarray, shape (n_frames, n_atoms, 3), float64, Å
        Unwrapped positions, time axis first.
    drift : ndarray, shape (n_frames, 3), Å, optional
        Displacement subtracted from every atom at each frame.
    workspace : int, bytes
        FFT workspace; atoms are transformed in blocks that fit (at least one atom).
    workers : int
        Threads for scipy.fft.

    Returns
    -------
    m2 : ndarray, shape (n_frames,), Å²
    m4 : ndarray, shape (n_frames,), Å⁴
        Averages over atoms and every origin at lag m·dt, m = 0 … n_frames − 1 (module docstring).
    """
    pos = as_array(positions, "positions", shape=(None, None, 3))
    T, N = pos.shape[:2]
    if drift is not None:
        drift = as_array(drift, "drift", shape=(T, 3))
    block = int(max(1, min(max(N, 1), workspace // max(moments_workspace_bytes_per_atom(T), 1))))
    acc = NonGaussianAccumulator(T, block, workers=workers)
    for a0 in range(0, N, block):
        acc.add_time_major(pos, a0, min(block, N - a0), drift)
    return acc.finish()


def alpha2(positions, *, drift=None, workspace=256 * 1024 ** 2, workers=2):
    """Non-Gaussian parameter α₂ at every lag, exact over all origins (SPEC §9).

    Parameters
    ----------
    positions : ndarray, shape (n_frames, n_atoms, 3), float64, Å
        Unwrapped, evenly spaced positions, time axis first.
    drift : ndarray, shape (n_frames, 3), Å, optional
    workspace : int, bytes
    workers : int

    Returns
    -------
    ndarray, shape (n_frames,), dimensionless
        α₂(m) = 3⟨Δr⁴⟩(m) / (5⟨Δr²⟩(m)²) − 1 for m = 0 … n_frames − 1 (NaN at m = 0), averages over atoms
        and origins (:func:`displacement_moments`).

    Notes
    -----
    0 for Gaussian (Brownian) displacements in 3-D; positive when a few atoms move far while the rest rattle
    (hopping).  Exact: equal to :func:`displacement_moments_ref` to rounding.

    Examples
    --------
    >>> import numpy as np
    >>> pos = np.zeros((3, 1, 3)); pos[:, 0, 0] = [0.0, 1.0, 2.0]   # ballistic: |Δr| = m, a single value
    >>> np.round(alpha2(pos), 12).tolist()[1:]                     # 3/5 − 1 for a δ-distributed length
    [-0.4, -0.4]
    """
    m2, m4 = displacement_moments(positions, drift=drift, workspace=workspace, workers=workers)
    return alpha2_from_moments(m2, m4)


def displacement_moments_pairs(positions, times, *, quantum=None):
    """⟨Δr²⟩ and ⟨Δr⁴⟩ of frames at arbitrary times: every frame pair, grouped by time difference.

    Parameters
    ----------
    positions : ndarray, shape (n_frames, n_atoms, 3), float64, Å
    times : ndarray, shape (n_frames,), ps, strictly increasing
    quantum : float, ps, optional
        Lags closer than this are merged (default 1e-6 of the smallest spacing;
        :func:`anionmotion.kernels.msd.lag_keys`).

    Returns
    -------
    lags : ndarray, shape (n_lags,), ps
        Every distinct time difference (0 first), as :func:`anionmotion.kernels.msd.msd_pairs`.
    m2 : ndarray, shape (n_lags,), Å²
    m4 : ndarray, shape (n_lags,), Å⁴
    n_pairs : ndarray, shape (n_lags,), int64

    Notes
    -----
    The uneven-spacing counterpart of :func:`displacement_moments` (log-spaced dumps): O(N·T²) time,
    O(n_lags) memory; α₂ follows with :func:`alpha2_from_moments`.
    """
    from .msd import lag_keys

    pos = as_array(positions, "positions", shape=(None, None, 3))
    T, N = pos.shape[:2]
    t = as_array(times, "times", shape=(T,))
    if T > 1 and np.any(np.diff(t) <= 0):
        raise OptionError("times must be strictly increasing")
    keys, quantum = lag_keys(t, quantum)
    s2 = np.zeros(len(keys))
    s4 = np.zeros(len(keys))
    count = np.zeros(len(keys), dtype=np.int64)
    for i in range(T):
        k = np.floor((t[i:] - t[i]) / quantum + 0.5).astype(np.int64)
        b = np.searchsorted(keys, k)
        r2 = ((pos[i:] - pos[i]) ** 2).sum(axis=-1)            # (T − i, N)
        np.add.at(s2, b, r2.sum(axis=1))
        np.add.at(s4, b, (r2 * r2).sum(axis=1))
        np.add.at(count, b, 1)
    norm = np.maximum(count, 1) * max(N, 1)
    return keys * quantum, s2 / norm, s4 / norm, count


def displacement_moments_ref(positions):
    """The direct double loop over lags and origins (the oracle of :func:`displacement_moments`)."""
    pos = np.asarray(positions, dtype=np.float64)
    T, N = pos.shape[:2]
    m2, m4 = np.zeros(T), np.zeros(T)
    for m in range(1, T):
        r2 = ((pos[m:] - pos[:T - m]) ** 2).sum(axis=-1)
        m2[m] = r2.sum() / (N * (T - m))
        m4[m] = (r2 * r2).sum() / (N * (T - m))
    return m2, m4


# ----------------------------------------------------------------------------------- whole-histogram oracle
def van_hove_ref(positions, cells, lags, *, rmax, n_bins, origin_stride=1, distinct_stride=1, n_origins=None,
                 distinct=True):
    """G_s and G_d raw histograms of a small trajectory by direct loops (the oracle of the streamed analysis).

    Parameters
    ----------
    positions : ndarray, shape (T, N, 3), Å (unwrapped)
    cells : ndarray, shape (T, 3, 3), Å
    lags : sequence of int
        Lags in frames.
    rmax, n_bins : histogram range (Å) and bins
    origin_stride, distinct_stride : int
        Origins t = 0, s, 2s, … of the self and the distinct part.
    n_origins : int, optional
        At most this many origins per lag (the first ones).
    distinct : bool

    Returns
    -------
    dict with ``self`` (n_lags, n_bins) int64, ``distinct`` (n_lags, n_bins) int64 or None, ``s2``/``s4``
    (n_lags,) sums of |Δr|², |Δr|⁴, ``n_self``/``n_distinct`` (n_lags,) origins used and ``inv_volume``
    (n_lags,) Σ 1/V over the distinct origins.
    """
    pos = np.asarray(positions, dtype=np.float64)
    cells = np.asarray(cells, dtype=np.float64)
    T, N = pos.shape[:2]
    K = len(lags)
    out = {"self": np.zeros((K, n_bins), np.int64), "distinct": np.zeros((K, n_bins), np.int64) if distinct else None,
           "s2": np.zeros(K), "s4": np.zeros(K), "n_self": np.zeros(K, np.int64), "n_distinct": np.zeros(K, np.int64),
           "inv_volume": np.zeros(K)}
    off = ~np.eye(N, dtype=bool)
    for k, m in enumerate(lags):
        for which, stride in (("self", origin_stride), ("distinct", distinct_stride)):
            if which == "distinct" and not distinct:
                continue
            used = 0
            for t0 in range(0, T - m, stride):
                if n_origins is not None and used >= n_origins:
                    break
                used += 1
                if which == "self":
                    for i in range(N):
                        d = pos[t0 + m, i] - pos[t0, i]
                        r2 = float(d @ d)
                        out["s2"][k] += r2
                        out["s4"][k] += r2 * r2
                        if r2 < rmax * rmax:
                            b = int(np.sqrt(r2) * (n_bins / rmax))
                            if b < n_bins:
                                out["self"][k, b] += 1
                else:
                    d = minimum_image_bruteforce(_reduced(pos[t0 + m][None, :, :] - pos[t0][:, None, :], cells[t0]),
                                                 cells[t0])
                    r = np.sqrt(np.einsum("ijk,ijk->ij", d, d))[off]
                    r = r[r < rmax]
                    b = (r * (n_bins / rmax)).astype(np.int64)
                    out["distinct"][k] += np.bincount(b[b < n_bins], minlength=n_bins)
                    out["inv_volume"][k] += 1.0 / abs(np.linalg.det(cells[t0]))
            out["n_self" if which == "self" else "n_distinct"][k] = used
    return out

