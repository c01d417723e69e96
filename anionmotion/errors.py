"""Exceptions and warnings raised by anionmotion.

Every error about user input is a subclass of :class:`AnionmotionError` *and*
of :class:`ValueError` (or :class:`TypeError`), so ``except ValueError`` keeps
working.  The command line prints the message of any :class:`AnionmotionError`
and exits with status 2.

Warnings are subclasses of :class:`AnionmotionWarning` so they can be filtered
as a family (``warnings.simplefilter("ignore", anionmotion.AnionmotionWarning)``).
"""

from __future__ import annotations

__all__ = [
    "AnionmotionError",
    "TrajectoryError",
    "FormatError",
    "OptionError",
    "OptionTypeError",
    "SimulationError",
    "AnionmotionWarning",
    "UnwrapWarning",
    "SamplingWarning",
    "TruncatedFileWarning",
    "IntegrityWarning",
    "FitWarning",
]


class AnionmotionError(ValueError):
    """Base class of every error anionmotion raises for bad input."""


class TrajectoryError(AnionmotionError):
    """A trajectory file is malformed or inconsistent.

    Parameters
    ----------
    message : str
        What is wrong and what was expected.
    path : str, optional
        The file.
    frame, line, atom : int, optional
        0-based frame index, 1-based line number, 0-based atom index (or id).
    """

    def __init__(self, message, *, path=None, frame=None, line=None, atom=None):
        self.path = None if path is None else str(path)
        self.frame = frame
        self.line = line
        self.atom = atom
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if frame is not None:
            where.append(f"frame {frame}")
        if atom is not None:
            where.append(f"atom {atom}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.bare_message = message


class FormatError(TrajectoryError):
    """The file's format is unknown or not the one requested."""


class OptionError(AnionmotionError):
    """An option or keyword argument has an invalid value."""


class OptionTypeError(OptionError, TypeError):
    """An option or keyword argument has the wrong type (also a :class:`TypeError`)."""


class SimulationError(AnionmotionError):
    """An MD run cannot go on: the integration exploded (NaN or runaway velocities), e.g. a too-long time step.

    The frames written before the failure are kept in the output file.
    """


class AnionmotionWarning(UserWarning):
    """Base class of anionmotion's warnings."""


class UnwrapWarning(AnionmotionWarning):
    """An atom moved more than 0.35 of a cell vector between two stored frames (SPEC §1)."""


class SamplingWarning(AnionmotionWarning):
    """Velocities were obtained by finite differences of positions (SPEC §6)."""


class TruncatedFileWarning(AnionmotionWarning):
    """The last frame of a file is incomplete; the complete frames are kept."""


class IntegrityWarning(AnionmotionWarning):
    """A polyanion lost a ligand, or a framework is not intact (SPEC §4)."""


class FitWarning(AnionmotionWarning):
    """A fit is unreliable (e.g. the MSD is not yet diffusive in the fit window)."""
