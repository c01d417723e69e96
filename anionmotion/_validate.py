"""One validator for array and option input (STYLE §4)."""

from __future__ import annotations

import re

import numpy as np

from .errors import OptionError, OptionTypeError

__all__ = ["as_array", "check_choice", "parse_memory", "parse_types", "check_number", "check_int"]


def as_array(x, name, *, shape=None, dtype=np.float64, finite=False, copy=False):
    """Convert ``x`` to a C-contiguous array and check its shape.

    Parameters
    ----------
    x : array_like
    name : str
        Name used in error messages.
    shape : tuple of (int or None), optional
        Expected shape; ``None`` entries accept any length.
    dtype : numpy dtype
    finite : bool
        Reject NaN and inf.

    Raises
    ------
    ValueError
        With a message naming ``name`` and the expected and actual shape.
    """
    try:
        arr = np.array(x, dtype=dtype, copy=copy) if copy else np.ascontiguousarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise OptionTypeError(f"{name} must be convertible to a {np.dtype(dtype).name} array; got "
                              f"{type(x).__name__}") from err
    arr = np.ascontiguousarray(arr)
    if shape is not None:
        ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
        if not ok:
            want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
            raise OptionError(f"{name} must have shape {want}; got {arr.shape}")
    if finite and arr.size and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise OptionError(f"{name} contains NaN or inf at index {tuple(int(i) for i in bad)}")
    return arr


def check_number(value, name, *, positive=False, nonnegative=False, unit="", allow_none=False):
    """``value`` as a finite float; OptionError (one line naming ``name``) for anything else.

    Parameters
    ----------
    positive, nonnegative : bool
        Require > 0 or ≥ 0.
    unit : str
        Shown in the message, e.g. ``"Å"``.
    allow_none : bool
        Return None for None.
    """
    if value is None and allow_none:
        return None
    what = "a positive" if positive else "a non-negative" if nonnegative else "a finite"
    want = f"{what} number{' in ' + unit if unit else ''}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise OptionTypeError(f"{name} must be {want}; got {value!r}")
    v = float(value)
    if not np.isfinite(v) or (positive and not v > 0) or (nonnegative and not v >= 0):
        raise OptionError(f"{name} must be {want}; got {value!r}")
    return v


def check_int(value, name, *, minimum=None, maximum=None, allow_none=False):
    """``value`` as an int (integral floats accepted); OptionError naming ``name`` for anything else."""
    if value is None and allow_none:
        return None
    kind = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, "an integer")
    bounds = (f" ≥ {minimum}" if minimum not in (None, 0, 1) else "") + (f" ≤ {maximum:g}" if maximum is not None else "")
    want = f"{kind}{bounds}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise OptionTypeError(f"{name} must be {want}; got {value!r}")
    if isinstance(value, (float, np.floating)) and not (np.isfinite(value) and float(value).is_integer()):
        raise OptionError(f"{name} must be {want}; got {value!r}")
    v = int(value)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise OptionError(f"{name} must be {want}; got {value!r}")
    return v


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices``, else raise a ValueError listing them."""
    if value not in choices:
        raise OptionError(f"invalid {name} {value!r}; choose one of {', '.join(map(str, choices))}")
    return value


_MEM = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?[bB])?\s*$")


def parse_memory(value) -> int:
    """Parse a memory size such as ``"2GB"``, ``"500MB"``, ``"1.5 GiB"`` or an int (bytes)."""
    if isinstance(value, (int, np.integer)):
        if value <= 0:
            raise OptionError(f"memory must be positive; got {value}")
        return int(value)
    m = _MEM.match(str(value))
    if not m:
        raise OptionError(f"invalid memory size {value!r}; expected a number with an optional suffix KB, MB, GB or TB (e.g. 2GB)")
    num = float(m.group(1))
    mult = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[m.group(2).lower()]
    out = int(num * mult)
    if out <= 0:
        raise OptionError(f"memory must be positive; got {value!r}")
    return out


def parse_types(value):
    """Parse a LAMMPS type→element map: ``"1=Li,2=P"`` or a dict ``{1: "Li"}``."""
    if value is None:
        return None
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            try:
                out[int(k)] = str(v)
            except (TypeError, ValueError) as err:
                raise OptionError(f"invalid types entry {k!r}: {v!r}; expected integer type = element") from err
        return out
    out = {}
    for part in str(value).replace(" ", "").split(","):
        if not part:
            continue
        if "=" not in part:
            raise OptionError(f"invalid types entry {part!r}; expected TYPE=ELEMENT, e.g. --types 1=Li,2=P,3=S")
        k, v = part.split("=", 1)
        try:
            out[int(k)] = v
        except ValueError as err:
            raise OptionError(f"invalid types entry {part!r}; the type must be an integer") from err
    return out
