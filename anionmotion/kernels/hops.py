"""Hop kernels (SPEC §3): façade over ``ext/_hops.pyx`` with numpy twins.

The long-lived displacement functional of paper 003 (eq. 5),

    h_i(t; a, Δt, t_a) = Π_{t' = t_a/2 − Δt}^{t_a/2} θ(|r_i(t + t') − r_i(t − t')| − a),

on frames spaced by dt: t' runs over the half-separations m·dt with
m = m_lo … m_hi (see :func:`half_separations`).
"""

from __future__ import annotations

import math

import numpy as np

from .._validate import as_array
from ..errors import OptionError
from ._loader import load_ext

__all__ = ["hop_functional", "hop_functional_ref", "find_runs", "find_runs_ref", "half_separations"]

_hops = load_ext("_hops")


def half_separations(residence, window, dt):
    """Frame range ``(m_lo, m_hi)`` of the half-separations t' = m·dt in eq. 5.

    Parameters
    ----------
    residence : float, ps
        Δt, the residence time before and after the displacement.
    window : float, ps
        t_a, the whole time window (residence + transition + residence).
    dt : float, ps
        Time between frames.

    Returns
    -------
    m_lo, m_hi : int
        m_lo = ⌈(t_a/2 − Δt)/dt⌉ (at least 1), m_hi = ⌊(t_a/2)/dt⌋: every
        t' = m·dt inside [t_a/2 − Δt, t_a/2].

    Raises
    ------
    OptionError
        When the window is shorter than one frame or Δt ≥ t_a/2 (then t' = 0
        would be included and h would always be 0).
    """
    for name, v in (("residence", residence), ("window", window), ("dt", dt)):
        if not (isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v) and v > 0):
            raise OptionError(f"{name} must be a positive time in ps; got {v!r}")
    half = 0.5 * window
    if residence >= half:
        raise OptionError(f"residence (Δt = {residence:g} ps) must be shorter than half the window "
                          f"(t_a/2 = {half:g} ps); otherwise t' = 0 is in the product and h is always 0 "
                          "(paper 003: Δt = 3 ps, t_a = 9 ps)")
    eps = 1e-9
    m_lo = max(1, int(math.ceil((half - residence) / dt - eps)))
    m_hi = int(math.floor(half / dt + eps))
    if m_hi < m_lo:
        raise OptionError(f"no frame separation falls inside [t_a/2 − Δt, t_a/2] = [{half - residence:g}, {half:g}] ps "
                          f"with frames {dt:g} ps apart; widen residence/window")
    return m_lo, m_hi


def hop_functional_ref(pos, a, m_lo, m_hi, out):
    """Numpy twin of the compiled kernel (same IN/OUT contract)."""
    n = pos.shape[0]
    out[...] = 0
    if n <= 2 * m_hi:
        return
    t = np.arange(m_hi, n - m_hi)
    h = np.ones((len(t), pos.shape[1]), dtype=bool)
    for m in range(m_lo, m_hi + 1):
        d = pos[t + m] - pos[t - m]
        h &= np.einsum("tik,tik->ti", d, d) >= a * a
    out[m_hi:n - m_hi] = h


def hop_functional(positions, *, a, m_lo, m_hi, use_ext=True):
    """The long-lived displacement functional h_i(t) on every frame.

    Parameters
    ----------
    positions : ndarray, shape (n_frames, n_atoms, 3), float64, Å
        Unwrapped positions on evenly spaced frames (time axis first).
    a : float, Å
        Minimum displacement.
    m_lo, m_hi : int
        Half-separations in frames (see :func:`half_separations`), 1 ≤ m_lo ≤ m_hi.
    use_ext : bool
        Compiled kernel (True) or the numpy twin.

    Returns
    -------
    h : ndarray, shape (n_frames, n_atoms), uint8
        1 where atom i makes a long-lived displacement centred on frame t.
        Frames t < m_hi and t ≥ n_frames − m_hi are undefined and set to 0.

    Notes
    -----
    h_i(t) = Π_{m=m_lo}^{m_hi} θ(|r_i(t + m) − r_i(t − m)| − a), θ(x) = 1 for
    x ≥ 0 (paper 003 eq. 5).  Cost O(n_frames · n_atoms · (m_hi − m_lo + 1))
    in the worst case; the product stops at its first zero factor.

    References
    ----------
    SPEC §3; paper 003 eq. 5.
    """
    pos = as_array(positions, "positions", shape=(None, None, 3))
    if not (np.isfinite(a) and a > 0):
        raise OptionError(f"a must be a positive distance in Å; got {a!r}")
    m_lo, m_hi = int(m_lo), int(m_hi)
    if not 1 <= m_lo <= m_hi:
        raise OptionError(f"need 1 <= m_lo <= m_hi; got m_lo={m_lo}, m_hi={m_hi}")
    out = np.zeros(pos.shape[:2], dtype=np.uint8)
    (_hops.hop_functional if use_ext else hop_functional_ref)(pos, float(a), m_lo, m_hi, out)
    return out


def find_runs_ref(h):
    """Numpy twin of :func:`find_runs`."""
    h = np.asarray(h, dtype=np.int8)
    pad = np.zeros((1, h.shape[1]), dtype=np.int8)
    d = np.diff(np.concatenate([pad, h, pad]), axis=0).T  # (n_atoms, n_frames + 1)
    ai, si = np.nonzero(d == 1)
    _, ei = np.nonzero(d == -1)
    return ai.astype(np.int64), si.astype(np.int64), ei.astype(np.int64)


def find_runs(h, *, use_ext=True):
    """Maximal runs of consecutive ones in each column of ``h``.

    Parameters
    ----------
    h : ndarray, shape (n_frames, n_atoms), uint8 or bool

    Returns
    -------
    atom, start, stop : ndarray, shape (n_runs,), int64
        Column, first frame and last frame + 1 of every run, sorted by atom then start.
    """
    h = as_array(h, "h", shape=(None, None), dtype=np.uint8)
    if not use_ext:
        return find_runs_ref(h)
    empty = np.zeros(0, dtype=np.int64)
    n = _hops.find_runs(h, empty, empty, empty)
    atom, start, stop = (np.empty(n, dtype=np.int64) for _ in range(3))
    _hops.find_runs(h, atom, start, stop)
    return atom, start, stop
