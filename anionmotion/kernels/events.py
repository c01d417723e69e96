"""Event kernels (SPEC §4–5): façade over ``ext/_events.pyx`` with numpy twins.

Rotation events of polyanions (threshold on the angle to a resetting
reference, or symmetry-aware site permutations) and residence runs of
cations in the first shell of a polyanion centre.
"""

from __future__ import annotations

import numpy as np

from .._validate import as_array
from ._loader import load_ext

__all__ = ["rotation_events_threshold", "rotation_events_threshold_ref", "rotation_events_symmetry",
           "rotation_events_symmetry_ref", "residence_runs", "residence_runs_ref"]

_events = load_ext("_events")


def rotation_events_threshold_ref(u, cos_threshold, ref, flags):
    """Numpy twin of :func:`rotation_events_threshold` (loop over frames, vectorised over anions)."""
    for t in range(u.shape[0]):
        c = np.einsum("alk,alk->al", u[t], ref)
        with np.errstate(invalid="ignore"):
            ev = np.any(c < cos_threshold, axis=1)
        flags[t] = ev
        ref[ev] = u[t, ev]


def _state(ref, u, name):
    """The carried reference state: a fresh copy of frame 0 (None) or the caller's array, updated in place."""
    if ref is None:
        return np.ascontiguousarray(u[0].copy())
    if not isinstance(ref, np.ndarray) or ref.dtype != np.float64 or not ref.flags.c_contiguous \
            or not ref.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous float64 array (it is updated in place)")
    if ref.shape != u.shape[1:]:
        raise ValueError(f"{name} must have shape {u.shape[1:]} (n_anions, n_lig, 3); got {ref.shape}")
    return ref


def rotation_events_threshold(u, threshold_deg, *, ref=None, use_ext=True):
    """Rotation events with a resetting reference.

    Parameters
    ----------
    u : ndarray, shape (n_frames, n_anions, n_lig, 3), float64
        Unit centre→ligand vectors (NaN rows for padding ligands).
    threshold_deg : float, degrees
        An event happens when any ligand direction makes an angle larger than
        this with its direction at the anion's previous event (or frame 0).
    ref : ndarray, shape (n_anions, n_lig, 3), float64, optional
        Carried state for streaming: the ligand directions at each anion's last
        event (or at the first frame of the trajectory), updated in place.
        Default: a copy of ``u[0]`` (the whole trajectory in one call).
        Calling chunk after chunk with the same ``ref`` gives exactly the
        flags of one call on the concatenated frames.
    use_ext : bool

    Returns
    -------
    flags : ndarray, shape (n_frames, n_anions), bool
        True at the frames where an anion rotates.
    """
    u = as_array(u, "u", shape=(None, None, None, 3))
    flags = np.zeros(u.shape[:2], dtype=np.uint8)
    if u.shape[0] == 0:
        return flags.astype(bool)
    ref = _state(ref, u, "ref")
    cth = float(np.cos(np.radians(threshold_deg)))
    (_events.rotation_events_threshold if use_ext else rotation_events_threshold_ref)(u, cth, ref, flags)
    return flags.astype(bool)


def rotation_events_symmetry_ref(u, n_valid, cos_tolerance, ref, site, tmp, flags):
    """Numpy twin of :func:`rotation_events_symmetry`."""
    n_lig = u.shape[2]
    valid = np.arange(n_lig)[None, :] < n_valid[:, None]          # (A, L)
    for t in range(u.shape[0]):
        c = np.einsum("aik,ajk->aij", u[t], ref)                  # (A, L, L) current i vs site j
        c = np.where(valid[:, None, :], c, -2.0)
        best_j = np.argmax(c, axis=2)
        best = np.take_along_axis(c, best_j[..., None], 2)[..., 0]
        with np.errstate(invalid="ignore"):
            ok = np.all(np.where(valid, best >= cos_tolerance, True), axis=1)
        moved = np.any(valid & (best_j != np.arange(n_lig)[None, :]), axis=1)
        srt = np.sort(np.where(valid, best_j, -1 - np.arange(n_lig)[None, :]), axis=1)
        distinct = np.all(np.diff(srt, axis=1) != 0, axis=1)
        ev = ok & moved & distinct
        flags[t] = ev
        if ev.any():
            # ligand i takes the site it now occupies: the site set is fixed, labels move
            ref[ev] = np.take_along_axis(ref[ev], best_j[ev][..., None], axis=1)


