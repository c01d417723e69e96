"""Kept for 0.1 imports: the detection lives in :mod:`anionmotion.analysis.detect`."""

from ..analysis.detect import CationChoice, PolyanionChoice, detect_cation, detect_polyanions  # noqa: F401

__all__ = ["CationChoice", "PolyanionChoice", "detect_cation", "detect_polyanions"]
