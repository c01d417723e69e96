"""Matplotlib access shared by the CLI, the report and the result objects (Agg backend, no display needed)."""

from __future__ import annotations

__all__ = ["need_matplotlib"]


def need_matplotlib():
    """Import matplotlib with the Agg backend and return ``pyplot``, or raise ImportError with the install command."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install 'anionmotion[plot]'") from err
    return plt