def rotation_events_symmetry(u, n_valid, tolerance_deg, *, ref=None, use_ext=True):
    """Symmetry-aware rotation events (jumps between equivalent orientations).

    Parameters
    ----------
    u : ndarray, shape (n_frames, n_anions, n_lig, 3), float64
        Unit centre→ligand vectors; the first ``n_valid[a]`` rows of anion a are real.
    n_valid : ndarray, shape (n_anions,), int
    tolerance_deg : float, degrees
        A ligand "sits on" a reference site when within this angle of it; must
        be below half the smallest ligand–ligand angle.
    ref : ndarray, shape (n_anions, n_lig, 3), float64, optional
        Carried state for streaming: the reference site of each ligand label
        (the first-frame site set, permuted at every event), updated in place.
        Default: a copy of ``u[0]``.  Chunk after chunk with the same ``ref``
        equals one call on the concatenated frames.

    Returns
    -------
    flags : ndarray, shape (n_frames, n_anions), bool

    Notes
    -----
    At every frame each ligand is matched to its nearest reference site.  When
    all ligands sit within the tolerance of distinct sites and at least one is
    on another ligand's site, the anion has moved to a symmetry-equivalent
    orientation (e.g. a 120° turn about a C3 axis of a tetrahedron): one event,
    and the reference resets — each ligand takes the site it now occupies, so
    the sites stay the crystal-fixed directions of the first frame.  Frames
    with a ligand between sites are undecided, which gives hysteresis against
    libration around a saddle.  An anion that drifts continuously away from
    its first-frame site set (a free rotor) stays undecided: use the
    threshold method there.
    """
    u = as_array(u, "u", shape=(None, None, None, 3))
    n_valid = as_array(n_valid, "n_valid", shape=(u.shape[1],), dtype=np.int64)
    flags = np.zeros(u.shape[:2], dtype=np.uint8)
    if u.shape[0] == 0:
        return flags.astype(bool)
    ref = _state(ref, u, "ref")
    site = np.zeros(u.shape[1:3], dtype=np.int64)
    tmp = np.zeros((u.shape[2], 3))
    ctol = float(np.cos(np.radians(tolerance_deg)))
    (_events.rotation_events_symmetry if use_ext else rotation_events_symmetry_ref)(u, n_valid, ctol, ref, site, tmp,
                                                                                     flags)
    return flags.astype(bool)


def residence_runs_ref(inside, min_len, out):
    """Numpy twin of :func:`residence_runs`; returns the number of rows written."""
    n_frames, n_pairs = inside.shape
    pad = np.zeros((n_frames + 2, n_pairs), dtype=np.int8)
    pad[1:-1] = inside
    d = np.diff(pad, axis=0)
    st_t, st_p = np.nonzero(d.T == 1)[::-1]
    en_t, en_p = np.nonzero(d.T == -1)[::-1]
    # np.nonzero on the transposed array orders by pair then time
    rows = np.stack([st_p, st_t, en_t], axis=1) if len(st_t) else np.zeros((0, 3), np.int64)
    rows = rows[(rows[:, 2] - rows[:, 1]) >= min_len] if len(rows) else rows
    out[:len(rows)] = rows
    return len(rows)


def residence_runs(inside, min_len, *, use_ext=True):
    """Maximal runs of consecutive True of at least ``min_len`` frames.

    Parameters
    ----------
    inside : ndarray, shape (n_frames, n_pairs), bool
    min_len : int, frames

    Returns
    -------
    ndarray, shape (n_runs, 3), int64
        Rows (pair, first frame, stop frame (exclusive)), ordered by pair then time.
    """
    inside = as_array(inside, "inside", shape=(None, None), dtype=np.uint8)
    if int(min_len) < 1:
        raise ValueError(f"min_len must be at least 1 frame; got {min_len}")
    starts = int(inside[0].sum()) + int(np.count_nonzero(np.diff(inside.astype(np.int8), axis=0) == 1)) \
        if inside.shape[0] else 0
    out = np.zeros((starts, 3), dtype=np.int64)
    n = (_events.residence_runs if use_ext else residence_runs_ref)(inside, int(min_len), out)
    return out[:n]
