"""Cross mean-squared displacements by FFT: the MSD tensor and the Einstein cross-displacements (SPEC §9).

For two series a(t), b(t) of T evenly spaced frames the all-origin cross-MSD is

    X_ab(m) = 1/(T − m) Σ_{t=0}^{T−1−m} [a(t+m) − a(t)] · [b(t+m) − b(t)],     m = 0 … T − 1,

(a = b gives the MSD of one direction).  Expanding the product,

    X_ab(m) = [S1_ab(m) − C_ab(m) − C_ba(m)] / (T − m),
    S1_ab(m) = Σ_{t=m}^{T−1} a(t) b(t) + Σ_{t=0}^{T−1−m} a(t) b(t),
    C_ab(m) + C_ba(m) = Σ_t [a(t+m) b(t) + b(t+m) a(t)] = irfft(2 Re(Â · conj B̂))(m),

with Â, B̂ the real FFTs of the series zero-padded to L ≥ 2T − 1 (no wrap-around): the exact all-origin
estimator in O(T log T), the cross version of the MSD's FFT algorithm (:mod:`anionmotion.kernels.msd`).
The series are centred first (X_ab does not change when a constant is added to a or b; centring keeps the
rounding at the level of the positions' spread).

* :func:`cross_msd_rows` — X for pairs of rows (one cross-MSD per row pair);
* :class:`TensorMSDAccumulator` — Σ over atoms of the 3×3 MSD tensor ⟨Δr_a Δr_b⟩, fed by atom-major blocks
  (n_block, 3, T) as read back from a :class:`~anionmotion.analysis.base.SeriesStore`; memory is the block
  buffer plus O(T) sums, whatever the number of atoms;
* :func:`tensor_msd_rows` — the per-atom tensor (n_block, 6, T) of one block;
* :func:`tensor_slopes_rows` — Σ_k w_k of the per-atom tensor at a few lags, without the (n_block, 6, T)
  array (the same numbers as ``tensor_msd_rows(block)[:, :, lags] @ weights``);
* :func:`cross_msd_sum` — Σ over row pairs of the cross-MSD, one row in flight;
* working-set models of these, per atom (:func:`tensor_workspace_bytes_per_atom`) and per row
  (:func:`cross_msd_row_bytes`), that the callers size their blocks with;
* numpy twins, the direct double loop over origins: :func:`cross_msd_ref`, :func:`msd_tensor_ref`.

The twins are O(T²) and are the specification: the FFT versions agree with them to rounding (≈1e-12 of the
series' variance).
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from .._validate import as_array
from .msd import fft_length

__all__ = ["cross_msd_rows", "cross_msd_ref", "TensorMSDAccumulator", "tensor_msd_rows", "msd_tensor_fft",
           "msd_tensor_ref", "PAIRS", "tensor_from_pairs", "tensor_workspace_bytes_per_atom", "tensor_slopes_rows",
           "cross_msd_sum", "cross_msd_row_bytes", "finish_bytes"]

PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
"""Order of the six independent components of a symmetric 3×3 tensor: xx, yy, zz, xy, xz, yz."""


def tensor_from_pairs(v) -> np.ndarray:
    """Symmetric tensor(s) from the six components in :data:`PAIRS` order: (..., 6) → (..., 3, 3)."""
    v = np.asarray(v, dtype=np.float64)
    out = np.empty(v.shape[:-1] + (3, 3))
    for k, (a, b) in enumerate(PAIRS):
        out[..., a, b] = v[..., k]
        out[..., b, a] = v[..., k]
    return out


def tensor_workspace_bytes_per_atom(n_frames: int) -> int:
    """Peak work of one atom in :meth:`TensorMSDAccumulator.add` and :func:`tensor_slopes_rows` (bytes).

    Not counting the caller's block itself (24 B per frame): the centred copy (24 B per frame), the three
    kept spectra (3 × 16 B per frequency of the zero-padded length L) and, at the worst moment, one
    component's transient work — the spectral product, its complex copy inside the inverse FFT and the
    inverse transform (≈ 3 × 8 B per point of L), or the padded input of one forward transform.  Measured with
    tracemalloc (tests/test_onsager.py) this is an upper bound of what numpy allocates.
    """
    T = int(n_frames)
    L = fft_length(T)
    nf = L // 2 + 1
    return 24 * T + 3 * 16 * nf + 3 * 8 * L + 8 * T


def cross_msd_row_bytes(n_frames: int) -> int:
    """Peak work of one row pair in :func:`cross_msd_rows` (bytes): the centred rows, their spectra, the inverse
    transform (alive while the origin sums are formed), the origin sums' temporaries and the result (24 B per
    point of the padded length L plus 96 B per frame; measured ≈ 137 B per frame at L = 2T)."""
    T = int(n_frames)
    L = fft_length(T)
    return 24 * L + 96 * T


def finish_bytes(n_frames: int) -> int:
    """Peak work of :meth:`TensorMSDAccumulator.finish_pairs` besides its (6, T) result (bytes): one
    component's inverse transform and origin sums at a time."""
    T = int(n_frames)
    L = fft_length(T)
    return 24 * L + 48 * T


