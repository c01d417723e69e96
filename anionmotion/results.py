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
import threading
from contextlib import contextmanager

import numpy as np

from .errors import OptionError

__all__ = ["Result", "to_jsonable", "check_output", "write_text_atomic", "write_json", "temp_output", "current_umask",
           "json_arrays", "dump_json", "atomic_output",
           "protected_inputs", "is_input", "make_output_folder"]

#: numeric arrays at least this long stay numpy arrays inside :func:`json_arrays` (streamed by :func:`dump_json`)
STREAM_ARRAY_SIZE = 1024
_STATE = threading.local()


@contextmanager
def json_arrays():
    """Within this context :func:`to_jsonable` leaves large numeric arrays as numpy arrays.

    :func:`write_json` (and :func:`dump_json`) then write them chunk by chunk, so a result with per-lag or
    per-frame arrays of 10⁷ values is written without building 10⁷ Python floats; the text is the same as
    ``json.dumps(..., indent=2)`` of the fully converted data.
    """
    prev = getattr(_STATE, "keep", False)
    _STATE.keep = True
    try:
        yield
    finally:
        _STATE.keep = prev


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
        if getattr(_STATE, "keep", False) and obj.dtype.kind in "fiub" and obj.size >= STREAM_ARRAY_SIZE:
            return obj
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


_PROTECTED = threading.local()


@contextmanager
def protected_inputs(paths, *, strict_folders=False):
    """Within this context :func:`check_output` refuses to write over any of ``paths`` (the run's inputs).

    The command line wraps every subcommand in it with the input files it was given, so that an output
    named like an input (``msd run.lammpstrj --json run.lammpstrj --overwrite``) is refused before any work
    is done.  Files read by a reader that is still open are protected as well (:func:`is_input`).
    ``strict_folders`` (the command line) creates at most one missing output folder, never in the
    filesystem root (:func:`make_output_folder`); library calls create missing folders like ``os.makedirs``.
    """
    prev = getattr(_PROTECTED, "paths", ())
    prev_strict = getattr(_PROTECTED, "strict", False)
    _PROTECTED.paths = tuple(prev) + tuple(os.fspath(p) for p in paths if p)
    _PROTECTED.strict = prev_strict or bool(strict_folders)
    try:
        yield
    finally:
        _PROTECTED.paths = prev
        _PROTECTED.strict = prev_strict


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def is_input(path) -> bool:
    """Whether ``path`` is one of the protected inputs or a file an open trajectory reader reads."""
    from .io.base import open_input_paths

    path = os.fspath(path)
    return any(_same_file(path, p) for p in (*getattr(_PROTECTED, "paths", ()), *open_input_paths()))


