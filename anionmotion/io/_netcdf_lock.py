"""One process-wide lock around every call into the netCDF-C library.

netCDF-C (behind netCDF4) is not thread-safe: two threads reading or writing
different files at once can corrupt its internal tables ("NetCDF: Not a valid
ID") or crash.  Dask workers with several threads, and threaded ``batch``
runs, do exactly that, so every NetCDF reader, writer and grid function takes
this lock.  Processes are unaffected (each has its own library state).
"""

from __future__ import annotations

import functools
import threading

__all__ = ["NETCDF_LOCK", "netcdf_locked"]

NETCDF_LOCK = threading.RLock()


def netcdf_locked(fn):
    """Decorator: run ``fn`` while holding :data:`NETCDF_LOCK`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with NETCDF_LOCK:
            return fn(*args, **kwargs)

    return wrapper