def _s1(p):
    """S1(m) = Σ_{t=m}^{T−1} p(t) + Σ_{t=0}^{T−1−m} p(t) along the last axis."""
    T = p.shape[-1]
    cs = np.concatenate([np.zeros(p.shape[:-1] + (1,)), np.cumsum(p, axis=-1)], axis=-1)
    m = np.arange(T)
    return (cs[..., T:T + 1] - cs[..., m]) + cs[..., T - m]


def cross_msd_rows(A, B=None, *, workers=2) -> np.ndarray:
    """All-origin cross-MSD of paired rows, by FFT.

    Parameters
    ----------
    A, B : ndarray, shape (n, T), float64
        Series (e.g. positions in Å along one direction), time last; ``B`` None means ``B = A`` (the MSD).
    workers : int
        Threads for scipy.fft.

    Returns
    -------
    ndarray, shape (n, T)
        X_r(m) = 1/(T − m) Σ_t [A_r(t+m) − A_r(t)] [B_r(t+m) − B_r(t)] (units of A·B), X_r(0) = 0.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[0.0, 1.0, 2.0, 3.0]])
    >>> np.round(cross_msd_rows(a, -a), 12).tolist()
    [[0.0, -1.0, -4.0, -9.0]]
    """
    A = np.atleast_2d(np.asarray(A, dtype=np.float64))
    same = B is None
    B = A if same else np.atleast_2d(np.asarray(B, dtype=np.float64))
    if A.shape != B.shape:
        raise ValueError(f"A and B must have the same shape; got {A.shape} and {B.shape}")
    n, T = A.shape
    if T == 0 or n == 0:
        return np.zeros((n, T))
    A = A - A.mean(axis=1, keepdims=True)
    B = A if same else B - B.mean(axis=1, keepdims=True)
    L = fft_length(T)
    FA = scipy.fft.rfft(A, n=L, axis=-1, workers=workers)
    FB = FA if same else scipy.fft.rfft(B, n=L, axis=-1, workers=workers)
    P = 2.0 * (FA.real * FB.real + FA.imag * FB.imag)
    C = scipy.fft.irfft(P, n=L, axis=-1, workers=workers)[:, :T]
    out = (_s1(A * B) - C) / (T - np.arange(T, dtype=np.float64))
    out[:, 0] = 0.0
    return out


def cross_msd_ref(A, B=None) -> np.ndarray:
    """Numpy twin of :func:`cross_msd_rows`: the direct double loop over lags and origins, O(n·T²)."""
    A = np.atleast_2d(np.asarray(A, dtype=np.float64))
    B = A if B is None else np.atleast_2d(np.asarray(B, dtype=np.float64))
    n, T = A.shape
    out = np.zeros((n, T))
    for m in range(1, T):
        acc = np.zeros(n)
        for t in range(T - m):
            acc += (A[:, t + m] - A[:, t]) * (B[:, t + m] - B[:, t])
        out[:, m] = acc / (T - m)
    return out


def tensor_msd_rows(block, *, workers=2) -> np.ndarray:
    """Per-atom MSD tensor of an atom-major block.

    Parameters
    ----------
    block : ndarray, shape (n_block, 3, T), Å
        Positions of ``n_block`` atoms (x, y, z rows), time last.

    Returns
    -------
    ndarray, shape (n_block, 6, T), Å²
        ⟨Δr_a Δr_b⟩(m) of each atom over all origins, components in :data:`PAIRS` order.
    """
    block = np.asarray(block, dtype=np.float64)
    nb, _, T = block.shape
    out = np.zeros((nb, 6, T))
    if nb == 0 or T == 0:
        return out
    c = block - block.mean(axis=2, keepdims=True)
    L = fft_length(T)
    F = scipy.fft.rfft(c, n=L, axis=-1, workers=workers)
    norm = T - np.arange(T, dtype=np.float64)
    for k, (a, b) in enumerate(PAIRS):
        P = 2.0 * (F[:, a].real * F[:, b].real + F[:, a].imag * F[:, b].imag)
        C = scipy.fft.irfft(P, n=L, axis=-1, workers=workers)[:, :T]
        out[:, k] = (_s1(c[:, a] * c[:, b]) - C) / norm
    out[:, :, 0] = 0.0
    return out


