"""Polyanion reorientation (SPEC §4): C1(t) … C4(t), relaxation times, rotation events, rotor functions,
orientation states, ν_rot (and ν_rot/ν_hop) with confidence intervals, ρ(θ, φ).

Functional tier
    :func:`orientation_acf` — exact all-origin C1 and C2 of unit vectors by FFT
    (zero padding, blocks of vectors in bounded memory);
    :func:`orientation_acf_direct` — the O(T²) double loop it must equal.
Analysis tier
    :class:`Reorientation` (an :class:`~anionmotion.analysis.base.AnalysisBase`)
    and its functional wrapper :func:`reorientation` — identify the polyanions,
    stream their ligand vectors chunk by chunk in bounded memory, and return a
    :class:`ReorientationResult` with the ACFs (exact all-origin FFT from a
    series store that goes to a scratch file when it exceeds the budget),
    relaxation times (integral and stretched exponential), the ``rotating``
    flag, angle projections (to CSV, with a strided preview), rotation events
    (70° threshold with a resetting reference, and a symmetry-aware variant,
    found online) with the rotation frequency, and the ligand-direction density
    ρ(θ, φ) (bin counts accumulated per chunk).
Issue 12 (docs/rotor-functions.md)
    :func:`legendre_acf` (twin :func:`legendre_acf_direct`) — exact C_l, l ≤ 4, by FFTs of
    monomials; cubic-harmonic rotor functions (:func:`rotor_acf`, twin :func:`rotor_acf_direct`;
    kernels in :mod:`anionmotion.kernels.polyanion`); :func:`ligand_rotation_group` and the
    orientation-state transitions (streamed :class:`_StateStream`, twin
    :func:`orientation_states_direct`); :func:`rate_ci`, :func:`rate_ratio_ci` and
    :func:`frequency_match` (ν_rot/ν_hop with intervals).
"""

from __future__ import annotations

import math
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.fft

from .._validate import parse_memory
from ..errors import OptionError
from ..kernels.events import rotation_events_symmetry, rotation_events_threshold
from ..kernels.polyanion import fill_components, normalize_vectors, rotor_sums, state_scores
from ..results import Result
from .base import AnalysisBase, FrameTableWriter, SeriesStore
from .polyanions import LigandDepartures, Polyanions, find_polyanions

__all__ = ["reorientation", "Reorientation", "ReorientationResult", "orientation_acf", "orientation_acf_direct",
           "legendre_acf", "legendre_acf_direct", "legendre_power_coefficients", "LEGENDRE_MAX", "ROTOR_SETS",
           "rotor_harmonics", "rotor_spread", "rotor_acf", "rotor_acf_direct", "ligand_rotation_group",
           "orientation_states_direct", "rate_ci", "rate_ratio_ci", "frequency_match",
           "DEFAULT_STATE_TOLERANCE_DEG", "DEFAULT_STATE_DEBOUNCE", "DEFAULT_SHAPE_TOLERANCE_DEG",
           "fit_relaxation", "kabsch_angle", "ligand_density", "ligand_density_counts", "density_from_counts",
           "density_edges", "read_unit_vectors", "DEFAULT_THRESHOLD_DEG", "DEFAULT_SITE_TOLERANCE_DEG",
           "RELIABLE_FRACTION", "ROTATING_C1"]

DEFAULT_THRESHOLD_DEG = 70.0
"""Rotation-event threshold (paper 000)."""
DEFAULT_SITE_TOLERANCE_DEG = 30.0
"""Symmetry-aware events: a ligand sits on a reference site when within this angle."""
RELIABLE_FRACTION = 0.5
"""Longest reliable lag = this fraction of the trajectory span (every lag up to it averages ≥ T/2 origins)."""
ROTATING_C1 = 0.9
"""Paper 003: significant reorientation when C1 falls below 0.9."""
DEFAULT_MEMORY = 256 * 1024 ** 2
"""Bytes of FFT work buffers per block of vectors (:func:`orientation_acf` default; cap of the streamed blocks)."""


