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

__all__ = ["Result", "to_jsonable", "check_output", "write_text_atomic", "write_json"]


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


def write_text_atomic(path, text, overwrite=False):
    """Write ``text`` to ``path`` via a temporary file and a rename (no half-written outputs)."""
    path = check_output(path, overwrite)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.basename(path))
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
    """Mixin for frozen-dataclass results: ``to_dict()``, ``save()``, ``summary()``."""

    def to_dict(self) -> dict:
        """All fields as JSON-compatible types (arrays become lists)."""
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def save(self, path, overwrite=False):
        """Write :meth:`to_dict` as JSON; refuses to overwrite an existing file unless ``overwrite``."""
        return write_json(path, self.to_dict(), overwrite)

    def summary(self) -> str:  # pragma: no cover - overridden
        return repr(self)
