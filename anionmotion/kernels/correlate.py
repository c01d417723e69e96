"""Correlation functions by FFT (functional tier, SPEC §6), with direct-sum twins.

Arrays in, arrays out; the time axis comes first.  The FFTs are scipy's
pocketfft in float64 with ``workers=-1`` (all cores), batched over series, and
zero-padded to at least ``2·n_frames`` so that the circular correlation equals
the linear one exactly (Wiener–Khinchin).

Reused by the VACF/VDOS, libration and any other autocorrelation in the package.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from .._validate import as_array
from ..errors import OptionError

__all__ = [
    "acf", "acf_direct_ref", "acf_sum", "acf_sum_ref", "acf_power_rows", "acf_from_power", "acf_sum_rows",
    "acf_nfft", "spectrum_from_acf", "spectrum_from_acf_ref", "lag_window", "WINDOWS", "vacf", "vdos",
]

WINDOWS = ("none", "hann", "hamming", "blackman")
"""Lag windows accepted by :func:`spectrum_from_acf` (applied to the one-sided ACF)."""

_WORKERS = -1


def _n_lags(n_frames, n_lags):
    if n_lags is None:
        return n_frames
    n_lags = int(n_lags)
    if n_lags < 0:
        raise OptionError(f"n_lags must be >= 0; got {n_lags}")
    return min(n_lags, n_frames)


def acf_sum(x, *, n_lags=None, weights=None):
    """Un-normalised origin sums of the autocorrelation, summed over series.

    Parameters
    ----------
    x : ndarray, shape (n_frames, n_series) or (n_frames, n_series, n_comp), float64
        Time series (any unit u); components of one series (e.g. x, y, z of a
        velocity) are dotted together.
    n_lags : int, optional
        Number of lags returned (default ``n_frames``).
    weights : ndarray, shape (n_series,) or (n_series, n_w), optional
        Weight of each series (e.g. the atomic masses); default 1.  With
        several weight columns, one sum per column is returned from the same
        forward transforms.

    Returns
    -------
    ndarray, shape (n_lags,) or (n_lags, n_w), float64, u²
        S(m) = Σ_i w_i Σ_{t=0}^{T−1−m} x_i(t)·x_i(t+m).  Divide by (T − m) for
        the all-origin average.

    Notes
    -----
    One zero-padded forward FFT per series, Σ_i w_i |X_i(k)|² summed in
    frequency space (linearity), then a single inverse FFT: the cost is
    O(n_series · T log T) and the memory O(block · T).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise ValueError(f"x must have shape (n_frames, n_series) or (n_frames, n_series, n_comp); got {x.shape}")
    T, n_series, n_comp = x.shape
    L = _n_lags(T, n_lags)
    one_d = weights is None or np.ndim(weights) == 1
    if weights is None:
        weights = np.ones((n_series, 1))
    else:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim == 1:
            weights = weights[:, None]
        weights = as_array(weights, "weights", shape=(n_series, None))
    n_w = weights.shape[1]
    if T == 0 or L == 0 or n_series == 0:
        return np.zeros(L) if one_d else np.zeros((L, n_w))
    nfft = scipy.fft.next_fast_len(2 * T, real=True)
    nf = nfft // 2 + 1
    power = np.zeros((nf, n_w))
    # blocks of series (complex work array near 64 MB); pocketfft zero-pads and transforms along the time
    # axis in its own cache-friendly column batches; |F|² is summed over components with one einsum on the
    # (re, im) float view, then weighted per series
    block = max(1, min(n_series, int(64e6 // (16 * nf * n_comp))))
    for i0 in range(0, n_series, block):
        nb = min(block, n_series - i0)
        f = scipy.fft.rfft(x[:, i0:i0 + nb, :].reshape(T, nb * n_comp), n=nfft, axis=0, workers=_WORKERS)
        fv = f.view(np.float64).reshape(nf, nb, 2 * n_comp)
        power += np.einsum("kic,kic->ki", fv, fv) @ weights[i0:i0 + nb]
        del f, fv
    out = scipy.fft.irfft(power, n=nfft, axis=0, workers=_WORKERS)[:L]
    return out[:, 0] if one_d else out


def acf_nfft(n_frames) -> int:
    """Transform length of the zero-padded all-origin correlation of ``n_frames`` frames (≥ 2·n_frames)."""
    return scipy.fft.next_fast_len(2 * int(n_frames), real=True)


def _row_weights(weights, n_rows):
    one_d = weights is None or np.ndim(weights) == 1
    if weights is None:
        w = np.ones((n_rows, 1))
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim == 1:
            w = w[:, None]
        w = as_array(w, "weights", shape=(n_rows, None))
    return w, one_d


def acf_power_rows(rows, nfft, *, weights=None):
    """Weighted power spectra Σ_r w_r |X_r(k)|² of row-major series (one block of an out-of-core ACF).

    Parameters
    ----------
    rows : ndarray, shape (n_rows, n_frames), float64
        One series per row (e.g. one Cartesian component of one atom's velocity), time along the row:
        the layout of :class:`anionmotion.analysis.base.SeriesStore`.
    nfft : int
        Zero-padded transform length, at least ``2·n_frames`` (see :func:`acf_nfft`).
    weights : ndarray, shape (n_rows,) or (n_rows, n_w), optional
        Weight of each row (default 1); several columns give several weighted sums from the same transforms.

    Returns
    -------
    ndarray, shape (nfft // 2 + 1, n_w), float64, u²
        Power spectra summed over the rows, one column per weight column.  The sum over blocks of rows
        is the power spectrum of the whole set (linearity), and :func:`acf_from_power` turns it into the
        origin sums S(m) of :func:`acf_sum`.

    Notes
    -----
    Rows are transformed in sub-blocks whose complex work array is about 64 MB, so the working memory is
    that plus the input block; cost O(n_rows · T log T).
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2:
        raise ValueError(f"rows must have shape (n_rows, n_frames); got {rows.shape}")
    n_rows, T = rows.shape
    nfft = int(nfft)
    if nfft < 2 * T:
        raise OptionError(f"nfft must be >= 2·n_frames = {2 * T}; got {nfft}")
    w, _ = _row_weights(weights, n_rows)
    nf = nfft // 2 + 1
    power = np.zeros((nf, w.shape[1]))
    if n_rows == 0 or T == 0:
        return power
    sub = max(1, min(n_rows, int(64e6 // (16 * nf))))
    for i0 in range(0, n_rows, sub):
        nb = min(sub, n_rows - i0)
        f = scipy.fft.rfft(rows[i0:i0 + nb], n=nfft, axis=1, workers=_WORKERS)
        fv = f.view(np.float64).reshape(nb, nf, 2)
        p = np.einsum("ikc,ikc->ik", fv, fv)
        del f, fv
        power += p.T @ w[i0:i0 + nb]
        del p
    return power


def acf_from_power(power, nfft, n_lags):
    """Origin sums S(m), m < ``n_lags``, from summed power spectra (inverse FFT of :func:`acf_power_rows`).

    Returns
    -------
    ndarray, shape (n_lags, n_w), float64, u²
    """
    power = np.asarray(power, dtype=np.float64)
    return scipy.fft.irfft(power, n=int(nfft), axis=0, workers=_WORKERS)[:int(n_lags)]


def acf_sum_rows(rows, *, n_lags=None, weights=None):
    """:func:`acf_sum` for row-major series: S(m) = Σ_r w_r Σ_t x_r(t) x_r(t+m).

    Parameters
    ----------
    rows : ndarray, shape (n_rows, n_frames), float64
    n_lags : int, optional
    weights : ndarray, shape (n_rows,) or (n_rows, n_w), optional

    Returns
    -------
    ndarray, shape (n_lags,) or (n_lags, n_w), u²
        Equals ``acf_sum(rows.T, weights=...)`` (and, with the three components of each atom as three rows
        of equal weight, ``acf_sum`` of the (T, n_atoms, 3) array).
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2:
        raise ValueError(f"rows must have shape (n_rows, n_frames); got {rows.shape}")
    n_rows, T = rows.shape
    L = _n_lags(T, n_lags)
    w, one_d = _row_weights(weights, n_rows)
    if T == 0 or L == 0 or n_rows == 0:
        return np.zeros(L) if one_d else np.zeros((L, w.shape[1]))
    nfft = acf_nfft(T)
    out = acf_from_power(acf_power_rows(rows, nfft, weights=w), nfft, L)
    return out[:, 0] if one_d else out


def acf_sum_ref(x, *, n_lags=None, weights=None):
    """Direct-sum twin of :func:`acf_sum` (O(T²); the specification and test oracle)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    T, n_series = x.shape[:2]
    L = _n_lags(T, n_lags)
    w = np.ones(n_series) if weights is None else np.asarray(weights, dtype=np.float64)
    out = np.zeros((L,) + w.shape[1:])
    for m in range(L):
        prod = np.einsum("tic,tic->i", x[:T - m], x[m:])
        out[m] = prod @ w
    return out


def acf(x, *, n_lags=None):
    """All-origin autocorrelation of each series, by FFT.

    Parameters
    ----------
    x : ndarray, shape (n_frames,) or (n_frames, ...), float64
        Series along axis 0; every trailing index is an independent series.
    n_lags : int, optional
        Number of lags (default ``n_frames``).

    Returns
    -------
    ndarray, shape (n_lags,) + x.shape[1:], u²
        C(m) = 1/(T − m) Σ_{t=0}^{T−1−m} x(t) x(t+m)  (every origin; no mean subtracted).

    Examples
    --------
    >>> import numpy as np
    >>> from anionmotion.kernels.correlate import acf
    >>> acf(np.array([1.0, 2.0, 3.0])).round(6).tolist()
    [4.666667, 4.0, 3.0]
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension (time first); got a scalar")
    T = x.shape[0]
    L = _n_lags(T, n_lags)
    if T == 0 or L == 0:
        return np.zeros((L,) + x.shape[1:])
    nfft = scipy.fft.next_fast_len(2 * T, real=True)
    f = scipy.fft.rfft(x, n=nfft, axis=0, workers=_WORKERS)
    s = scipy.fft.irfft(f.real ** 2 + f.imag ** 2, n=nfft, axis=0, workers=_WORKERS)[:L]
    norm = (T - np.arange(L, dtype=np.float64)).reshape((L,) + (1,) * (x.ndim - 1))
    return s / norm


def acf_direct_ref(x, *, n_lags=None):
    """Direct double-loop twin of :func:`acf` (O(T²))."""
    x = np.asarray(x, dtype=np.float64)
    T = x.shape[0]
    L = _n_lags(T, n_lags)
    out = np.zeros((L,) + x.shape[1:])
    for m in range(L):
        out[m] = (x[:T - m] * x[m:]).mean(axis=0)
    return out


def lag_window(name, n):
    """One-sided lag window w(m), m = 0..n−1, with w(0) = 1 and w → 0 at m = n.

    ``hann``: cos²(π m / (2n)) (right half of a Hann window of length 2n);
    ``hamming`` and ``blackman`` likewise; ``none``: all ones.
    """
    if name is None:
        name = "none"
    name = str(name).lower()
    if name not in WINDOWS:
        raise OptionError(f"invalid window {name!r}; choose one of {', '.join(WINDOWS)}")
    m = np.arange(n, dtype=np.float64)
    x = np.pi * m / max(n, 1)  # 0 .. π
    if name == "none":
        return np.ones(n)
    if name == "hann":
        return 0.5 + 0.5 * np.cos(x)
    if name == "hamming":
        return 0.54 + 0.46 * np.cos(x)
    return 0.42 + 0.5 * np.cos(x) + 0.08 * np.cos(2 * x)


def spectrum_from_acf(c, dt, *, window="none", nfft=None):
    """Power spectrum (one-sided in ν ≥ 0) of an even correlation function given for t ≥ 0.

    Parameters
    ----------
    c : ndarray, shape (n_lags, ...), float64, u²
        C(m Δt) for m = 0 … n_lags−1 (the function is even: C(−t) = C(t)).
    dt : float, ps
        Lag spacing.
    window : {"none", "hann", "hamming", "blackman"}
        Lag window applied before the transform (see :func:`lag_window`).
    nfft : int, optional
        Transform length (≥ 2·n_lags − 1; default the next fast length).

    Returns
    -------
    freq : ndarray, shape (nfft // 2 + 1,), THz
    spec : ndarray, shape (nfft // 2 + 1, ...), u²·ps
        G(ν) = ∫ C(t) e^{−2πiνt} dt = Δt [w(0)C(0) + 2 Σ_{m≥1} w(m) C(m) cos(2πν mΔt)].

    Notes
    -----
    ∫_{−∞}^{∞} G dν = C(0), so ∫_0^{ν_Nyq} G dν = C(0)/2 on the discrete grid.
    """
    c = np.asarray(c, dtype=np.float64)
    n = c.shape[0]
    if n == 0:
        raise ValueError("c must contain at least one lag")
    if not (np.isfinite(dt) and dt > 0):
        raise OptionError(f"dt must be a positive time step in ps; got {dt}")
    w = lag_window(window, n).reshape((n,) + (1,) * (c.ndim - 1))
    cw = c * w
    if nfft is None:
        nfft = scipy.fft.next_fast_len(max(2 * n - 1, 2), real=True)
    elif nfft < 2 * n - 1:
        raise OptionError(f"nfft must be >= 2·n_lags − 1 = {2 * n - 1}; got {nfft}")
    f = scipy.fft.rfft(cw, n=nfft, axis=0, workers=_WORKERS)
    spec = dt * (2.0 * f.real - cw[:1])
    freq = np.fft.rfftfreq(nfft, d=dt)
    return freq, spec


def spectrum_from_acf_ref(c, dt, *, window="none", nfft=None):
    """Cosine-sum twin of :func:`spectrum_from_acf` (O(n_lags · n_freq))."""
    c = np.asarray(c, dtype=np.float64)
    n = c.shape[0]
    if nfft is None:
        nfft = scipy.fft.next_fast_len(max(2 * n - 1, 2), real=True)
    w = lag_window(window, n)
    freq = np.fft.rfftfreq(nfft, d=dt)
    m = np.arange(n)
    coef = np.where(m == 0, 1.0, 2.0) * w
    cosmat = np.cos(2 * np.pi * np.outer(freq, m * dt))  # (nfreq, n)
    spec = dt * np.tensordot(cosmat * coef, c, axes=(1, 0))
    return freq, spec


def vacf(vel, *, masses=None, n_lags=None):
    """All-origin velocity autocorrelation of a set of atoms (functional tier).

    Parameters
    ----------
    vel : ndarray, shape (n_frames, n_atoms, 3), float64, Å/ps
    masses : ndarray, shape (n_atoms,), amu, optional
        Mass weights; default 1.
    n_lags : int, optional

    Returns
    -------
    ndarray, shape (n_lags,), Å²/ps² (amu·Å²/ps² with masses)
        (1/N) Σ_i m_i ⟨v_i(t0+t)·v_i(t0)⟩_{t0}.
    """
    vel = as_array(vel, "vel", shape=(None, None, 3))
    T, n = vel.shape[:2]
    if T == 0 or n == 0:
        raise OptionError(f"vel must hold at least one frame and one atom; got shape {vel.shape}")
    s = acf_sum(vel, n_lags=n_lags, weights=masses)
    return s / ((T - np.arange(len(s))) * n)


def vdos(vel, masses, dt, *, window="hann", n_lags=None):
    """Mass-weighted vibrational density of states of a set of atoms (functional tier, SPEC §6).

    Parameters
    ----------
    vel : ndarray, shape (n_frames, n_atoms, 3), float64, Å/ps
    masses : ndarray, shape (n_atoms,), amu
    dt : float, ps
        Time between frames.
    window : str
        Lag window (see :func:`lag_window`).
    n_lags : int, optional
        Lags of the VACF kept (default all).

    Returns
    -------
    freq : ndarray, shape (n_freq,), THz
    g : ndarray, shape (n_freq,), 1/THz
        Normalised so that ∫_0^{ν_Nyq} g dν = 3·n_atoms (trapezoid rule).

    Examples
    --------
    >>> import numpy as np
    >>> from anionmotion.kernels.correlate import vdos
    >>> t = np.arange(400) * 0.01
    >>> v = np.cos(2 * np.pi * 5.0 * t)[:, None, None] * np.ones((1, 2, 3))
    >>> f, g = vdos(v, np.ones(2), 0.01)
    >>> round(float(f[np.argmax(g)]), 1), round(float(np.trapezoid(g, f)), 6)
    (5.0, 6.0)
    """
    vel = as_array(vel, "vel", shape=(None, None, 3))
    masses = as_array(masses, "masses", shape=(vel.shape[1],))
    if vel.shape[0] < 2:
        raise OptionError(f"a VDOS needs at least 2 frames; got {vel.shape[0]}")
    c = vacf(vel, masses=masses, n_lags=n_lags)
    freq, G = spectrum_from_acf(c, dt, window=window)
    area = np.trapezoid(G, freq)
    if not area > 0:
        raise OptionError("the velocity autocorrelation has no positive spectral weight (all velocities zero?)")
    return freq, G * (3 * vel.shape[1] / area)