# ------------------------------------------------------------------ functional
def orientation_acf(u, *, memory=None, workers=-1, use_ext=True):
    """All-origin reorientation ACFs C1 and C2 of unit vectors, exactly, by FFT.

    Parameters
    ----------
    u : ndarray, shape (n_frames, n_vectors, 3), float64
        Unit vectors (e.g. centre→ligand directions), time axis first.  May be
        a read-only ``numpy.memmap``; it is read in blocks of vectors.
    memory : int or str, optional
        Budget for the FFT work buffers (default 256 MB).
    workers : int
        Threads for ``scipy.fft`` (−1 = all cores).
    use_ext : bool
        Fill the FFT buffers with the compiled kernel (True) or numpy.

    Returns
    -------
    C1, C2 : ndarray, shape (n_frames,), float64
        C1(m) = ⟨u(t0+m)·u(t0)⟩ and C2(m) = ⟨P2(u(t0+m)·u(t0))⟩, averaged over
        all n_frames − m origins and all vectors; dimensionless, lag m in frames.

    Notes
    -----
    C1(m) = Σ_k A_k(m) / (N (T − m)) with A_k the autocorrelation of the
    component u_k; C2 uses cos² = Σ_{k,l} u_k u_l(t0) u_k u_l(t0+m), i.e. the
    autocorrelations of the 6 distinct products u_k u_l (off-diagonal ones
    counted twice): C2 = (3⟨cos²⟩ − 1)/2.  Each autocorrelation is
    irfft(|rfft(x, n_fft)|²) with n_fft ≥ 2T − 1 (zero padding: no wrap-around),
    and because the transform is linear the power spectra are summed over
    vectors before the single inverse transform.  Identical to the direct
    double loop (:func:`orientation_acf_direct`) to rounding.

    References
    ----------
    SPEC §4; paper 003 eq. 4.
    """
    if not hasattr(u, "shape") or len(u.shape) != 3 or u.shape[2] != 3:
        u = np.asarray(u, dtype=np.float64)
        if u.ndim != 3 or u.shape[2] != 3:
            raise ValueError(f"u must have shape (n_frames, n_vectors, 3); got {u.shape}")
    n, nv = int(u.shape[0]), int(u.shape[1])
    if n == 0:
        return np.zeros(0), np.zeros(0)
    if nv == 0:
        raise ValueError("u has no vectors (shape (n_frames, 0, 3))")
    budget = DEFAULT_MEMORY if memory is None else parse_memory(memory)
    nfft = scipy.fft.next_fast_len(2 * n - 1, real=True)
    # per vector: 9 real rows of nfft plus their complex spectra (≈ same size) plus the input block
    per_vec = 9 * nfft * 8 * 2 + n * 3 * 8
    block = int(max(1, min(nv, budget // per_vec)))
    c1buf = np.zeros((3 * block, nfft))
    c2buf = np.zeros((6 * block, nfft))
    p1 = np.zeros(nfft // 2 + 1)
    p2 = np.zeros(nfft // 2 + 1)
    w2 = np.tile(np.array([1.0, 1, 1, 2, 2, 2]), block)
    for v0 in range(0, nv, block):
        nb = min(block, nv - v0)
        blk = np.ascontiguousarray(u[:, v0:v0 + nb, :], dtype=np.float64)
        if nb < block:
            c1buf = np.zeros((3 * nb, nfft))
            c2buf = np.zeros((6 * nb, nfft))
            w2 = w2[:6 * nb]
        fill_components(blk, 0, c1buf, c2buf, use_ext=use_ext)
        f = scipy.fft.rfft(c1buf, axis=1, workers=workers)
        p1 += (f.real ** 2 + f.imag ** 2).sum(axis=0)
        f = scipy.fft.rfft(c2buf, axis=1, workers=workers)
        p2 += w2 @ (f.real ** 2 + f.imag ** 2)
        del f
    norm = nv * (n - np.arange(n, dtype=np.float64))
    c1 = scipy.fft.irfft(p1, nfft, workers=workers)[:n] / norm
    cos2 = scipy.fft.irfft(p2, nfft, workers=workers)[:n] / norm
    return c1, 1.5 * cos2 - 0.5


def orientation_acf_direct(u):
    """Direct O(T²) double loop over origins and lags (the oracle of :func:`orientation_acf`).

    Parameters
    ----------
    u : ndarray, shape (n_frames, n_vectors, 3)

    Returns
    -------
    C1, C2 : ndarray, shape (n_frames,)
    """
    u = np.asarray(u, dtype=np.float64)
    n = u.shape[0]
    c1 = np.zeros(n)
    c2 = np.zeros(n)
    for m in range(n):
        c = np.einsum("tvk,tvk->tv", u[m:], u[:n - m])
        c1[m] = c.mean()
        c2[m] = (1.5 * c ** 2 - 0.5).mean()
    return c1, c2


# ------------------------------------------------------------ Legendre C_l, l = 1…4
LEGENDRE_MAX = 4
"""Highest Legendre order of the reorientation ACFs (C1 … C4)."""


def _monomials(n):
    """Exponent triples (a, b, c) with a + b + c = n and their multinomial weights n!/(a! b! c!)."""
    f = math.factorial
    return [((a, b, n - a - b), f(n) // (f(a) * f(b) * f(n - a - b)))
            for a in range(n, -1, -1) for b in range(n - a, -1, -1)]


def legendre_power_coefficients(l):
    """Coefficients a_j of P_l(c) = Σ_j a_j c^j, j = 0 … l (float64)."""
    return np.polynomial.legendre.leg2poly([0.0] * l + [1.0])


def _legendre_from_moments(moments):
    """C_l = Σ_j a_lj ⟨c^j⟩ from the moments ⟨c^n⟩, n = 1 … lmax (shape (lmax, …)); returns (lmax, …)."""
    lmax = len(moments)
    out = np.empty_like(moments)
    for l in range(1, lmax + 1):
        a = legendre_power_coefficients(l)
        out[l - 1] = a[0] + sum(a[j] * moments[j - 1] for j in range(1, l + 1))
    return out


def legendre_acf(u, lmax=LEGENDRE_MAX, *, memory=None, workers=-1):
    """All-origin Legendre reorientation ACFs C_l(t) = ⟨P_l(u(t0+t)·u(t0))⟩, l = 1 … lmax, exactly by FFT.

    Parameters
    ----------
    u : ndarray, shape (n_frames, n_vectors, 3), float64
        Unit vectors, time axis first.
    lmax : int
        Highest order (1 … 4 is what the analysis uses; any positive order works).
    memory : int or str, optional
        Budget of the FFT work buffers (default 256 MB).
    workers : int
        Threads of ``scipy.fft``.

    Returns
    -------
    ndarray, shape (lmax, n_frames)
        Row l − 1 is C_l at lags 0 … n_frames − 1 (frames); dimensionless.

    Notes
    -----
    With c = u(t0)·u(t0+m) = Σ_k u_k(t0) u_k(t0+m), the multinomial theorem gives
    c^n = Σ_{a+b+c=n} n!/(a! b! c!) · x^a y^b z^c (t0) · x^a y^b z^c (t0+m),
    so ⟨c^n⟩(m) is a weighted sum of the autocorrelations of the (n+1)(n+2)/2
    monomials of degree n (3, 6, 10, 15 for n = 1 … 4), each exact and
    all-origin by a zero-padded FFT.  Then C_l = Σ_j a_lj ⟨c^j⟩ with the power
    coefficients of P_l: P3 = (5c³ − 3c)/2, P4 = (35c⁴ − 30c² + 3)/8.  C1 and C2
    equal :func:`orientation_acf`.  Twin: :func:`legendre_acf_direct`.
    """
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 3 or u.shape[2] != 3:
        raise ValueError(f"u must have shape (n_frames, n_vectors, 3); got {u.shape}")
    lmax = int(lmax)
    if lmax < 1:
        raise ValueError(f"lmax must be a positive integer; got {lmax}")
    n, nv = u.shape[:2]
    if n == 0:
        return np.zeros((lmax, 0))
    if nv == 0:
        raise ValueError("u has no vectors (shape (n_frames, 0, 3))")
    budget = DEFAULT_MEMORY if memory is None else parse_memory(memory)
    nfft = scipy.fft.next_fast_len(2 * n - 1, real=True)
    per_vec = 8 * (3 * n * (lmax + 1) + 2 * 3 * nfft + 3 * (nfft // 2 + 1) * 2)
    block = int(max(1, min(nv, budget // per_vec)))
    power = np.zeros((lmax, 1, nfft // 2 + 1))
    pad = np.zeros((3 * block, nfft))
    for v0 in range(0, nv, block):
        nb = min(block, nv - v0)
        rows = np.ascontiguousarray(u[:, v0:v0 + nb, :].transpose(1, 2, 0)).reshape(3 * nb, n)
        power += _moment_power((rows, nfft, np.ones((1, nb)), workers, lmax), pad)
    mom = scipy.fft.irfft(power[:, 0], nfft, axis=1, workers=workers)[:, :n] / (nv * (n - np.arange(n)))
    return _legendre_from_moments(mom)


def legendre_acf_direct(u, lmax=LEGENDRE_MAX):
    """Direct O(T²) double loop of ⟨P_l(u(t0+m)·u(t0))⟩ (the oracle of :func:`legendre_acf`), shape (lmax, T)."""
    u = np.asarray(u, dtype=np.float64)
    n = u.shape[0]
    out = np.zeros((lmax, n))
    polys = [np.polynomial.legendre.Legendre.basis(l) for l in range(1, lmax + 1)]
    for m in range(n):
        c = np.einsum("tvk,tvk->tv", u[m:], u[:n - m])
        for l in range(lmax):
            out[l, m] = polys[l](c).mean()
    return out


# ------------------------------------------------------------------- rotor functions
ROTOR_SETS = {"td": (3, 4), "oh": (4, 6), "cubic": (3, 4, 6)}
"""Cubic harmonics of each ``rotor`` choice (``auto``: td for 4 ligands, oh for 6, cubic otherwise)."""
ROTOR_TRIVIAL = 0.05
"""A rotor function is dropped when its spread over random orientations of the ligand set is below this
fraction of √n_ligands (the spread for independent random directions): the ligand set is a spherical design
of that order (e.g. K_3 of an octahedron, K_4 of an icosahedron) and F_l is constant."""


def rotor_harmonics(rotor, n_ligands):
    """Degrees l of the cubic harmonics for a ``rotor`` choice and the anions' ligand counts."""
    rotor = "auto" if rotor is None else str(rotor).lower()
    if rotor == "none":
        return ()
    if rotor == "auto":
        counts = set(int(c) for c in np.atleast_1d(n_ligands))
        rotor = "td" if counts == {4} else "oh" if counts == {6} else "cubic"
    if rotor not in ROTOR_SETS:
        raise OptionError(f"invalid rotor {rotor!r}; choose one of auto, td, oh, cubic, none")
    return ROTOR_SETS[rotor]


def rotor_spread(u0, n_valid, ls, *, n_rotations=64, seed=0):
    """Spread of F_l over random orientations of each anion's ligand set, per anion and harmonic.

    Returns
    -------
    ndarray, shape (n_anions, len(ls))
        Standard deviation of F_l = Σ_k K_l(R u_k) over ``n_rotations`` uniformly random R (fixed seed),
        divided by √n_ligands.  Near 0: F_l does not depend on the orientation (see :data:`ROTOR_TRIVIAL`).
    """
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n_rotations, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    R = np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
                  np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
                  np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], 1)
    ur = np.einsum("rij,alj->rali", R, np.nan_to_num(u0))                              # (R, A, L, 3)
    F = rotor_sums(ur, n_valid, ls)                                                     # (R, A, H)
    return F.std(axis=0) / np.sqrt(np.maximum(np.asarray(n_valid), 1))[:, None]


def rotor_acf(F):
    """Normalised all-origin rotor-function ACFs C_F,l(t) = Σ_a ⟨F_a(t0) F_a(t0+t)⟩ / Σ_a ⟨F_a²⟩, by FFT.

    Parameters
    ----------
    F : ndarray, shape (n_frames, n_anions, n_harmonics)

    Returns
    -------
    ndarray, shape (n_harmonics, n_frames)
        NaN for a harmonic with Σ_a ⟨F_a²⟩ = 0.  No mean is subtracted: libration about a fixed orientation
        keeps C_F near 1, only a change of orientation (not a symmetry of the anion or of the cubic lab axes)
        decorrelates it.  Twin: :func:`rotor_acf_direct`.
    """
    F = np.asarray(F, dtype=np.float64)
    n = F.shape[0]
    nfft = scipy.fft.next_fast_len(2 * n - 1, real=True)
    f = scipy.fft.rfft(F, n=nfft, axis=0)
    acf = scipy.fft.irfft((f.real ** 2 + f.imag ** 2).sum(axis=1), nfft, axis=0)[:n].T / (n - np.arange(n))
    with np.errstate(invalid="ignore", divide="ignore"):
        return acf / np.where(acf[:, :1] > 0, acf[:, :1], np.nan)


def rotor_acf_direct(F):
    """Direct O(T²) twin of :func:`rotor_acf`."""
    F = np.asarray(F, dtype=np.float64)
    n = F.shape[0]
    out = np.array([[np.mean(np.sum(F[m:, :, h] * F[:n - m, :, h], axis=1)) for m in range(n)]
                    for h in range(F.shape[2])])
    with np.errstate(invalid="ignore", divide="ignore"):
        return out / np.where(out[:, :1] > 0, out[:, :1], np.nan)


# ---------------------------------------------------------------- orientation states
DEFAULT_SHAPE_TOLERANCE_DEG = 25.0
"""A ligand permutation is a rotation of the anion when the best-fit rotated first-frame ligands land on the
sites they are mapped to with an RMS angle below this (and below 0.3 × the smallest ligand–ligand angle)."""
DEFAULT_STATE_TOLERANCE_DEG = 30.0
"""An anion is in orientation state g when the mean angle-cosine of its ligands to the sites of g exceeds
cos(this angle)."""
DEFAULT_STATE_DEBOUNCE = 3
"""A new orientation state counts when the anion stays in it for this many consecutive frames."""


def _triad(a, b):
    """Orthonormal frame (columns) from two non-parallel directions: a, b ⟂ a, a × b."""
    e1 = a / np.linalg.norm(a)
    e2 = b - np.dot(b, e1) * e1
    e2 /= np.linalg.norm(e2)
    return np.column_stack([e1, e2, np.cross(e1, e2)])


def ligand_rotation_group(dirs, tolerance_deg=DEFAULT_SHAPE_TOLERANCE_DEG):
    """Ligand permutations that are proper rotations of a ligand set (its rotational point group).

    Parameters
    ----------
    dirs : ndarray, shape (n, 3)
        Unit centre→ligand directions of one anion (e.g. its first frame).
    tolerance_deg : float, degrees
        Largest RMS angle between the best-fit rotated ligands and the sites they are mapped to (capped at
        0.3 × the smallest ligand–ligand angle, so that a crowded set cannot be mislabelled).

    Returns
    -------
    ndarray, shape (n_ops, n), int64
        Row g maps ligand k onto site ``perm[g, k]``; the identity first, then lexicographic order.
        12 rows for a tetrahedron (T), 24 for an octahedron (O), 6 for a trigonal plane (D3).

    Notes
    -----
    Every rotation of the set maps a reference pair of ligands (0 and the one
    closest to perpendicular to it) onto some ordered pair (k, l) with the
    same angle, and is fixed by it: R = F(u_k, u_l) F(u_0, u_j)ᵀ with F the
    orthonormal triad of a pair.  Each candidate assignment is refitted by
    Kabsch over all ligands and kept when every ligand stays nearest to its
    site and the RMS angle is within the tolerance: O(n²) candidates, no n!
    enumeration.  The set is then closed under composition (products passing
    the same test) and, should it still not be a group, the worst-fitting
    operations are dropped until it is.  Two ligands: identity and, when they
    are antiparallel, the swap.  Reflections (improper operations) are not
    rotations and are never included.
    """
    d = np.asarray(dirs, dtype=np.float64)
    n = len(d)
    ident = np.arange(n)[None, :]
    if n < 2:
        return ident
    cosmin = math.cos(math.radians(tolerance_deg))
    c = np.clip(d @ d.T, -1, 1)
    if n == 2 or np.all(np.abs(c[0]) > cosmin):                    # collinear set
        if n == 2 and c[0, 1] < -cosmin:
            return np.array([[0, 1], [1, 0]])
        return ident
    j0 = 1 + int(np.argmin(np.abs(c[0, 1:])))
    ref = _triad(d[0], d[j0])
    th0 = math.acos(c[0, j0])
    tol = math.radians(tolerance_deg)
    # RMS limit: the shape tolerance, but at most 0.3 × the smallest ligand–ligand angle, so that a wrong
    # relabelling of a crowded set (B10H10: neighbours ~40° apart) cannot pass as a distorted rotation
    iu = np.triu_indices(n, 1)
    rms_max = min(tolerance_deg, 0.3 * math.degrees(math.acos(min(1.0, c[iu].max()))))

    def rms_dev(p):
        """RMS angle (degrees) between the best-fit rotated ligands and their sites under ``p`` (inf: not 1:1)."""
        R = _kabsch_rotation(d, d[list(p)])
        cc = np.clip((d @ R.T) @ d.T, -1, 1)
        if not np.array_equal(np.argmax(cc, axis=1), p):
            return math.inf
        return math.degrees(math.sqrt(np.mean(np.arccos(cc[np.arange(n), list(p)]) ** 2)))

    perms = {}
    for k in range(n):
        for l in range(n):
            if k == l or abs(math.acos(c[k, l]) - th0) > 2 * tol or abs(c[k, l]) > 1 - 1e-9:
                continue
            R = _triad(d[k], d[l]) @ ref.T
            p = tuple(int(x) for x in np.argmax((d @ R.T) @ d.T, axis=1))
            if len(set(p)) == n and p not in perms:
                r = rms_dev(p)
                if r < rms_max:
                    perms[p] = r
    # a thermally distorted first frame may miss an operation that the others generate: close the set,
    # keeping only products that pass the same test (a finite rotation group has at most 60 elements) …
    grown = True
    while grown and len(perms) <= 60:
        new = {tuple(int(a[i]) for i in b) for a in perms for b in perms} - set(perms)
        new = {p: rms_dev(p) for p in new}
        new = {p: r for p, r in new.items() if r < rms_max}
        grown = bool(new)
        perms.update(new)
    # … and if it is still not a group, drop the worst-fitting operations until it is
    ident = tuple(range(n))
    perms[ident] = 0.0
    while any(tuple(int(a[i]) for i in b) not in perms for a in perms for b in perms):
        del perms[max((q for q in perms if q != ident), key=perms.get)]
    perms = set(perms)
    perms.discard(tuple(range(n)))
    return np.array([tuple(range(n))] + sorted(perms), dtype=np.int64)


def _kabsch_rotation(P, Q):
    """Proper rotation R (3 × 3) minimising Σ_i |R p_i − q_i|² (Kabsch), for matched rows of P, Q (n, 3)."""
    H = P.T @ Q
    U, _, Vt = np.linalg.svd(H)
    dd = np.sign(np.linalg.det(Vt.T @ U.T)) or 1.0
    return Vt.T @ np.diag([1.0, 1.0, dd]) @ U.T


def orientation_states_direct(u, u0, perms, n_valid, *, tolerance_deg=DEFAULT_STATE_TOLERANCE_DEG,
                              debounce=DEFAULT_STATE_DEBOUNCE):
    """Frame-by-frame orientation-state sequences (the twin of the streamed :class:`_StateStream`).

    Parameters
    ----------
    u : ndarray, shape (n_frames, n_anions, n_lig, 3)
    u0, perms, n_valid :
        As :func:`anionmotion.kernels.polyanion.state_scores`.
    tolerance_deg : float, degrees
    debounce : int, frames

    Returns
    -------
    assigned : ndarray, shape (n_frames, n_anions), int64
        Nearest reference orientation when within the tolerance, else −1.
    committed : ndarray, shape (n_frames, n_anions), int64
        The state after the debounce as known at each frame: it becomes g at the frame that completes a run of
        ``debounce`` consecutive frames assigned to g, and stays through unassigned frames.
    transitions : list of (anion, frame index, from, to)
        Dated at the first frame of the run that made the transition.
    """
    s = state_scores(u, u0, perms, n_valid)
    best = np.argmax(s, axis=2)
    ok = np.take_along_axis(s, best[..., None], 2)[..., 0] > math.cos(math.radians(tolerance_deg))
    assigned = np.where(ok, best, -1)
    T, A = assigned.shape
    committed = np.zeros((T, A), np.int64)
    trans = []
    for a in range(A):
        cur, cand, run, start = 0, -1, 0, 0
        for t in range(T):
            x = assigned[t, a]
            if x >= 0 and x == cand:
                run += 1
            else:
                cand, run, start = x, (1 if x >= 0 else 0), t
            if cand >= 0 and cand != cur and run >= debounce:
                trans.append((a, start, cur, cand))
                cur = cand
            committed[t, a] = cur
    return assigned, committed, trans


class _StateStream:
    """Orientation-state transitions found chunk by chunk; only counts are kept.

    Carried per anion across chunks: the committed state, the candidate state, the length of its current run
    and whether that run was already committed.  Kept: transitions per anion, per (from-angle class), frames
    per anion and state (occupancy), frames without an assigned state.
    """

    def __init__(self, u0, n_valid, *, shape_tolerance, tolerance, debounce):
        self.u0 = np.ascontiguousarray(u0, dtype=np.float64)
        A, L = self.u0.shape[:2]
        self.n_valid = np.asarray(n_valid, np.int64)
        self.tolerance, self.debounce = float(tolerance), int(debounce)
        groups = [ligand_rotation_group(self.u0[a, :self.n_valid[a]], shape_tolerance) for a in range(A)]
        G = max(len(g) for g in groups)
        self.perms = np.full((A, G, L), -1, np.int64)
        self.group_size = np.array([len(g) for g in groups], np.int64)
        for a, g in enumerate(groups):
            self.perms[a, :len(g), :self.n_valid[a]] = g
            self.perms[a, :len(g), self.n_valid[a]:] = np.arange(self.n_valid[a], L)
        # rotation angle (degrees, rounded) between every pair of reference orientations of each anion
        self.op_angle = np.zeros((A, G, G))
        for a in range(A):
            nv, ng = self.n_valid[a], len(groups[a])
            sites = self.u0[a, :nv][groups[a]]                                          # (ng, nv, 3)
            i, j = np.meshgrid(np.arange(ng), np.arange(ng), indexing="ij")
            self.op_angle[a, :ng, :ng] = kabsch_angle(sites[i.ravel()], sites[j.ravel()]).reshape(ng, ng)
        self.cur = np.zeros(A, np.int64)
        self.cand = np.full(A, -1, np.int64)
        self.run = np.zeros(A, np.int64)
        self.per_anion = np.zeros(A, np.int64)
        self.occupancy = np.zeros((A, G), np.int64)
        self.unassigned = np.zeros(A, np.int64)
        self.angle_counts = {}
        self.n_frames = 0

    work_bytes = 32 * 1024 ** 2
    """Scores are computed in blocks of frames of at most this many bytes of scratch (cosines and gathers)."""

    def assign(self, u):
        """Nearest reference orientation of every anion in every frame of ``u``, −1 outside the tolerance."""
        A, G, L = self.perms.shape
        step = int(max(1, self.work_bytes // (8 * A * L * (L + 2 * G))))
        out = np.empty(u.shape[:2], np.int64)
        cmin = math.cos(math.radians(self.tolerance))
        for t0 in range(0, len(u), step):
            s = state_scores(u[t0:t0 + step], self.u0, self.perms, self.n_valid)
            best = np.argmax(s, axis=2)
            ok = np.take_along_axis(s, best[..., None], 2)[..., 0] > cmin
            out[t0:t0 + step] = np.where(ok, best, -1)
        return out

    def update(self, u):
        assigned = self.assign(u)                                                       # (n, A)
        ok = assigned >= 0
        n, A = assigned.shape
        self.unassigned += (~ok).sum(axis=0)
        for a in range(A):
            x = assigned[:, a]
            cur, cand, run = int(self.cur[a]), int(self.cand[a]), int(self.run[a])
            # runs of equal values in this chunk; the first continues the carried candidate run
            cut = np.nonzero(np.diff(x))[0] + 1
            starts = np.concatenate([[0], cut])
            lengths = np.diff(np.concatenate([starts, [n]]))
            for v, ln in zip(x[starts].tolist(), lengths.tolist()):
                if v >= 0 and v == cand:
                    run += ln
                else:
                    cand, run = v, (ln if v >= 0 else 0)
                if cand >= 0 and cand != cur and run >= self.debounce:
                    key = int(round(self.op_angle[a, cur, cand]))
                    self.angle_counts[key] = self.angle_counts.get(key, 0) + 1
                    self.per_anion[a] += 1
                    cur = cand
            self.cur[a], self.cand[a], self.run[a] = cur, cand, run
        # occupancy: frames per committed state; recomputed from the committed sequence is not kept, so
        # count the assigned states (frames in each state's core) instead
        np.add.at(self.occupancy, (np.broadcast_to(np.arange(A), assigned.shape)[ok], assigned[ok]), 1)
        self.n_frames += n

    def table(self, span_ns, level=0.95):
        A = len(self.per_anion)
        count = int(self.per_anion.sum())
        rate = rate_ci(count, A * span_ns, per_unit_counts=self.per_anion, level=level)
        return {
            "count": count, "per_anion": self.per_anion.copy(), **rate,
            "group_size": self.group_size.copy(),
            "transitions_by_angle_deg": {str(k): int(v) for k, v in sorted(self.angle_counts.items())},
            "occupancy_frames": self.occupancy.copy(),
            "unassigned_fraction": float(self.unassigned.sum() / max(1, A * self.n_frames)),
        }


# -------------------------------------------------------------------- rates with CIs
def _dispersion(per_unit_counts):
    """Index of dispersion var/mean of per-unit counts (equal exposures); 1 when it cannot be estimated."""
    c = np.asarray(per_unit_counts, dtype=np.float64)
    if c.size < 2 or c.mean() <= 0:
        return 1.0
    return float(c.var(ddof=1) / c.mean())


def rate_ci(count, exposure, *, per_unit_counts=None, level=0.95):
    """Event rate with an exact Poisson (Gamma) confidence interval, widened for over-dispersion.

    Parameters
    ----------
    count : int
        Events.
    exposure : float
        Units × time (e.g. anions × ns).
    per_unit_counts : array_like, optional
        Events of each unit (anion or cation, equal exposures): their variance/mean ratio φ estimates the
        over-dispersion; the interval is the Poisson one of N/φ events in E/φ (quasi-Poisson), φ ≥ 1.
    level : float

    Returns
    -------
    dict
        ``rate`` (count/exposure), ``ci_low``, ``ci_high`` (same unit), ``dispersion`` (φ used), ``level``.

    Notes
    -----
    Exact Poisson limits: λ_lo = Γ⁻¹(α/2; N)/E, λ_hi = Γ⁻¹(1 − α/2; N + 1)/E (λ_lo = 0 when N = 0).  Events
    of one unit are often correlated (back-and-forth jumps), which makes the per-unit counts over-dispersed;
    φ = max(1, s²/mean) rescales the effective number of independent events.
    """
    from scipy.stats import gamma

    phi = max(1.0, _dispersion(per_unit_counts)) if per_unit_counts is not None else 1.0
    alpha = 1.0 - float(level)
    n_eff, e_eff = count / phi, exposure / phi
    if exposure <= 0:
        return {"rate": None, "ci_low": None, "ci_high": None, "dispersion": phi, "level": level}
    lo = float(gamma.ppf(alpha / 2, n_eff) / e_eff) if n_eff > 0 else 0.0
    hi = float(gamma.ppf(1 - alpha / 2, n_eff + 1) / e_eff)
    return {"rate": count / exposure, "ci_low": lo, "ci_high": hi, "dispersion": phi, "level": level}


def rate_ratio_ci(n1, e1, n2, e2, *, phi1=1.0, phi2=1.0, level=0.95):
    """Ratio of two Poisson rates (n1/e1)/(n2/e2) with the exact conditional (Clopper–Pearson) interval.

    Given N = n1 + n2, n1 is binomial with p = λ1 e1/(λ1 e1 + λ2 e2), so the Clopper–Pearson interval of p
    maps to λ1/λ2 = p/(1 − p) · e2/e1.  Over-dispersion φ1, φ2 (≥ 1) rescale counts and exposures
    (quasi-Poisson; the beta quantiles take non-integer counts).  Returns ``ratio``, ``ci_low``,
    ``ci_high`` and ``level``; when n2 = 0 the ratio and its upper limit are None (unbounded) and ``ci_low``
    is the lower limit (None when n1 = 0 too), with a ``note``.
    """
    from scipy.stats import beta

    phi1, phi2 = max(1.0, phi1), max(1.0, phi2)
    x, y = n1 / phi1, n2 / phi2
    f1, f2 = e1 / phi1, e2 / phi2
    alpha = 1.0 - float(level)
    if e1 <= 0 or e2 <= 0:
        return {"ratio": None, "ci_low": None, "ci_high": None, "level": level, "note": "no exposure"}
    conv = f2 / f1
    plo = float(beta.ppf(alpha / 2, x, y + 1)) if x > 0 else 0.0
    if n2 <= 0:   # ν_hop = 0: the ratio is unbounded above; its lower limit still says how large it is at least
        return {"ratio": None, "ci_low": (plo / (1 - plo) * conv) if n1 > 0 and plo < 1 else None, "ci_high": None,
                "level": level, "note": "no events in the denominator: the ratio is unbounded above (ci_low is "
                                        "its lower limit)" if n1 > 0 else "no events in either count"}
    phi_ = float(beta.ppf(1 - alpha / 2, x + 1, y))
    return {"ratio": (n1 / e1) / (n2 / e2), "ci_low": plo / (1 - plo) * conv,
            "ci_high": (phi_ / (1 - phi_) * conv) if phi_ < 1 else None, "level": level}


def _hop_counts(hops):
    """(per-cation hop counts, observed ns per cation, species) of a HopsResult or its dict."""
    if hasattr(hops, "jump_frequency_per_atom_per_ns"):
        f = np.asarray(hops.jump_frequency_per_atom_per_ns, dtype=np.float64)
        obs, sp = float(hops.observed_ps), hops.species
    else:
        per = hops.get("jump_frequency_per_atom_per_ns") or {}
        f = np.asarray(list(per.values()) if isinstance(per, dict) else per, dtype=np.float64)
        obs, sp = float(hops.get("observed_ps") or 0.0), hops.get("species")
    ns = obs / 1000.0
    return np.rint(f * ns).astype(np.int64), ns, sp


def frequency_match(rotation, hops, *, level=0.95):
    """ν_rot (threshold events and orientation-state transitions), ν_hop and their ratios with CIs.

    Parameters
    ----------
    rotation : dict
        ``ReorientationResult.frequency`` (per method: count, per_anion, exposure_anion_ns).
    hops : HopsResult or dict
        :func:`anionmotion.hops` result (per-cation jump frequencies and the observed time).
    level : float

    Returns
    -------
    dict
        ``nu_hop_per_ns`` (rate and CI, per cation per ns), ``cation``, and per method
        ``ratio_<method>`` = ν_rot/ν_hop with its conditional-binomial CI; ``log10_ratio``.
    """
    counts, ns, sp = _hop_counts(hops)
    n_hop, e_hop = int(counts.sum()), len(counts) * ns
    out = {"cation": sp, "n_hops": n_hop, "n_cations": int(len(counts)), "observed_ns": ns,
           "nu_hop_per_ns": rate_ci(n_hop, e_hop, per_unit_counts=counts, level=level), "level": level,
           "definition": "ν_rot/ν_hop: events per anion per ns over hops per cation per ns; CI from the "
                         "conditional binomial (Clopper–Pearson) of the two counts, over-dispersion from the "
                         "per-anion and per-cation counts"}
    phi_h = out["nu_hop_per_ns"]["dispersion"]
    for method, r in rotation.items():
        if r is None or r.get("rate") is None:
            continue
        rr = rate_ratio_ci(r["count"], r["exposure_anion_ns"], n_hop, e_hop, phi1=r["dispersion"], phi2=phi_h,
                           level=level)
        rr["log10_ratio"] = math.log10(rr["ratio"]) if rr["ratio"] else None
        out[f"ratio_{method}"] = rr
    return out


# ------------------------------------------------------------------- fitting
def _kww(t, tau, beta):
    return np.exp(-np.power(np.maximum(t, 0) / tau, beta))


def fit_relaxation(lag_ps, acf, *, max_lag_ps=None):
    """Relaxation times of an ACF: its integral and a stretched-exponential fit.

    Parameters
    ----------
    lag_ps : ndarray, shape (n,), ps
    acf : ndarray, shape (n,)
        C(0) = 1.
    max_lag_ps : float, optional, ps
        Fit/integration range [0, max_lag_ps] (default: all lags).

    Returns
    -------
    dict
        ``tau_integral_ps`` — ∫ C dt from 0 to the first zero crossing of C or
        ``max_lag_ps`` (a lower bound when C has not decayed there);
        ``tau_kww_ps``, ``beta`` — C(t) ≈ exp(−(t/τ)^β) by least squares;
        ``tau_mean_ps`` — the mean relaxation time of the fit, (τ/β) Γ(1/β);
        ``decayed`` — C fell below 1/e inside the range; ``fit_ok``.
        Times are None when the ACF has not decayed enough to define them
        (C > 0.99 over the whole range) or the fit fails.
    """
    from scipy.optimize import curve_fit

    lag = np.asarray(lag_ps, dtype=np.float64)
    c = np.asarray(acf, dtype=np.float64)
    sel = np.ones(len(lag), bool) if max_lag_ps is None else lag <= max_lag_ps + 1e-12
    lag, c = lag[sel], c[sel]
    out = {"tau_integral_ps": None, "tau_kww_ps": None, "beta": None, "tau_mean_ps": None, "decayed": False,
           "fit_ok": False, "range_ps": float(lag[-1]) if len(lag) else 0.0}
    if len(lag) < 3:
        return out
    neg = np.nonzero(c <= 0)[0]
    end = int(neg[0]) + 1 if len(neg) else len(c)
    tau_int = float(np.trapezoid(c[:end], lag[:end])) if hasattr(np, "trapezoid") else float(np.trapz(c[:end],
                                                                                                    lag[:end]))
    out["decayed"] = bool(np.any(c < math.exp(-1)))
    if c.min() > 0.99:
        return out
    out["tau_integral_ps"] = tau_int
    if c[1] < math.exp(-1):
        out["note"] = "C falls below 1/e within the first lag: τ is shorter than the frame interval (no fit)"
        return out
    upper = 1e4 * lag[-1]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            guess = min(max(tau_int, lag[1]), 0.5 * upper)
            popt, _ = curve_fit(_kww, lag[1:], c[1:], p0=(guess, 1.0), bounds=([1e-9 * lag[-1], 0.05], [upper, 2.0]),
                                maxfev=5000)
        tau, beta = float(popt[0]), float(popt[1])
        if np.isfinite(tau) and tau < 0.99 * upper:
            out.update(tau_kww_ps=tau, beta=beta, tau_mean_ps=tau / beta * math.gamma(1.0 / beta), fit_ok=True)
        else:
            out["note"] = "the fitted τ runs to 10⁴ × the range: C has not decayed enough to define it"
    except (RuntimeError, ValueError) as err:
        out["note"] = f"stretched-exponential fit failed: {err}"
    if not out["decayed"]:
        out["note"] = (out.get("note", "") + "; " if out.get("note") else "") + \
            "C stays above 1/e in the range: tau_integral_ps is a lower bound"
    return out


# --------------------------------------------------------------------- helpers
def kabsch_angle(ref, cur):
    """Angle (degrees) of the best rotation mapping ``ref`` onto ``cur`` (Kabsch).

    Parameters
    ----------
    ref, cur : ndarray, shape (..., n, 3)
        Matched direction sets (row i of ``ref`` goes to row i of ``cur``).

    Returns
    -------
    ndarray, shape (...,), degrees
    """
    ref = np.asarray(ref, float)
    cur = np.asarray(cur, float)
    H = np.einsum("...ik,...il->...kl", ref, cur)
    U, S, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.einsum("...ij,...jk->...ik", U, Vt)))
    D = np.zeros(H.shape)
    D[..., 0, 0] = 1
    D[..., 1, 1] = 1
    D[..., 2, 2] = d
    R = np.einsum("...ji,...jk,...lk->...il", Vt, D, U)   # R = V D Uᵀ maps ref → cur
    tr = np.einsum("...ii->...", R)
    return np.degrees(np.arccos(np.clip((tr - 1) / 2, -1, 1)))


def ligand_density(u, *, bins=(36, 72)):
    """ρ(θ, φ): density of ligand bond directions on the unit sphere.

    Parameters
    ----------
    u : ndarray, shape (n_frames, n_anions, n_lig, 3)
        Unit bond vectors (NaN = padding, ignored).
    bins : (int, int)
        Bins in θ ∈ [0°, 180°] and φ ∈ [−180°, 180°).

    Returns
    -------
    rho : ndarray, shape (n_theta, n_phi), sr⁻¹
        Probability per solid angle (integrates to 1 over the sphere).
    rho_per_anion : ndarray, shape (n_anions, n_theta, n_phi), sr⁻¹
    theta_edges, phi_edges : ndarray, degrees

    Notes
    -----
    θ = arccos(u_z) is measured from the z axis; φ = atan2(u_x, u_y) is the
    angle between the y axis and the projection of the bond on the xy plane
    (SPEC §4, paper 003 Fig. 5).  Each bin is divided by its solid angle
    ΔΩ = (cos θ_lo − cos θ_hi) Δφ.
    """
    te, pe = density_edges(bins)
    counts = ligand_density_counts(u, te, pe)
    rho, per = density_from_counts(counts, te, pe)
    return rho, per, te, pe


def density_edges(bins=(36, 72)):
    """Bin edges of ρ(θ, φ) in degrees: θ ∈ [0°, 180°] (``bins[0]`` bins), φ ∈ [−180°, 180°) (``bins[1]``)."""
    nt, nph = int(bins[0]), int(bins[1])
    if nt < 1 or nph < 1:
        raise OptionError(f"rho_bins must be two positive bin counts (θ, φ); got {tuple(bins)}")
    return np.linspace(0, 180, nt + 1), np.linspace(-180, 180, nph + 1)


def ligand_density_counts(u, theta_edges, phi_edges):
    """Counts of ligand bond directions per anion and (θ, φ) bin, for one chunk of frames.

    Parameters
    ----------
    u : ndarray, shape (n_frames, n_anions, n_lig, 3)
        Unit bond vectors (NaN = padding, ignored).
    theta_edges, phi_edges : ndarray, degrees
        From :func:`density_edges`.

    Returns
    -------
    ndarray, shape (n_anions, n_theta, n_phi), int64
        Counts add up over chunks: the sum over the chunks of a trajectory is
        exactly the count of the whole trajectory.
    """
    te, pe = theta_edges, phi_edges
    nt, nph = len(te) - 1, len(pe) - 1
    n_an = u.shape[1]
    theta = np.degrees(np.arccos(np.clip(u[..., 2], -1, 1)))
    phi = np.degrees(np.arctan2(u[..., 0], u[..., 1]))
    it = np.clip(np.searchsorted(te, theta, side="right") - 1, 0, nt - 1)
    ip = np.clip(np.searchsorted(pe, phi, side="right") - 1, 0, nph - 1)
    valid = np.isfinite(u[..., 0])
    an = np.broadcast_to(np.arange(n_an)[None, :, None], u.shape[:3])
    flat = (an[valid] * nt + it[valid]) * nph + ip[valid]
    return np.bincount(flat, minlength=n_an * nt * nph).reshape(n_an, nt, nph).astype(np.int64)


def density_from_counts(counts, theta_edges, phi_edges):
    """ρ(θ, φ) of all anions and of each anion (sr⁻¹) from bin counts (n_anions, n_theta, n_phi)."""
    te, pe = theta_edges, phi_edges
    counts = np.asarray(counts, dtype=np.float64)
    domega = (np.cos(np.radians(te[:-1])) - np.cos(np.radians(te[1:])))[:, None] * np.radians(np.diff(pe))[None, :]
    tot = counts.sum(axis=(1, 2), keepdims=True)
    per = counts / np.where(tot > 0, tot, 1) / domega[None]
    allc = counts.sum(0)
    rho = allc / max(allc.sum(), 1) / domega
    return rho, per


# ---------------------------------------------------------------------- result
@dataclass(frozen=True, repr=False)
class ReorientationResult(Result):
    """Reorientation dynamics of a polyanion species (SPEC §4).

    Attributes
    ----------
    species : str
        Label of the polyanion (e.g. ``PS4``).
    n_anions, n_ligands : int
    lag_ps : ndarray, shape (n_lags,), ps
    C1, C2 : ndarray, shape (n_lags,)
        All-origin ⟨u(t0+t)·u(t0)⟩ and ⟨P2(u(t0+t)·u(t0))⟩ over anions and ligands.
    tau1_ps, tau2_ps : float or None, ps
        Mean relaxation time (τ/β)Γ(1/β) of the stretched-exponential fit of C1, C2 over
        [0, reliable_lag_ps]; None when the ACF does not decay there (see ``relaxation``).
    relaxation : dict
        Per ACF (``C1``, ``C2``): integral time, KWW τ and β, mean τ (ps), whether it decayed.
    reliable_lag_ps : float, ps
        Longest reliable lag = ``reliable_fraction`` × trajectory span.
    C1_at_reliable_lag : float
    rotating : bool
        C1 < 0.9 at the longest reliable lag (paper 003).
    rotation_events : int
        Events of the selected method (``meta['event_method']``).
    rotation_frequency_per_ns : float, ns⁻¹
        rotation_events / n_anions / trajectory span.
    events : dict
        For ``threshold`` and ``symmetry``: event anion, frame, time (ps), Kabsch rotation angle
        since the previous event (degrees), count and frequency per anion per ns.
    angles_deg : ndarray, shape (n_frames, n_anions, 3), degrees
        θa, θb, θc between each anion's orientation vector (centre → the ligand most aligned with
        c in the first frame) and the cell vectors a, b, c (θx, θy, θz for orthogonal cells).
    times_ps : ndarray, shape (n_frames,), ps
    rho : ndarray, shape (n_theta, n_phi), sr⁻¹
        Density of ligand bond directions, all anions (θ from z, φ from y).
    rho_per_anion : ndarray, shape (n_anions, n_theta, n_phi), sr⁻¹
    rho_theta_edges, rho_phi_edges : ndarray, degrees
    per_species : dict
        C1/C2, times and flags per centre species when there are several.
    framework : dict
        ``connectivity``, ``VPA_A3``, ``AAL_A``, ``cutoff_A``, ``cutoff_source``, ``n_anions``.
    integrity : list of dict
        Ligand departures (empty when intact).
    meta : dict
        Parameters, defaults and definitions.
    C3, C4 : ndarray or None, shape (n_lags,)
        ⟨P3⟩ and ⟨P4⟩ of u(t0+t)·u(t0) (``legendre`` ≥ 3, 4; exact all-origin FFT like C1, C2).
    rotor : dict or None
        Rotor-function ACFs (docs/rotor-functions.md): ``harmonics`` (``K3``, ``K4``, ``K6``), ``C`` (per
        harmonic, shape (n_lags,)), ``at_reliable_lag``, ``mean_F``, ``mean_F2``, ``baseline`` (⟨F⟩²/⟨F²⟩),
        ``relaxation``, ``dropped`` (harmonics constant for the ligand geometry).
    states : dict or None
        Orientation-state transitions: ``count``, ``per_anion``, ``rate`` (per anion per ns) with ``ci_low``,
        ``ci_high``, ``dispersion``; ``group_size`` (rotations of each anion), ``transitions_by_angle_deg``,
        ``occupancy_frames`` (n_anions, n_states), ``unassigned_fraction``, the tolerances and debounce.
    frequency : dict
        ν_rot per method (``threshold``, ``symmetry_events``, ``states``): ``count``, ``exposure_anion_ns``,
        ``rate`` (ns⁻¹ per anion), ``ci_low``, ``ci_high``, ``dispersion``, ``level``.
    frequency_match : dict or None
        With ``hops=``: ν_hop per cation per ns with its CI and ``ratio_<method>`` = ν_rot/ν_hop with its CI
        (:func:`frequency_match`).
    """

    species: str
    n_anions: int
    n_ligands: int
    lag_ps: np.ndarray
    C1: np.ndarray
    C2: np.ndarray
    tau1_ps: Optional[float]
    tau2_ps: Optional[float]
    relaxation: dict
    reliable_lag_ps: float
    C1_at_reliable_lag: float
    rotating: bool
    rotation_events: int
    rotation_frequency_per_ns: float
    events: dict
    angles_deg: np.ndarray
    times_ps: np.ndarray
    rho: np.ndarray
    rho_per_anion: np.ndarray
    rho_theta_edges: np.ndarray
    rho_phi_edges: np.ndarray
    per_species: dict
    framework: dict
    integrity: list
    meta: dict = field(default_factory=dict)
    C3: Optional[np.ndarray] = None
    C4: Optional[np.ndarray] = None
    rotor: Optional[dict] = None
    states: Optional[dict] = None
    frequency: dict = field(default_factory=dict)
    frequency_match: Optional[dict] = None

    _SERIES = ("angles_deg", "times_ps", "rho_per_anion")

    def to_dict(self, include_series: bool = False) -> dict:
        """JSON-ready dict; the per-frame angle series and per-anion ρ only with ``include_series``."""
        d = super().to_dict()
        if not include_series:
            for k in self._SERIES:
                d.pop(k, None)
        return d

    def save(self, path, overwrite=False, include_series=False):
        from ..results import write_json

        from ..results import json_arrays

        with json_arrays():
            return write_json(path, self.to_dict(include_series=include_series), overwrite)

    def summary(self) -> str:
        t1 = "n/a" if self.tau1_ps is None else f"{self.tau1_ps:.4g} ps"
        t2 = "n/a" if self.tau2_ps is None else f"{self.tau2_ps:.4g} ps"
        fw = self.framework
        lines = [
            f"polyanions        {self.n_anions} × {self.species} ({fw['connectivity']}; cutoff {fw['cutoff_A']:.3f} Å, "
            f"{fw['cutoff_source']})",
            f"VPA / AAL         {fw['VPA_A3']:.3f} Å³ / {fw['AAL_A']:.4f} Å",
            f"C1 at {self.reliable_lag_ps:.4g} ps   {self.C1_at_reliable_lag:.4f} (longest reliable lag = "
            f"{self.meta['reliable_fraction']} × span) → rotating: {'yes' if self.rotating else 'no'}",
            f"tau1 / tau2       {t1} / {t2} (stretched-exponential mean time; integral: "
            f"{_fmt(self.relaxation['C1']['tau_integral_ps'])} / {_fmt(self.relaxation['C2']['tau_integral_ps'])} ps"
            + ("" if self.relaxation["C1"]["decayed"] else ", lower bounds: C1 stays above 1/e") + ")",
            f"rotation events   {self.rotation_events} ({self.meta['event_method']}; "
            f"{self.rotation_frequency_per_ns:.4g} per anion per ns)",
        ]
        other = "symmetry" if self.meta["event_method"] == "threshold" else "threshold"
        o = self.events.get(other)
        if o is not None:
            lines.append(f"  ({other}: {o['count']} events, {o['frequency_per_ns']:.4g} per anion per ns)")
        if self.C3 is not None:
            i = int(np.searchsorted(self.lag_ps, self.reliable_lag_ps))
            cl = [c for c in (self.C1, self.C2, self.C3, self.C4) if c is not None]
            lines.append(f"C1…C{len(cl)} at {self.reliable_lag_ps:.4g} ps " + " / ".join(f"{c[i]:.4f}" for c in cl))
        fq = self.frequency or {}
        for key, label in (("threshold", "ν_rot threshold"), ("states", "ν_rot states")):
            r = fq.get(key)
            if r and r.get("rate") is not None:
                lines.append(f"{label:<17} {r['rate']:.4g} per anion per ns [{r['ci_low']:.3g}, {r['ci_high']:.3g}] "
                             f"({r['count']} events)")
        if self.states:
            st_ = self.states
            by = ", ".join(f"{k}°: {v}" for k, v in st_["transitions_by_angle_deg"].items()) or "none"
            lines.append(f"orientation states {int(np.max(st_['group_size']))} per anion; transitions by angle: {by}; "
                         f"unassigned {st_['unassigned_fraction']:.1%} of frames")
        if self.rotor and self.rotor.get("harmonics"):
            lines.append("rotor functions   " + ", ".join(f"C_{k}({self.reliable_lag_ps:.3g} ps) = {v:.3f}"
                                                        for k, v in self.rotor["at_reliable_lag"].items()))
        m = self.frequency_match
        if m:
            h = m["nu_hop_per_ns"]
            lines.append(f"ν_hop ({m['cation']})       {_fmt(h['rate'])} per cation per ns [{_fmt(h['ci_low'])}, "
                         f"{_fmt(h['ci_high'])}]")
            for key in ("threshold", "states"):
                r = m.get(f"ratio_{key}")
                if r:
                    lines.append(f"ν_rot/ν_hop {key:<9} {_fmt(r['ratio'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
                                 + (f" ({r['note']})" if r.get("note") else ""))
        if self.integrity:
            lines.append(f"integrity         NOT intact: {len(self.integrity)} ligand departure(s)")
        return "\n".join(lines)

    def __repr__(self):
        return (f"ReorientationResult({self.n_anions} × {self.species}, C1({self.reliable_lag_ps:.3g} ps) = "
                f"{self.C1_at_reliable_lag:.3f}, rotating={self.rotating}, events={self.rotation_events})")


def _fmt(x):
    return "n/a" if x is None else f"{x:.4g}"


# ---------------------------------------------------------------------- driver
def read_unit_vectors(traj, pa: Polyanions, *, start=None, stop=None, step=None, frames_per_chunk=2000,
                      progress=None, use_ext=True):
    """Read the unit centre→ligand vectors of every frame into memory.

    The in-memory path (short trajectories, tests, custom analyses of ``u``);
    :class:`Reorientation` streams the same vectors instead.

    Returns
    -------
    u : ndarray, shape (n_frames, n_anions, n_lig, 3), float64 (NaN for padding)
    times : ndarray, shape (n_frames,), ps
    cells : ndarray, shape (n_frames, 3, 3), Å
    frames : ndarray, shape (n_frames,), int64
    integrity : list of dict (first departure of every ligand that leaves)
    """
    us, ts, cs, fs = [], [], [], []
    tracker = LigandDepartures(pa)
    fr = traj.frame_range(start=start, stop=stop, step=step)
    # minimum-image vectors do not need unwrapped positions (and the streamed path reads them the same way)
    for chunk in traj.iter_chunks(frames_per_chunk, atoms=pa.atoms, start=fr.start, stop=fr.stop, step=fr.step,
                                  progress=progress, desc="ligand vectors", unwrap=False):
        v = pa.ligand_vectors(chunk, use_ext=use_ext)
        tracker.update(v, chunk.frame_indices)
        sh = v.shape
        us.append(normalize_vectors(v.reshape(sh[0], -1, 3), use_ext=use_ext).reshape(sh))
        ts.append(chunk.times)
        cs.append(chunk.cells)
        fs.append(chunk.frame_indices)
    if not us:
        return (np.zeros((0, pa.n_anions, pa.n_ligands, 3)), np.zeros(0), np.zeros((0, 3, 3)),
                np.zeros(0, np.int64), [])
    return np.concatenate(us), np.concatenate(ts), np.concatenate(cs), np.concatenate(fs), tracker.events()


def _event_table(flags, u, times, frames, n_valid, span_ns, n_anions, sites=False):
    """Events from per-frame flags of a whole in-memory trajectory (the reference of the streamed tables).

    Threshold events: the rotation between the ligand directions at the previous
    event (or frame 0) and now.  Symmetry events (``sites=True``): the
    symmetry operation, i.e. the rotation taking the first-frame sites occupied
    by the ligands at the previous event onto the sites they occupy now.
    """
    t_idx, a_idx = np.nonzero(flags)
    order = np.lexsort((t_idx, a_idx))
    t_idx, a_idx = t_idx[order], a_idx[order]
    prev = np.zeros(len(t_idx), dtype=np.int64)
    if len(t_idx) > 1:
        same = a_idx[1:] == a_idx[:-1]
        prev[1:][same] = t_idx[:-1][same]
    angles = np.zeros(len(t_idx))
    for nv in np.unique(n_valid):   # group anions by ligand count (one or two groups)
        g = n_valid[a_idx] == nv
        if not g.any():
            continue
        if sites:
            ref0 = u[0, a_idx[g], :nv]                                           # (E, nv, 3) site directions
            def occupied(tt):
                c = np.einsum("eik,ejk->eij", u[tt, a_idx[g], :nv], ref0)
                return np.take_along_axis(ref0, np.argmax(c, axis=2)[..., None], axis=1)
            first = prev[g] == 0
            before = occupied(prev[g])
            before[first] = ref0[first]
            angles[g] = kabsch_angle(before, occupied(t_idx[g]))
        else:
            angles[g] = kabsch_angle(u[prev[g], a_idx[g], :nv], u[t_idx[g], a_idx[g], :nv])
    o = np.lexsort((a_idx, t_idx))
    count = int(len(t_idx))
    per_anion = np.bincount(a_idx, minlength=n_anions)
    return {
        "count": count,
        "frequency_per_ns": count / n_anions / span_ns if span_ns > 0 and n_anions else 0.0,
        "per_anion": per_anion,
        "anion": a_idx[o], "frame": frames[t_idx[o]], "time_ps": times[t_idx[o]], "angle_deg": angles[o],
        "mean_angle_deg": float(angles.mean()) if count else None,
    }


def _check_site_tolerance(u0, n_valid, tol):
    """The symmetry-aware tolerance must be below half the smallest ligand–ligand angle."""
    worst = 180.0
    for nv in np.unique(n_valid):
        if nv < 2:
            continue
        g = n_valid == nv
        c = np.einsum("aik,ajk->aij", u0[g, :nv], u0[g, :nv])
        iu = np.triu_indices(nv, 1)
        worst = min(worst, float(np.degrees(np.arccos(np.clip(c[:, iu[0], iu[1]].max(), -1, 1)))))
    if tol >= 0.5 * worst:
        raise OptionError(f"site_tolerance {tol}° must be below half the smallest ligand–ligand angle "
                          f"({worst:.1f}° in the first frame), so that a ligand sits on at most one site")


def _orientation_ligand(u0, cell0, valid_mask):
    """Index of each anion's orientation ligand: the one most aligned with c in the first frame.

    Ties are broken by a, then b (a lexicographic score), so the choice does not depend on the atom order.
    """
    cell_unit = cell0 / np.linalg.norm(cell0, axis=1, keepdims=True)
    score = np.einsum("alk,ck->alc", np.round(np.nan_to_num(u0) @ np.eye(3), 12), cell_unit)
    align = np.where(valid_mask, score[..., 2] + 1e-6 * score[..., 0] + 1e-12 * score[..., 1], -np.inf)
    return np.argmax(align, axis=1)


def _projection_angles(u, cells, orient_lig):
    """θa, θb, θc (degrees) of each anion's orientation vector, shape (n_frames, n_anions, 3)."""
    cell_unit = cells / np.linalg.norm(cells, axis=2, keepdims=True)
    uo = u[:, np.arange(u.shape[1]), orient_lig, :]                              # (T, A, 3)
    return np.degrees(np.arccos(np.clip(np.einsum("tak,tck->tac", uo, cell_unit), -1, 1)))


class _EventStream:
    """Rotation events of one method found chunk by chunk, with the Kabsch angle of each event.

    State carried across chunks (bounded: three (n_anions, n_lig, 3) arrays):
    the kernel's reference (``ref``), and for the event angles the directions
    (threshold) or first-frame sites (symmetry) at each anion's last event.
    Events are kept as compact arrays (anion, frame, time, angle), 32 bytes each.
    """

    def __init__(self, method, u0, n_valid, angle_deg, use_ext):
        self.method = method
        self.u0 = np.ascontiguousarray(u0, dtype=np.float64)
        self.n_valid = n_valid
        self.param = float(angle_deg)              # threshold or site tolerance, degrees
        self.use_ext = use_ext
        self.ref = self.u0.copy()                 # kernel reference (IN/OUT)
        self.before = self.u0.copy()              # symmetry: sites occupied at the last event (first: the sites)
        self.parts = []

    def _occupied(self, uu, a_idx, nv):
        """First-frame sites occupied by the ligands of vectors ``uu`` (E, nv, 3) of anions ``a_idx``."""
        ref0 = self.u0[a_idx, :nv]
        c = np.einsum("eik,ejk->eij", uu, ref0)
        return np.take_along_axis(ref0, np.argmax(c, axis=2)[..., None], axis=1)

    def update(self, u, frames, times):
        ref_start = self.ref.copy()               # reference at the chunk start = directions at the last event
        if self.method == "threshold":
            flags = rotation_events_threshold(u, self.param, ref=self.ref, use_ext=self.use_ext)
        else:
            flags = rotation_events_symmetry(u, self.n_valid, self.param, ref=self.ref, use_ext=self.use_ext)
        t_idx, a_idx = np.nonzero(flags)
        if not len(t_idx):
            return
        order = np.lexsort((t_idx, a_idx))        # by anion, then time: the previous event of an anion is e − 1
        t_idx, a_idx = t_idx[order], a_idx[order]
        same = np.zeros(len(t_idx), bool)
        same[1:] = a_idx[1:] == a_idx[:-1]
        last = np.ones(len(t_idx), bool)
        last[:-1] = ~same[1:]
        angles = np.zeros(len(t_idx))
        n_lig = u.shape[2]
        after = np.full((len(t_idx), n_lig, 3), np.nan)
        if self.method == "threshold":
            after[:] = u[t_idx, a_idx]
            before = ref_start[a_idx]
        else:
            for nv in np.unique(self.n_valid[a_idx]):
                g = self.n_valid[a_idx] == nv
                after[g, :nv] = self._occupied(u[t_idx[g], a_idx[g], :nv], a_idx[g], nv)
            before = self.before[a_idx]
        prev = np.nonzero(same)[0] - 1
        before[same] = after[prev]
        for nv in np.unique(self.n_valid[a_idx]):   # group anions by ligand count (one or two groups)
            g = self.n_valid[a_idx] == nv
            angles[g] = kabsch_angle(before[g, :nv], after[g, :nv])
        if self.method == "symmetry":
            self.before[a_idx[last]] = after[last]
        o = np.lexsort((a_idx, t_idx))            # table order: time, then anion
        self.parts.append((a_idx[o].astype(np.int64), np.asarray(frames)[t_idx[o]].astype(np.int64),
                           np.asarray(times)[t_idx[o]], angles[o]))

    def table(self, span_ns, n_anions):
        n = sum(len(p[0]) for p in self.parts)
        a, f, t, ang = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n), np.empty(n)
        k = 0
        while self.parts:                          # each chunk's piece is freed once copied: peak = table + one piece
            pa, pf, pt, pang = self.parts.pop(0)
            m = len(pa)
            a[k:k + m], f[k:k + m], t[k:k + m], ang[k:k + m] = pa, pf, pt, pang
            k += m
        self.parts = [(a, f, t, ang)]
        count = int(len(a))
        return {
            "count": count,
            "frequency_per_ns": count / n_anions / span_ns if span_ns > 0 and n_anions else 0.0,
            "per_anion": np.bincount(a, minlength=n_anions),
            "anion": a, "frame": f, "time_ps": t, "angle_deg": ang,
            "mean_angle_deg": float(ang.mean()) if count else None,
        }


def _moment_power(item, pad=None):
    """Power spectra of one block of vectors for the moments ⟨c^n⟩, n = 1 … lmax, weighted per group.

    ``item`` = (rows (3·nb, T) — or ``(path, T, r0, nr)`` of a scratch file for a task in another process —,
    n_fft, group weights (G, nb), FFT workers, lmax); ``pad`` an optional reusable zero buffer (≥ 3·nb, n_fft).
    Returns an array (lmax, G, n_fft//2 + 1): row n − 1 = Σ over the monomials x^a y^b z^c of degree n of
    n!/(a! b! c!) |rfft|² (see :func:`legendre_acf`), three monomials per transform.  The same arithmetic
    serially and as a mapper task, so the sums are identical.
    """
    src, nfft, W, workers, lmax = item
    if isinstance(src, tuple):
        path, T, r0, nr = src
        rows = np.fromfile(path, dtype=np.float64, count=nr * T, offset=8 * r0 * T).reshape(nr, T)
    else:
        rows = src
    nb, T = rows.shape[0] // 3, rows.shape[1]
    nf = nfft // 2 + 1
    if pad is None:
        pad = np.zeros((3 * nb, nfft))
    buf = pad[:3 * nb]
    bv = buf.reshape(nb, 3, nfft)[:, :, :T]
    comp = (rows[0::3], rows[1::3], rows[2::3])
    powers = [[None, c] for c in comp]                                  # powers[k][e] = u_k^e, e ≥ 1
    for k in range(3):
        for e in range(2, lmax + 1):
            powers[k].append(powers[k][e - 1] * comp[k])
    out = np.zeros((lmax, W.shape[0], nf))
    for n in range(1, lmax + 1):
        mons = _monomials(n)
        for g0 in range(0, len(mons), 3):
            grp = mons[g0:g0 + 3]
            w = np.zeros(3)
            for k, ((a, b, c), wt) in enumerate(grp):
                w[k] = wt
                fac = [powers[q][e] for q, e in enumerate((a, b, c)) if e]
                if len(fac) == 1:
                    bv[:, k] = fac[0]
                else:
                    np.multiply(fac[0], fac[1], out=bv[:, k])
                    if len(fac) == 3:
                        bv[:, k] *= fac[2]
            f = scipy.fft.rfft(buf, axis=1, workers=workers)
            fv = f.view(np.float64).reshape(nb, 3, nf, 2)
            out[n - 1] += W @ np.einsum("c,vcfk,vcfk->vf", w, fv, fv)
    return out


class Reorientation(AnalysisBase):
    """Reorientation dynamics of the polyanions, streamed in bounded memory (SPEC §4).

    Parameters are those of :func:`reorientation` (which runs this class),
    except the frame range, which :meth:`run` takes with the trajectory; it
    returns a :class:`ReorientationResult`.  Three more for tests and tuning:

    Parameters
    ----------
    store_mode : {"auto", "memory", "out-of-core"}
        Where the unit vectors wait for the FFT (auto: memory when they fit half of the budget).
    scratch_dir : str, optional
        Folder of the scratch file (default: the system temporary folder).
    workers : int
        Threads of ``scipy.fft`` (−1 = all cores).

    Attributes
    ----------
    pa : Polyanions
        The polyanions of the last :meth:`run`.
    frames_per_chunk : int
        Frames per streamed chunk of the last run.
    fft_block : int
        Vectors per FFT block of the last run.

    Notes
    -----
    One pass over the trajectory, chunk by chunk (:meth:`_accumulate`):

    * the unit vectors of every real (anion, ligand) pair go into a
      :class:`~anionmotion.analysis.base.SeriesStore` (3 rows per vector, time
      along the row), in memory when it fits half of the budget, otherwise a
      row-major scratch file (one vector's series after the other);
    * rotation events (both methods) run online with each anion's reference
      carried across chunk boundaries, and their Kabsch angles use the
      directions (sites) at each anion's last event, kept per anion;
    * ρ(θ, φ) bin counts, the first departure of every ligand, and the angle
      projections (to ``angles_csv`` in chunks, a strided preview in memory).

    Then (:meth:`_finish`) the exact all-origin C1/C2 — for all anions and per
    centre species — from the store read back in blocks of vectors: power
    spectra of the components and of their products summed over blocks, one
    inverse FFT at the end.
    """

    name = "reorient"
    needs_unwrap = False          # centre→ligand vectors are minimum images
    fft_fraction = 0.4            # of the budget for the FFT work buffers, at most DEFAULT_MEMORY (the store
                                  # may hold another 0.5)
    preview_fraction = 0.05       # of the budget for the in-memory preview of the angle projections
    preview_frames = 20000
    max_frames_per_chunk = 2048

    def __init__(self, *, center=None, ligand=None, cutoff=None, cluster=None, polyanions=None,
                 threshold=DEFAULT_THRESHOLD_DEG, event_method="threshold", site_tolerance=DEFAULT_SITE_TOLERANCE_DEG,
                 reliable_fraction=RELIABLE_FRACTION, rho_bins=(36, 72), angles_csv=None, overwrite=False,
                 frames_per_chunk=None, memory=None, progress=None, use_ext=True, store_mode="auto",
                 scratch_dir=None, workers=-1, mapper=None, legendre=LEGENDRE_MAX, rotor="auto", states=True,
                 state_tolerance=DEFAULT_STATE_TOLERANCE_DEG, state_debounce=DEFAULT_STATE_DEBOUNCE,
                 shape_tolerance=DEFAULT_SHAPE_TOLERANCE_DEG, hops=None, level=0.95):
        super().__init__(memory=memory, progress=progress, use_ext=use_ext)
        legendre = LEGENDRE_MAX if legendre is None else legendre
        if isinstance(legendre, bool) or int(legendre) != legendre or not 2 <= int(legendre) <= LEGENDRE_MAX:
            raise OptionError(f"legendre must be the highest Legendre order, 2, 3 or 4; got {legendre}")
        self.legendre = int(legendre)
        rotor_harmonics("auto" if rotor is None else rotor, 4)            # validates the choice
        self.rotor = "auto" if rotor is None else str(rotor).lower()
        self.states = bool(states)
        state_tolerance = DEFAULT_STATE_TOLERANCE_DEG if state_tolerance is None else float(state_tolerance)
        shape_tolerance = DEFAULT_SHAPE_TOLERANCE_DEG if shape_tolerance is None else float(shape_tolerance)
        state_debounce = DEFAULT_STATE_DEBOUNCE if state_debounce is None else state_debounce
        if not 0 < state_tolerance < 90:
            raise OptionError(f"state_tolerance must be an angle in (0, 90) degrees; got {state_tolerance}")
        if not 0 < shape_tolerance < 90:
            raise OptionError(f"shape_tolerance must be an angle in (0, 90) degrees; got {shape_tolerance}")
        if isinstance(state_debounce, bool) or int(state_debounce) != state_debounce or int(state_debounce) < 1:
            raise OptionError(f"state_debounce must be a positive number of frames; got {state_debounce}")
        if not 0 < float(level) < 1:
            raise OptionError(f"level must be in (0, 1); got {level}")
        self.state_tolerance, self.shape_tolerance = state_tolerance, shape_tolerance
        self.state_debounce, self.level = int(state_debounce), float(level)
        self.hops = hops
        self._rotor_store = None
        self.mapper = mapper
        # None means "the default" (convenient for callers forwarding optional settings)
        threshold = DEFAULT_THRESHOLD_DEG if threshold is None else threshold
        site_tolerance = DEFAULT_SITE_TOLERANCE_DEG if site_tolerance is None else site_tolerance
        reliable_fraction = RELIABLE_FRACTION if reliable_fraction is None else reliable_fraction
        event_method = "threshold" if event_method is None else event_method
        if event_method not in ("threshold", "symmetry"):
            raise OptionError(f"invalid event_method {event_method!r}; choose one of threshold, symmetry")
        threshold = float(threshold)
        if not 0 < threshold < 180:
            raise OptionError(f"threshold must be an angle in (0, 180) degrees; got {threshold}")
        if not 0 < float(site_tolerance) < 90:
            raise OptionError(f"site_tolerance must be an angle in (0, 90) degrees; got {site_tolerance}")
        if not 0 < float(reliable_fraction) <= 1:
            raise OptionError(f"reliable_fraction must be in (0, 1]; got {reliable_fraction}")
        if frames_per_chunk is not None and int(frames_per_chunk) < 1:
            raise OptionError(f"frames_per_chunk must be a positive integer; got {frames_per_chunk}")
        if store_mode not in ("auto", "memory", "out-of-core"):
            raise OptionError(f"invalid store_mode {store_mode!r}; choose one of auto, memory, out-of-core")
        self.rho_edges = density_edges(rho_bins)
        self.center, self.ligand, self.cutoff, self.cluster = center, ligand, cutoff, cluster
        self.polyanions = polyanions
        self.threshold = threshold
        self.event_method = event_method
        self.site_tolerance = float(site_tolerance)
        self.reliable_fraction = float(reliable_fraction)
        self.angles_csv = angles_csv
        self.overwrite = overwrite
        self.max_chunk = None if frames_per_chunk is None else int(frames_per_chunk)
        self.store_mode = store_mode
        self.scratch_dir = scratch_dir
        self.workers = workers
        self._store = None
        self._writer = None

    # ------------------------------------------------------------- sizes
    def _atoms(self):
        return self.pa.atoms

    def _bytes_per_frame(self, n_atoms_read):
        A, L = self.pa.n_anions, max(self.pa.n_ligands, 1)
        return int(n_atoms_read * 3 * 8 * 4            # positions as read, float64, (un)wrapped copies
                   + A * L * 3 * 8 * 5                 # raw and unit vectors, the store's block and its transpose
                   + A * L * 8 * 10                    # ρ bins (θ, φ, indices, mask, flat index)
                   + A * L * L * 8 * 2                 # symmetry kernel twin (ligand × site cosines)
                   + A * 8 * 3                         # orientation states (scores in blocks of ≤ 32 MB)
                   + A * L * 8 * 3 * 3                 # rotor functions (harmonics of every ligand)
                   + A * 3 * 8 * 6)                    # projections and the table rows

    def _chunk_frames(self):
        fpc = super()._chunk_frames()
        return max(1, min(fpc, self.max_chunk if self.max_chunk is not None else self.max_frames_per_chunk))

    # ------------------------------------------------------------- hooks
    def run(self, traj, start=None, stop=None, step=None):
        """Analyse frames ``start:stop:step`` of ``traj``; returns a :class:`ReorientationResult`."""
        try:
            return super().run(traj, start, stop, step)
        except BaseException:
            self._cleanup(failed=True)
            raise

    def _cleanup(self, failed=False):
        if self._writer is not None:
            if failed:
                self._writer.abort()
            else:
                self._writer.close()
            self._writer = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._rotor_store is not None:
            self._rotor_store.close()
            self._rotor_store = None

    def _prepare(self):
        pa = self.polyanions
        if pa is None:      # identified in the first analysed frame of this run's trajectory
            pa = find_polyanions(self.traj, center=self.center, ligand=self.ligand, cutoff=self.cutoff,
                                 cluster=self.cluster, frame=self.frame_range.start)
        self.pa = pa
        T = self.n_frames
        if T < 2:
            raise OptionError(f"reorientation needs at least 2 frames; got {T}")
        self._require_uniform("reorientation (C1/C2)")
        A, L = pa.n_anions, pa.n_ligands
        self.n_valid = pa.ligand_counts.astype(np.int64)
        self.valid_mask = np.arange(L)[None, :] < self.n_valid[:, None]            # (A, L)
        self.n_vec = int(self.valid_mask.sum())
        # centre species of the anion of every vector (per-species C1/C2 from the same transforms)
        groups = [("all", np.ones(A, bool))]
        if pa.center_species and len(pa.center_species.split()) > 1:
            sp_of = np.asarray(self.traj.species)[pa.centers]
            groups += [(s, sp_of == s) for s in pa.center_species.split() if np.any(sp_of == s)]
        self.groups = groups
        vec_anion = np.nonzero(self.valid_mask)[0]                                   # (n_vec,) row-major (a, l)
        self.group_weights = np.stack([sel[vec_anion] for _, sel in groups]).astype(np.float64)   # (G, n_vec)
        self._store = SeriesStore(3 * self.n_vec, T, budget=self.budget, mode=self.store_mode,
                                  scratch_dir=self.scratch_dir, prefix="anionmotion-reorient-",
                                  keep_path=self.mapper is not None)
        row_bytes = 8 * (2 + 3 * A)
        preview = int(min(self.preview_frames, max(100, self.preview_fraction * self.budget // row_bytes)))
        header = ["time_ps", "frame"] + [f"theta_{k}_deg_{a}" for a in range(A) for k in "abc"]
        self._writer = FrameTableWriter(self.angles_csv, header, fmt=["%.10g", "%d"] + ["%.8g"] * (3 * A),
                                        preview_rows=preview, overwrite=self.overwrite)
        self._tracker = LigandDepartures(pa)
        self._rho_counts = np.zeros((A, len(self.rho_edges[0]) - 1, len(self.rho_edges[1]) - 1), dtype=np.int64)
        self._t0 = 0
        self._events = None
        self._states = None
        self.rotor_ls, self.rotor_dropped = (), {}

    def _start(self, u0, cell0):
        """First frame: event references, the symmetry tolerance check, the orientation ligand."""
        self.u0 = np.ascontiguousarray(u0)
        self._events = {"threshold": _EventStream("threshold", u0, self.n_valid, self.threshold, self.use_ext)}
        self.sym_note = None
        try:
            _check_site_tolerance(u0, self.n_valid, self.site_tolerance)
            self._events["symmetry"] = _EventStream("symmetry", u0, self.n_valid, self.site_tolerance, self.use_ext)
        except OptionError as err:
            if self.event_method == "symmetry":
                raise
            self.sym_note = str(err)
        self.orient_lig = _orientation_ligand(u0, cell0, self.valid_mask)
        # rotor functions: the harmonics of the choice that are not constant for this ligand geometry
        cand = rotor_harmonics(self.rotor, self.n_valid)
        spread = rotor_spread(u0, self.n_valid, cand) if cand else np.zeros((len(self.n_valid), 0))
        keep = [h for h in range(len(cand)) if spread[:, h].max() >= ROTOR_TRIVIAL]
        self.rotor_ls = tuple(cand[h] for h in keep)
        self.rotor_dropped = {f"K{cand[h]}": f"constant for this ligand geometry (spread {spread[:, h].max():.2g} "
                                            f"< {ROTOR_TRIVIAL} √n_ligands over random orientations)"
                              for h in range(len(cand)) if h not in keep}
        if self.rotor_ls:
            self._rotor_store = SeriesStore(len(self.rotor_ls) * self.pa.n_anions, self.n_frames, budget=self.budget,
                                            mode=self.store_mode, scratch_dir=self.scratch_dir, in_memory_fraction=0.1,
                                            prefix="anionmotion-rotor-")
        self.states_note = None
        if self.states:
            if self.n_valid.min() < 2:
                self.states_note = "anions with fewer than two ligands have no orientation states"
            else:
                self._states = _StateStream(u0, self.n_valid, shape_tolerance=self.shape_tolerance,
                                            tolerance=self.state_tolerance, debounce=self.state_debounce)

    def _accumulate(self, chunk):
        pa = self.pa
        v = pa.ligand_vectors(chunk, use_ext=self.use_ext)
        self._tracker.update(v, chunk.frame_indices)
        sh = v.shape
        u = normalize_vectors(v.reshape(sh[0], -1, 3), use_ext=self.use_ext).reshape(sh)
        del v
        n = sh[0]
        if self._events is None:
            self._start(u[0], chunk.cells[0])
        self._store.write(self._t0, u[:, self.valid_mask, :].reshape(n, -1))
        for ev in self._events.values():
            ev.update(u, chunk.frame_indices, chunk.times)
        if self._rotor_store is not None:
            F = rotor_sums(u, self.n_valid, self.rotor_ls)                               # (n, A, H)
            self._rotor_store.write(self._t0, F.transpose(0, 2, 1).reshape(n, -1))
        if self._states is not None:
            self._states.update(u)
        self._rho_counts += ligand_density_counts(u, *self.rho_edges)
        ang = _projection_angles(u, chunk.cells, self.orient_lig)
        self._writer.append(np.column_stack([chunk.times, chunk.frame_indices.astype(np.float64),
                                             ang.reshape(n, -1)]))
        self._t0 += n

    def _acfs(self):
        """Exact all-origin C1, C2 of every group (all anions, centre species) from the store, shape (G, T)."""
        T, nv, G = self.n_frames, self.n_vec, len(self.groups)
        nfft = scipy.fft.next_fast_len(2 * T - 1, real=True)
        nf = nfft // 2 + 1
        L = self.legendre
        # per vector: the readback (3 T, none when the store is in memory), the powers u_k^e (3 (lmax − 1) T),
        # one zero-padded buffer of 3 rows reused for the monomials (3 n_fft), its spectra (3 nf complex) and
        # their power (nf); larger blocks than DEFAULT_MEMORY do not run faster
        per_vec = 8 * (3 * T * (0 if self._store.in_memory else 1) + 3 * (L - 1) * T + 3 * nfft + 3 * nf * 2 + nf)
        work = min(self.fft_fraction * self.budget, DEFAULT_MEMORY)
        block = int(max(1, min(nv, work // per_vec)))
        self.fft_block = block
        pw = np.zeros((L, G, nf))
        blocks = [(r0, 3 * min(block, nv - r0 // 3)) for r0 in range(0, 3 * nv, 3 * block)]
        with self._phase(nv, f"C1…C{L} transforms", unit="vector") as bar:
            if self.mapper is None or (not self._store.in_memory and self._store.path is None):
                pad = np.zeros((3 * block, nfft))            # columns T… stay zero: no wrap-around
                for r0, nr in blocks:
                    W = self.group_weights[:, r0 // 3:(r0 + nr) // 3]
                    pw += _moment_power((self._store.read_rows(r0, nr), nfft, W, self.workers, L), pad)
                    bar.update(nr // 3)
                del pad
            else:  # blocks as tasks of the mapper (Dask), merged in block order: the same sums as serially
                items = [(self._store.read_rows(r0, nr) if self._store.in_memory
                          else (self._store.path, T, r0, nr), nfft, self.group_weights[:, r0 // 3:(r0 + nr) // 3], 1,
                          L) for r0, nr in blocks]
                for (_, _, W, _, _), q in zip(items, self.mapper(_moment_power, items)):
                    pw += q
                    bar.update(W.shape[1])
        n_per = self.group_weights.sum(axis=1)                                      # vectors per group
        norm = n_per[:, None] * (T - np.arange(T, dtype=np.float64))[None, :]
        mom = scipy.fft.irfft(pw, nfft, axis=2, workers=self.workers)[:, :, :T] / norm[None]
        return _legendre_from_moments(mom)                                          # (L, G, T)

    def _rotor_acfs(self):
        """Normalised rotor-function ACFs (n_harmonics, T) and Σ_a⟨F_a²⟩/A, ⟨F⟩ per harmonic, from the store."""
        H, A, T = len(self.rotor_ls), self.pa.n_anions, self.n_frames
        nfft = scipy.fft.next_fast_len(2 * T - 1, real=True)
        per_row = 8 * (T + nfft + 2 * (nfft // 2 + 1))
        block = int(max(1, min(A, min(self.fft_fraction * self.budget, DEFAULT_MEMORY) // per_row)))
        acf = np.zeros((H, T))
        mean = np.zeros(H)
        for h in range(H):
            p = np.zeros(nfft // 2 + 1)
            for r0 in range(h * A, (h + 1) * A, block):
                rows = self._rotor_store.read_rows(r0, min(block, (h + 1) * A - r0))
                mean[h] += rows.sum()
                f = scipy.fft.rfft(rows, n=nfft, axis=1, workers=self.workers)
                p += (f.real ** 2 + f.imag ** 2).sum(axis=0)
            acf[h] = scipy.fft.irfft(p, nfft, workers=self.workers)[:T] / (A * (T - np.arange(T)))
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = acf / np.where(acf[:, :1] > 0, acf[:, :1], np.nan)
        return norm, acf[:, 0].copy(), mean / (A * T)

    def _finish(self) -> ReorientationResult:
        pa = self.pa
        integ = self._tracker.events()
        pa.warn_broken(integ)
        store_info = {"mode": "memory" if self._store.in_memory else "out-of-core", "bytes": int(self._store.nbytes),
                      "scratch_dir": None if self._store.in_memory else (self.scratch_dir or tempfile.gettempdir()),
                      "scratch_file": None if self._store.in_memory else "anonymous (unlinked at creation, freed "
                                                                         "when closed or when the process ends)"}
        cl_all = self._acfs()                                                        # (lmax, G, T)
        c1_all, c2_all = cl_all[0], cl_all[1]
        self._store.close()
        n, dt, times = self.n_frames, self.dt, self.times
        lag = np.arange(n) * dt
        C1, C2 = c1_all[0], c2_all[0]
        C3 = cl_all[2, 0] if self.legendre >= 3 else None
        C4 = cl_all[3, 0] if self.legendre >= 4 else None
        span = float(times[-1] - times[0])
        rel_lag = self.reliable_fraction * span
        i_rel = int(np.searchsorted(lag, rel_lag + 1e-9 * max(dt, 1e-30), side="right") - 1)
        relax = {"C1": fit_relaxation(lag, C1, max_lag_ps=lag[i_rel]),
                 "C2": fit_relaxation(lag, C2, max_lag_ps=lag[i_rel])}
        c1_rel = float(C1[i_rel])
        per_species = {}
        for g, (s, sel) in enumerate(self.groups[1:], start=1):
            a1, a2 = c1_all[g], c2_all[g]
            per_species[s] = {"n_anions": int(sel.sum()), "C1": a1, "C2": a2, "C1_at_reliable_lag": float(a1[i_rel]),
                              "rotating": bool(a1[i_rel] < ROTATING_C1),
                              "tau1_ps": fit_relaxation(lag, a1, max_lag_ps=lag[i_rel])["tau_mean_ps"],
                              "tau2_ps": fit_relaxation(lag, a2, max_lag_ps=lag[i_rel])["tau_mean_ps"]}
            for l in range(3, self.legendre + 1):
                per_species[s][f"C{l}"] = cl_all[l - 1, g]
        for l in range(3, self.legendre + 1):
            relax[f"C{l}"] = fit_relaxation(lag, cl_all[l - 1, 0], max_lag_ps=lag[i_rel])
        rotor = self._rotor_result(lag, i_rel)
        span_ns = span / 1000.0
        ev_thr = self._events["threshold"].table(span_ns, pa.n_anions)
        ev_sym = self._events["symmetry"].table(span_ns, pa.n_anions) if "symmetry" in self._events else None
        chosen = ev_thr if self.event_method == "threshold" else ev_sym
        exposure = pa.n_anions * span_ns
        frequency = {"threshold": {"count": ev_thr["count"], "exposure_anion_ns": exposure,
                                   **rate_ci(ev_thr["count"], exposure, per_unit_counts=ev_thr["per_anion"],
                                             level=self.level)}}
        if ev_sym is not None:
            frequency["symmetry_events"] = {"count": ev_sym["count"], "exposure_anion_ns": exposure,
                                            **rate_ci(ev_sym["count"], exposure, per_unit_counts=ev_sym["per_anion"],
                                                      level=self.level)}
        states = None
        if self._states is not None:
            states = self._states.table(span_ns, level=self.level)
            states.update(tolerance_deg=self.state_tolerance, shape_tolerance_deg=self.shape_tolerance,
                          debounce_frames=self.state_debounce, exposure_anion_ns=exposure)
            frequency["states"] = {k: states[k] for k in ("count", "exposure_anion_ns", "rate", "ci_low", "ci_high",
                                                          "dispersion", "level")}
            self._states = None
        match = frequency_match(frequency, self.hops, level=self.level) if self.hops is not None else None
        te, pe = self.rho_edges
        rho, rho_per = density_from_counts(self._rho_counts, te, pe)
        prev = self._writer.preview()
        stride = self._writer.stride
        self._writer.close()
        self._writer = None
        angles = prev[:, 2:].reshape(len(prev), pa.n_anions, 3)
        framework = {"connectivity": pa.connectivity, "VPA_A3": pa.vpa_A3, "AAL_A": pa.aal_A, "cutoff_A": pa.cutoff,
                     "cutoff_source": pa.cutoff_source, "n_anions": pa.n_anions,
                     "ligands_per_anion": pa.meta.get("ligands_per_anion"),
                     "intact": not integ}
        meta = {
            "center": pa.center_species, "ligand": pa.ligand_species, "cluster": pa.meta.get("cluster_species"),
            "frames": int(n), "dt_ps": dt, "span_ps": span, "first_frame": int(self.frames[0]),
            "threshold_deg": self.threshold, "site_tolerance_deg": self.site_tolerance,
            "event_method": self.event_method,
            "reliable_fraction": self.reliable_fraction,
            "reliable_lag_definition": "longest reliable lag = reliable_fraction × trajectory span (≥ half the "
                                       "origins contribute to every lag up to it)",
            "rotating_definition": f"C1(longest reliable lag) < {ROTATING_C1} (paper 003)",
            "tau_definition": "tau*_ps = mean time (τ/β)Γ(1/β) of the fit C = exp(−(t/τ)^β) on [0, reliable lag]; "
                              "relaxation[...]['tau_integral_ps'] = ∫C dt to the first zero or the reliable lag",
            "acf": "exact all-origin FFT (zero-padded), scipy.fft; vectors streamed into a series store and "
                   "transformed in blocks (power spectra summed, one inverse transform)",
            "acf_store": store_info,
            "fft_block_vectors": int(self.fft_block),
            "memory_budget_bytes": int(self.budget),
            "frames_per_chunk": int(self.frames_per_chunk),
            "orientation_vector": "centre → the ligand most aligned with c in the first frame; angles against the "
                                  "cell vectors a, b, c",
            "orientation_ligand_atoms": pa.ligands[np.arange(pa.n_anions), self.orient_lig],
            "angles_csv": None if self.angles_csv is None else str(self.angles_csv),
            "angles_stride": int(stride),
            "angles_definition": "angles_deg/times_ps hold every angles_stride-th frame (all frames up to "
                                 f"{self.preview_frames}); angles_csv has every frame",
            "rho": "θ from z, φ = atan2(u_x, u_y) from the y axis; density per steradian",
            "frequency_definition": "events / n_anions / trajectory span (ns)",
        }
        if self.sym_note:
            meta["symmetry_events"] = f"not computed: {self.sym_note}"
        meta.update({
            "legendre_max": self.legendre,
            "legendre_definition": "C_l(t) = ⟨P_l(u(t0+t)·u(t0))⟩ over origins, ligands and anions; exact all-origin "
                                   "FFT of the monomials of degree ≤ l (docs/rotor-functions.md)",
            "rotor": self.rotor,
            "states_definition": "reference orientations = the first frame's ligand sites relabelled by every "
                                 "rotation of the anion's point group; a frame is in the nearest one when the mean "
                                 "ligand-to-site cosine exceeds cos(tolerance); a new state counts after "
                                 "debounce_frames consecutive frames in it",
            "frequency_ci": f"exact Poisson (Gamma) {self.level:.0%} interval widened by the per-anion dispersion "
                            "(quasi-Poisson)",
        })
        if self.states_note:
            meta["states"] = f"not computed: {self.states_note}"
        return ReorientationResult(
            species=pa.label, n_anions=pa.n_anions, n_ligands=pa.n_ligands, lag_ps=lag, C1=C1, C2=C2,
            tau1_ps=relax["C1"]["tau_mean_ps"], tau2_ps=relax["C2"]["tau_mean_ps"], relaxation=relax,
            reliable_lag_ps=float(lag[i_rel]), C1_at_reliable_lag=c1_rel, rotating=bool(c1_rel < ROTATING_C1),
            rotation_events=int(chosen["count"]), rotation_frequency_per_ns=float(chosen["frequency_per_ns"]),
            events={"threshold": ev_thr, "symmetry": ev_sym}, angles_deg=angles, times_ps=prev[:, 0].copy(),
            rho=rho, rho_per_anion=rho_per, rho_theta_edges=te, rho_phi_edges=pe, per_species=per_species,
            framework=framework, integrity=integ, meta=meta, C3=C3, C4=C4, rotor=rotor, states=states,
            frequency=frequency, frequency_match=match)

    def _rotor_result(self, lag, i_rel):
        """The ``rotor`` dict of the result (or None when no rotor function applies)."""
        if self._rotor_store is None:
            return None if self.rotor == "none" else {"harmonics": [], "dropped": self.rotor_dropped}
        C, mean_F2, mean_F = self._rotor_acfs()
        self._rotor_store.close()
        self._rotor_store = None
        names = [f"K{l}" for l in self.rotor_ls]
        return {
            "harmonics": names, "C": {k: C[h] for h, k in enumerate(names)},
            "at_reliable_lag": {k: float(C[h, i_rel]) for h, k in enumerate(names)},
            "mean_F": {k: float(mean_F[h]) for h, k in enumerate(names)},
            "mean_F2": {k: float(mean_F2[h]) for h, k in enumerate(names)},
            "baseline": {k: float(mean_F[h] ** 2 / mean_F2[h]) if mean_F2[h] > 0 else None
                         for h, k in enumerate(names)},
            "relaxation": {k: fit_relaxation(lag, C[h], max_lag_ps=lag[i_rel]) for h, k in enumerate(names)},
            "dropped": self.rotor_dropped,
            "definition": "F_l(t) = Σ_ligands K_l(u_k(t)) per anion (K_l cubic harmonics of the lab axes); "
                          "C_F(t) = Σ_a⟨F_a(t0)F_a(t0+t)⟩ / Σ_a⟨F_a²⟩, no mean subtracted; baseline = ⟨F⟩²/⟨F²⟩ "
                          "(the long-time limit when the orientations decorrelate)",
        }


def reorientation(traj, *, center=None, ligand=None, cutoff=None, cluster=None, polyanions=None,
                  threshold=DEFAULT_THRESHOLD_DEG, event_method="threshold",
                  site_tolerance=DEFAULT_SITE_TOLERANCE_DEG, reliable_fraction=RELIABLE_FRACTION,
                  rho_bins=(36, 72), start=None, stop=None, step=None, memory=None, frames_per_chunk=None,
                  progress=None, use_ext=True, angles_csv=None, overwrite=False, mapper=None, legendre=LEGENDRE_MAX,
                  rotor="auto", states=True, state_tolerance=DEFAULT_STATE_TOLERANCE_DEG,
                  state_debounce=DEFAULT_STATE_DEBOUNCE, shape_tolerance=DEFAULT_SHAPE_TOLERANCE_DEG, hops=None,
                  level=0.95) -> ReorientationResult:
    """Reorientation dynamics of the polyanions of a trajectory, in bounded memory.

    Parameters
    ----------
    traj : Trajectory
    center, ligand, cutoff, cluster :
        Polyanion definition, as :func:`~anionmotion.analysis.polyanions.find_polyanions`
        (identified in the first analysed frame).
    polyanions : Polyanions, optional
        Use these instead of identifying them.
    threshold : float, degrees
        Rotation-event threshold (default 70°, paper 000).  None for any of the
        numeric options means its default.
    event_method : {"threshold", "symmetry"}
        Which event count is the headline ``rotation_events`` (both are computed).
    site_tolerance : float, degrees
        Symmetry-aware events: ligand-to-site tolerance (default 30°).
    reliable_fraction : float
        Longest reliable lag as a fraction of the trajectory span (default ½).
    rho_bins : (int, int)
        Bins of ρ(θ, φ) in θ and φ.
    start, stop, step : int, optional
        Frame range.
    memory : int or str, optional
        Memory budget of the whole analysis (``"2GB"``; default half of the
        available RAM).  Peak memory does not grow with the trajectory length:
        the unit vectors go to a scratch file when they do not fit half of it.
    frames_per_chunk : int, optional
        Largest number of frames read at once (default 2048, smaller when the budget asks for it).
    progress : bool, optional
        Progress bars (reading pass, then the C1/C2 transforms); None = only on a terminal.
    use_ext : bool
        Compiled kernels (True) or the numpy twins.
    angles_csv : str, optional
        CSV file for the angle projections of every frame (columns ``time_ps``,
        ``frame``, then θa, θb, θc of each anion, degrees), written chunk by chunk.
    overwrite : bool
        Replace an existing ``angles_csv``.
    mapper : callable, optional
        ``mapper(function, items)`` returning the results in order (e.g. Dask's ``client.map`` +
        ``gather``): the C1/C2 transforms of the blocks of vectors run as its tasks (a scratch file is then
        kept by name so that tasks in other processes can read their rows).  The sums are merged in block
        order, so the result is the same as the serial one bit for bit.
    legendre : int
        Highest Legendre order of the ACFs, 2 … 4 (default 4: C1 … C4).
    rotor : {"auto", "td", "oh", "cubic", "none"}
        Cubic harmonics of the rotor functions: td = K3, K4; oh = K4, K6; cubic = K3, K4, K6; auto = td for
        4 ligands, oh for 6, cubic otherwise.  Harmonics constant for the ligand geometry are dropped.
    states : bool
        Count transitions between discrete orientation states (default True).
    state_tolerance : float, degrees
        A frame is in the nearest reference orientation when the mean ligand-to-site cosine exceeds
        cos(state_tolerance) (default 30°).
    state_debounce : int, frames
        A new state counts after this many consecutive frames in it (default 3).
    shape_tolerance : float, degrees
        A ligand permutation is a rotation of the anion when the rotated first-frame ligands land within
        this angle of their sites (default 25°).
    hops : HopsResult or dict, optional
        A :func:`anionmotion.hops` result of the same trajectory: the result's ``frequency_match`` then holds
        ν_hop and ν_rot/ν_hop with confidence intervals.
    level : float
        Confidence level of the frequency intervals (default 0.95).

    Returns
    -------
    ReorientationResult
        ``angles_deg``/``times_ps`` hold every ``meta['angles_stride']``-th frame
        (all frames for up to 20,000 frames); ``meta['acf_store']`` says whether
        the vectors were kept in memory or in a scratch file (and where).

    Notes
    -----
    u(t) is the unit minimum-image vector centre→ligand (clusters: centre of
    mass→ligand).  C1(t) = ⟨u(t0+t)·u(t0)⟩ and C2(t) = ⟨P2(u(t0+t)·u(t0))⟩
    over all origins t0, ligands and anions, exactly by FFT as
    :func:`orientation_acf` (here from vectors streamed into a store and read
    back in blocks; see :class:`Reorientation`).  The longest reliable lag is
    ``reliable_fraction`` × span: beyond it fewer than half of the origins
    contribute.  ``rotating`` = C1(reliable lag) < 0.9 (paper 003).
    Relaxation times: ∫C dt up to the first zero or the reliable lag, and the
    fit C ≈ exp(−(t/τ)^β) over [0, reliable lag] with mean time (τ/β)Γ(1/β);
    for rotational diffusion C1 = exp(−2D_r t), C2 = exp(−6D_r t).
    Rotation events (paper 000): an anion rotates when any ligand makes an
    angle > ``threshold`` with its direction at the anion's last event; the
    reference then resets.  Symmetry-aware events count jumps between
    symmetry-equivalent orientations (ligands permuted among the reference
    sites; see :func:`~anionmotion.kernels.events.rotation_events_symmetry`);
    the Kabsch rotation angle of each event is reported.  Frequency = events
    per anion per ns of trajectory span.  Events, ρ(θ, φ), the integrity check
    and the angle projections are computed online, chunk by chunk, and equal
    the in-memory results exactly.

    References
    ----------
    SPEC §4; paper 003 eq. 4 and Fig. 5; paper 000 Fig. 2.
    """
    return Reorientation(center=center, ligand=ligand, cutoff=cutoff, cluster=cluster, polyanions=polyanions,
                         threshold=threshold, event_method=event_method, site_tolerance=site_tolerance,
                         reliable_fraction=reliable_fraction, rho_bins=rho_bins, angles_csv=angles_csv,
                         overwrite=overwrite, frames_per_chunk=frames_per_chunk, memory=memory, progress=progress,
                         use_ext=use_ext, mapper=mapper, legendre=legendre, rotor=rotor, states=states,
                         state_tolerance=state_tolerance, state_debounce=state_debounce,
                         shape_tolerance=shape_tolerance, hops=hops, level=level).run(traj, start=start, stop=stop,
                                                                                      step=step)