def make_output_folder(path, strict=None) -> str:
    """Create the output folder ``path`` when missing.

    On the command line (``strict``; default: inside :func:`protected_inputs` with ``strict_folders``) a
    typo such as ``--out /nonexistent/x`` must not create folders elsewhere (at the filesystem root): at
    most one missing level is created, and never directly in the filesystem root.  Library calls create
    the missing folders (``os.makedirs``).

    Raises
    ------
    OptionError
        ``path`` is a file; strict: its parent folder does not exist (or is the root).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return path
    if os.path.exists(path):
        raise OptionError(f"{path}: exists and is not a folder; expected an output folder")
    if strict is None:
        strict = getattr(_PROTECTED, "strict", False)
    if not strict:
        try:
            os.makedirs(path, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as err:
            raise OptionError(f"{path}: cannot create the output folder ({err.strerror})") from None
        return path
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise OptionError(f"{path}: the folder {parent} does not exist; create it first (only the last folder of "
                          "an output path is created)")
    if os.path.dirname(parent) == parent:
        raise OptionError(f"{path}: refusing to create a folder in the filesystem root {parent}")
    try:
        os.mkdir(path)
    except FileExistsError:   # created meanwhile by a concurrent run (its lock decides who writes)
        if not os.path.isdir(path):
            raise OptionError(f"{path}: exists and is not a folder; expected an output folder") from None
    return path


def check_output(path, overwrite=False):
    """Refuse an unusable output path before any work is done; create its folder (one level) when missing.

    Raises
    ------
    OptionError
        ``path`` exists and ``overwrite`` is False; ``path`` is an input of the run (even with
        ``overwrite``: see :func:`protected_inputs`); ``path`` is a folder or a special file (FIFO, device);
        its folder is missing and cannot be created by :func:`make_output_folder`.
    """
    path = os.fspath(path)
    if not path:
        raise OptionError("empty output file name")
    if os.path.exists(path):
        if is_input(path):
            raise OptionError(f"{path}: is an input of this run; refusing to write an output over it "
                              "(even with overwrite / --overwrite): choose another name")
        if os.path.isdir(path):
            raise OptionError(f"{path}: is a folder; expected an output file name")
        if not os.path.isfile(path):
            raise OptionError(f"{path}: is not a regular file (a FIFO or device?); expected an output file name")
        if not overwrite:
            raise OptionError(f"{path}: output file exists; refusing to overwrite it (use overwrite=True / --overwrite)")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        make_output_folder(parent)
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


@contextmanager
def atomic_output(path, overwrite=False, mode="w"):
    """Open a temporary file next to ``path`` (checked by :func:`check_output`), yield it, and rename it into
    place when the block ends without error; on error the temporary file is removed (no half-written output)."""
    path = check_output(path, overwrite)
    fd, tmp = temp_output(path)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path, text, overwrite=False):
    """Write ``text`` to ``path`` via a temporary file and a rename (no half-written outputs)."""
    with atomic_output(path, overwrite) as fh:
        fh.write(text)
    return os.fspath(path)


def write_json(path, data, overwrite=False):
    """Write ``data`` (converted with :func:`to_jsonable`) as indented JSON, atomically.

    The text equals ``json.dumps(to_jsonable(data), indent=2)``; large numeric arrays are written chunk by
    chunk (:func:`dump_json`), so memory does not grow with their length.  Build ``data`` inside
    :func:`json_arrays` to keep its arrays from being converted to lists beforehand.
    """
    with json_arrays():
        data = to_jsonable(data)
    with atomic_output(path, overwrite) as fh:
        dump_json(data, fh)
        fh.write("\n")
    return os.fspath(path)


_CHUNK = 65536


def _array_items(a):
    """JSON texts of the elements of a 1-D numeric array, chunk by chunk (as ``to_jsonable`` + ``json``)."""
    kind = a.dtype.kind
    for i in range(0, len(a), _CHUNK):
        part = a[i:i + _CHUNK].tolist()
        if kind == "f":
            yield [float.__repr__(x) if math.isfinite(x) else "null" for x in part]
        elif kind == "b":
            yield ["true" if x else "false" for x in part]
        else:
            yield [str(int(x)) for x in part]


def _dump_array(a, fh, level):
    if a.ndim == 0:
        fh.write(json.dumps(to_jsonable(a.item()), allow_nan=False))
        return
    if len(a) == 0:
        fh.write("[]")
        return
    inner = "\n" + "  " * (level + 1)
    fh.write("[" + inner)
    if a.ndim == 1:
        first = True
        for texts in _array_items(a):
            if not first:
                fh.write("," + inner)
            fh.write(("," + inner).join(texts))
            first = False
    else:
        for k in range(len(a)):
            if k:
                fh.write("," + inner)
            _dump_array(a[k], fh, level + 1)
    fh.write("\n" + "  " * level + "]")


def dump_json(data, fh, level=0):
    """Write JSON-ready ``data`` (dicts, lists, scalars and numeric numpy arrays) to ``fh``.

    The text is that of ``json.dumps(data, indent=2, allow_nan=False)`` with every array written as the
    list it stands for, but the arrays are formatted chunk by chunk.
    """
    if isinstance(data, np.ndarray):
        _dump_array(data, fh, level)
    elif isinstance(data, dict):
        if not data:
            fh.write("{}")
            return
        inner = "\n" + "  " * (level + 1)
        fh.write("{")
        for k, (key, value) in enumerate(data.items()):
            fh.write(("," if k else "") + inner + json.dumps(str(key)) + ": ")
            dump_json(value, fh, level + 1)
        fh.write("\n" + "  " * level + "}")
    elif isinstance(data, (list, tuple)):
        if not data:
            fh.write("[]")
            return
        inner = "\n" + "  " * (level + 1)
        fh.write("[")
        for k, value in enumerate(data):
            fh.write(("," if k else "") + inner)
            dump_json(value, fh, level + 1)
        fh.write("\n" + "  " * level + "]")
    else:
        fh.write(json.dumps(data, allow_nan=False))


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
        with json_arrays():
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
        spec = _pick(self.figures(**context), which, "stem", "figure", type(self).__name__)
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
        tab = _pick(self.tables(**context), which, "name", "table", type(self).__name__)
        with atomic_output(path, overwrite) as fh:
            tab.write(fh)
        return os.fspath(path)


def _pick(items, which, key, what, owner):
    """Item ``which`` of ``items`` by index or by its ``key`` attribute; one-line errors naming the choices."""
    if not items:
        raise OptionError(f"{owner} has no {what}")
    if isinstance(which, str):
        for item in items:
            if getattr(item, key) == which:
                return item
        raise OptionError(f"no {what} {which!r}; this result has {', '.join(getattr(i, key) for i in items)}")
    return items[int(which)]
