"""Frame streaming shared by the spectra and structure analyses."""

from __future__ import annotations

__all__ = ["stream_chunks"]


def stream_chunks(traj, need_unwrap, frames_per_chunk, atoms, *, start=None, stop=None, step=None, progress=None,
                  desc=None):
    """``traj.iter_chunks`` that skips the unwrapping step when the caller does not need continuous positions.

    Density grids and g(r) wrap positions anyway, and a VACF from file velocities never looks at them:
    skipping the unwrap saves two coordinate transforms per frame and spurious :class:`UnwrapWarning`\\ s on
    coarsely sampled runs.  The trajectory's own setting is left untouched.
    """
    yield from traj.iter_chunks(frames_per_chunk, atoms, start=start, stop=stop, step=step, progress=progress,
                                desc=desc, unwrap=bool(traj.unwrap and need_unwrap))
