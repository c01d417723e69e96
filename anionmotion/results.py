"""Common behaviour of result objects: ``to_dict()``, ``save()``, safe output files.

Every analysis returns a frozen dataclass deriving from :class:`Result`.  Field
docstrings give the unit; ``meta`` records estimator choices and parameters.
Output files are never overwritten silently: :func:`check_output` refuses an
existing file unless ``overwrite=True`` (CLI ``--overwrite``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile

import numpy as np

from .errors import OptionError

__all__ = ["Result", "to_jsonable", "check_output", "write_text_atomic", "write_json", "temp_output", "current_umask"]


def to_jsonable(obj):
    """Convert numpy arrays/scalars, dataclasses and nested containers to JSON types (NaN/inf → None)."""
    if isinstance(obj, Result):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype == object or obj.dtype.kind in "US":
            return [to_jsonable(v) for v in obj.tolist()]
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def check_output(path, overwrite=False):
    """Raise when ``path`` exists and ``overwrite`` is False; create missing parent folders."""
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise OptionError(f"{path}: output file exists; refusing to overwrite it (use overwrite=True / --overwrite)")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    return path


def current_umask() -> int:
    """The process umask (read from /proc without changing it; else by setting and restoring it)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_output(path, suffix=None):
    """``(fd, tmp)``: a temporary file next to ``path`` for an atomic write, with the permissions a plain
    ``open(path, "w")`` would give (0666 less the umask; ``mkstemp`` alone makes it 0600)."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.basename(path) if suffix is None else suffix)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    except OSError:  # pragma: no cover - file systems without modes
        pass
    return fd, tmp


def write_text_atomic(path, text, overwrite=False):
    """Write ``text`` to ``path`` via a temporary file and a rename (no half-written outputs)."""
    path = check_output(path, overwrite)
    fd, tmp = temp_output(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path, data, overwrite=False):
    """Write ``data`` (converted with :func:`to_jsonable`) as indented JSON."""
    return write_text_atomic(path, json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n", overwrite)


class Result:
    """Mixin for frozen-dataclass results: ``to_dict()``, ``save()``, ``summary()``, ``tables()``, ``plot()``.

    Tables and figures are defined once per result class in :mod:`anionmotion.analysis.views` and used by
    the CLI (``--csv``, ``--plot``), the report and notebooks alike.
    """

    def to_dict(self) -> dict:
        """All fields as JSON-compatible types (arrays become lists)."""
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def save(self, path, overwrite=False):
        """Write :meth:`to_dict` as JSON; refuses to overwrite an existing file unless ``overwrite``."""
        return write_json(path, self.to_dict(), overwrite)

    def summary(self) -> str:  # pragma: no cover - overridden
        return repr(self)

    # ---------------------------------------------------------------- views
    def tables(self, **context) -> list:
        """The tables of this result (:class:`anionmotion.analysis.views.Table`: name, header, data).

        ``context`` passes extra information a view may use (e.g. ``fit=`` for an MSD).
        """
        from .analysis.views import tables

        return tables(self, **context)

    def figures(self, **context) -> list:
        """The figures of this result (:class:`anionmotion.analysis.views.FigureSpec`: stem, caption, draw)."""
        from .analysis.views import figures

        return figures(self, **context)

    def plot(self, ax=None, *, which=0, **context):
        """Draw figure ``which`` (index or stem) of this result and return the matplotlib Figure.

        Parameters
        ----------
        ax : matplotlib Axes or sequence of Axes, optional
            Where to draw (as many axes as the figure has panels); default a new figure.
        which : int or str
            Index in :meth:`figures` or its stem (``"msd"``, ``"orientation_density"``…).
        """
        specs = self.figures(**context)
        if not specs:
            raise OptionError(f"{type(self).__name__} has no figure")
        if isinstance(which, str):
            match = [f for f in specs if f.stem == which]
            if not match:
                raise OptionError(f"no figure {which!r}; this result draws {', '.join(f.stem for f in specs)}")
            spec = match[0]
        else:
            spec = specs[int(which)]
        if ax is None:
            from .plotting import need_matplotlib

            plt = need_matplotlib()
            fig, axes = plt.subplots(spec.nrows, spec.ncols, squeeze=False,
                                     figsize=(spec.width * (1 + 0.6 * (spec.ncols - 1)), spec.height * spec.nrows))
            axes = list(axes.ravel())
        else:
            axes = list(ax) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
            fig = axes[0].figure
        spec.draw(axes)
        return fig

    def save_plot(self, path, *, which=0, overwrite=False, dpi=130, **context):
        """Draw figure ``which`` and write it to ``path`` (PNG/PDF/SVG); refuses to overwrite unless asked."""
        check_output(path, overwrite)
        fig = self.plot(which=which, **context)
        try:
            fig.tight_layout()
            fig.savefig(path, dpi=dpi)
        finally:
            import matplotlib.pyplot as plt

            plt.close(fig)
        return path

    def write_csv(self, path, *, which=0, overwrite=False, **context):
        """Write table ``which`` (index or name) of :meth:`tables` to ``path`` as CSV."""
        tabs = self.tables(**context)
        if not tabs:
            raise OptionError(f"{type(self).__name__} has no table to write")
        if isinstance(which, str):
            match = [t for t in tabs if t.name == which]
            if not match:
                raise OptionError(f"no table {which!r}; this result has {', '.join(t.name for t in tabs)}")
            tab = match[0]
        else:
            tab = tabs[int(which)]
        return write_text_atomic(path, tab.to_csv(), overwrite)