def _spectra(c, L, workers):
    """Real FFTs of the three directions of a centred block (n, 3, T), one direction at a time (so that only
    one padded input exists at once); the same numbers as one transform over all the rows."""
    return [scipy.fft.rfft(c[:, a], n=L, axis=-1, workers=workers) for a in range(3)]


def _power(Fa, Fb):
    """2 Re(Fa · conj Fb) with one temporary (the same bits as ``2.0 * (Fa.re Fb.re + Fa.im Fb.im)``)."""
    P = np.multiply(Fa.real, Fb.real)
    t = np.multiply(Fa.imag, Fb.imag)
    P += t
    del t
    P *= 2.0
    return P


def tensor_slopes_rows(block, lags, weights, *, workers=2) -> np.ndarray:
    """Per-atom weighted sums Σ_k w_k ⟨Δr_a Δr_b⟩(lags_k) of the six tensor components, by FFT.

    The same numbers as ``tensor_msd_rows(block)[:, :, lags] @ weights`` (bit for bit), without the
    (n_block, 6, T) array: each component is transformed back and read at ``lags`` before the next.

    Parameters
    ----------
    block : ndarray, shape (n_block, 3, T), Å
        Positions, time last.
    lags : ndarray of int
        Lag indices (0 … T − 1).
    weights : ndarray, shape (len(lags),)
        E.g. the OLS weights of the lag times (ps⁻¹): the result is then the slope of each component.

    Returns
    -------
    ndarray, shape (n_block, 6), Å² × units of ``weights``
    """
    block = np.asarray(block, dtype=np.float64)
    lags = np.asarray(lags, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    nb, _, T = block.shape
    # laid out as ``per[:, :, lags]`` of the (n_block, 6, T) array is (lags outermost), so that the matrix
    # product below sums in the same order and gives the same bits
    vals = np.zeros((len(lags), nb, 6)).transpose(1, 2, 0)
    if nb == 0 or T == 0 or len(lags) == 0:
        return vals @ weights
    c = block - block.mean(axis=2, keepdims=True)
    L = fft_length(T)
    F = _spectra(c, L, workers)
    norm = (T - np.arange(T, dtype=np.float64))[lags]
    for k, (a, b) in enumerate(PAIRS):
        P = _power(F[a], F[b])
        C = scipy.fft.irfft(P, n=L, axis=-1, workers=workers)
        del P
        Cl = C[:, lags]
        del C
        p = c[:, a] * c[:, b]
        cs = np.concatenate([np.zeros((nb, 1)), np.cumsum(p, axis=-1)], axis=-1)
        del p
        s1 = (cs[:, T:T + 1] - cs[:, lags]) + cs[:, T - lags]
        del cs
        vals[:, k] = (s1 - Cl) / norm
    vals[:, :, lags == 0] = 0.0
    return vals @ weights


def cross_msd_sum(A, B=None, *, workers=2) -> np.ndarray:
    """Σ over the row pairs of :func:`cross_msd_rows`, one row pair in flight (peak
    :func:`cross_msd_row_bytes`); the same numbers as ``cross_msd_rows(A, B).sum(axis=0)``.

    Parameters
    ----------
    A, B : ndarray, shape (n, T), float64
        ``B`` None means ``B = A``.

    Returns
    -------
    ndarray, shape (T,)
    """
    A = np.atleast_2d(np.asarray(A, dtype=np.float64))
    B = A if B is None else np.atleast_2d(np.asarray(B, dtype=np.float64))
    if A.shape != B.shape:
        raise ValueError(f"A and B must have the same shape; got {A.shape} and {B.shape}")
    n, T = A.shape
    out = np.zeros(T)
    for r in range(n):
        x = cross_msd_rows(A[r:r + 1], B[r:r + 1], workers=workers)[0]
        if r == 0:
            out = x
        else:
            out += x
    return out


class TensorMSDAccumulator:
    """Σ over atoms of the all-origin MSD tensor, accumulated over atom blocks.

    Parameters
    ----------
    n_frames : int
        T, frames per series (evenly spaced).
    workers : int
        Threads for scipy.fft.

    Notes
    -----
    Keeps Σ_atoms a(t)b(t) (6 × T) and Σ_atoms Re(Â conj B̂) (6 × (L/2 + 1)); :meth:`finish_pairs` applies
    the inverse FFT once per component.  The block's centred copy and spectra are the only per-atom memory,
    so the caller sizes the block from :func:`tensor_workspace_bytes_per_atom` and the budget.
    """

    def __init__(self, n_frames, *, workers=2):
        self.n_frames = int(n_frames)
        self.L = fft_length(self.n_frames)
        self.workers = workers
        self.n_atoms = 0
        self._prod = np.zeros((6, self.n_frames))
        self._power = np.zeros((6, self.L // 2 + 1))

    def add(self, block):
        """Add atoms given as an atom-major block (n_block, 3, T) of positions (Å)."""
        block = np.asarray(block, dtype=np.float64)
        nb = block.shape[0]
        if nb == 0 or self.n_frames == 0:
            return
        if block.shape[1:] != (3, self.n_frames):
            raise ValueError(f"block must have shape (n, 3, {self.n_frames}); got {block.shape}")
        c = block - block.mean(axis=2, keepdims=True)
        F = _spectra(c, self.L, self.workers)
        for k, (a, b) in enumerate(PAIRS):
            self._prod[k] += np.einsum("it,it->t", c[:, a], c[:, b])
            self._power[k] += 2.0 * np.einsum("it,it->t", F[a].real, F[b].real) + \
                2.0 * np.einsum("it,it->t", F[a].imag, F[b].imag)
        self.n_atoms += nb

    def finish_pairs(self):
        """Σ over the atoms added of ⟨Δr_a Δr_b⟩(m) as the six components in :data:`PAIRS` order: array
        (6, T), Å².  One component is transformed back at a time (peak :func:`finish_bytes`)."""
        T = self.n_frames
        out = np.zeros((6, T))
        if T == 0 or self.n_atoms == 0:
            return out
        norm = T - np.arange(T, dtype=np.float64)
        for k in range(6):
            C = scipy.fft.irfft(self._power[k], n=self.L, axis=-1, workers=self.workers)[:T]
            out[k] = (_s1(self._prod[k]) - C) / norm
            del C
        out[:, 0] = 0.0
        return out

    def finish(self):
        """Σ over the atoms added of ⟨Δr_a Δr_b⟩(m): array (T, 3, 3), Å² (divide by ``n_atoms`` for the mean)."""
        return tensor_from_pairs(self.finish_pairs().T)


def msd_tensor_fft(positions, *, workers=2) -> np.ndarray:
    """All-origin MSD tensor of evenly spaced positions, averaged over atoms.

    Parameters
    ----------
    positions : ndarray, shape (n_frames, n_atoms, 3), Å
        Unwrapped positions, time first.

    Returns
    -------
    ndarray, shape (n_frames, 3, 3), Å²
        M_ab(m·dt) = (1/N) Σ_i 1/(T − m) Σ_t Δr_{i,a} Δr_{i,b}; its trace is the MSD of
        :func:`anionmotion.kernels.msd.msd_fft`.

    Examples
    --------
    >>> import numpy as np
    >>> pos = np.zeros((3, 1, 3)); pos[:, 0, 0] = [0, 1, 2]; pos[:, 0, 1] = [0, 2, 4]
    >>> np.round(msd_tensor_fft(pos)[2, :2, :2], 12).tolist()
    [[4.0, 8.0], [8.0, 16.0]]
    """
    pos = as_array(positions, "positions", shape=(None, None, 3))
    T, N = pos.shape[:2]
    acc = TensorMSDAccumulator(T, workers=workers)
    acc.add(np.ascontiguousarray(pos.transpose(1, 2, 0)))
    return acc.finish() / max(N, 1)


def msd_tensor_ref(positions) -> np.ndarray:
    """Numpy twin of :func:`msd_tensor_fft`: direct double loop over lags and origins, O(N·T²)."""
    pos = as_array(positions, "positions", shape=(None, None, 3))
    T, N = pos.shape[:2]
    out = np.zeros((T, 3, 3))
    if N == 0:
        return out
    for m in range(1, T):
        acc = np.zeros((3, 3))
        for t in range(T - m):
            d = pos[t + m] - pos[t]
            acc += d.T @ d
        out[m] = acc / (N * (T - m))
    return out
