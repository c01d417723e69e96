"""Reader protocol shared by every trajectory format.

A format reader knows one file format and nothing about unwrapping or
analyses.  It converts units on the way in (SPEC §0) and returns
:class:`RawFrames` for any contiguous frame range without re-parsing the file
from its start (readers keep a frame-offset index built by a fast scan).
:class:`anionmotion.trajectory.Trajectory` wraps a reader and does the
unwrapping, validation, selections and chunking.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import os
import stat
import weakref
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import FormatError, TrajectoryError

__all__ = ["ReaderOptions", "RawFrames", "BaseReader", "open_binary", "compression_of", "check_text_head",
           "want_velocities", "compact_cells", "broadcast_cell", "check_input_file", "open_input_paths",
           "check_count", "check_cells", "check_coordinates", "MAX_CELL_A", "MAX_COORD_A"]

#: every reader that is open (not yet garbage-collected): their files must not be written over
_OPEN_READERS = weakref.WeakSet()


def open_input_paths():
    """Paths of the files that open readers read (the trajectory and its companion files)."""
    out = []
    for r in list(_OPEN_READERS):
        out.append(r.path)
        opts = getattr(r, "options", None)
        for name in ("topology", "vel", "cell_file"):
            v = getattr(opts, name, None)
            if v:
                out.append(os.fspath(v))
        out.extend(getattr(r, "companion_paths", ()))
    return out


#: fewest bytes one atom row of a text file can take ("0 0 0\n" is 6)
MIN_ROW_BYTES = 6


def check_count(n, n_bytes, *, path, what="atoms", per_item=MIN_ROW_BYTES, line=None, frame=None):
    """Raise a TrajectoryError when a count read from a header cannot fit in the file (checked before allocating).

    A header that declares 10¹² atoms in a 1 MB file is damaged; without this check the reader would try
    to allocate arrays for them (tens of GB) before finding out.

    Parameters
    ----------
    n : int
        The count from the header.
    n_bytes : int
        Size of the (decompressed) data that must hold the items.
    per_item : int
        Fewest bytes one item takes in the file.
    """
    n = int(n)
    if n < 0:
        raise TrajectoryError(f"the header declares {n} {what}; expected a non-negative count", path=path, line=line,
                              frame=frame)
    if n * per_item > n_bytes:
        raise TrajectoryError(f"the header declares {n} {what}, more than the file can hold ({n_bytes} bytes, at "
                              f"least {per_item} bytes per one); the header is damaged", path=path, line=line,
                              frame=frame)
    return n


def check_input_file(path, what="trajectory file"):
    """Raise unless ``path`` is an existing regular file (a FIFO, device or folder is refused).

    Reading a FIFO or a device such as ``/dev/zero`` would block or never end; anionmotion's readers need
    regular files (they index the file and come back to frames).

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    FormatError
        A folder or a special file.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except OSError as err:
        raise FormatError(f"cannot read the {what}: {err.strerror or err}", path=path) from None
    if stat.S_ISDIR(st.st_mode):
        raise FormatError(f"is a directory, expected a {what}", path=path)
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else
                "a character device" if stat.S_ISCHR(st.st_mode) else
                "a block device" if stat.S_ISBLK(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise FormatError(f"is {kind}; expected a regular {what} (copy the data to a file first)", path=path)
    return path

COORD_STYLES = ("wrapped", "fractional", "unwrapped")


@dataclass
class ReaderOptions:
    """Options shared by every reader (the CLI's reader options, same names).

    Attributes
    ----------
    format : str or None
        Force a format instead of detecting it.
    timestep : float or None
        MD time step in ps; turns LAMMPS TIMESTEP values into times.
    frame_interval : float or None
        Time between stored frames, ps (XDATCAR, plain xyz, DCD, or any file).
    lammps_units : str
        ``"metal"`` (Å, ps, Å/ps), ``"real"`` (Å, fs, Å/fs), ``"electron"`` (bohr, fs, bohr/fs) or ``"lj"``
        (reduced units, passed through unconverted with a warning).
    types : dict or None
        LAMMPS type → element symbol.
    cell : ndarray (3, 3) or None
        Cell (rows a, b, c, Å) for files that carry none.
    vel : str or None
        Velocity file (CP2K ``*-vel-*.xyz``) when not found next to the positions.
    cell_file : str or None
        CP2K ``*.cell`` file when not found next to the positions.
    topology : str or None
        Topology for MDTraj formats that carry no element names (PDB, PSF, prmtop…), or the LAMMPS data
        file of a LAMMPS dump (types, elements, masses and charges by atom id).
    """

    format: Optional[str] = None
    timestep: Optional[float] = None
    frame_interval: Optional[float] = None
    lammps_units: str = "metal"
    types: Optional[dict] = None
    cell: Optional[np.ndarray] = None
    vel: Optional[str] = None
    cell_file: Optional[str] = None
    topology: Optional[str] = None


@dataclass
class RawFrames:
    """A contiguous block of frames as a format reader returns it.

    Attributes
    ----------
    coords : ndarray, shape (n_frames, n_sel, 3), float64
        Å Cartesian for ``style`` ``"wrapped"``/``"unwrapped"``, fractional for
        ``"fractional"``.  ``"wrapped"`` means "Cartesian, possibly wrapped".
    style : str
        One of ``wrapped``, ``fractional``, ``unwrapped``.
    cells : ndarray, shape (n_frames, 3, 3), float64, Å
        Rows are the lattice vectors a, b, c.
    times : ndarray, shape (n_frames,), float64, ps, or None
        None when the file carries no time information.
    velocities : ndarray, shape (n_frames, n_sel, 3), float64, Å/ps, or None
    images : ndarray, shape (n_frames, n_sel, 3), int, or None
        Periodic image flags when the file has them.
    origins : ndarray, shape (n_frames, 3), float64, Å, or None
        Cell origin (LAMMPS box lo); zeros when None.
    steps : ndarray, shape (n_frames,), int64, or None
        MD step numbers when the file has them.
    owned : bool
        True when ``coords`` and ``velocities`` are fresh arrays that no one
        else references (the reader made them for this call): the trajectory
        may then unwrap in place instead of copying.  False (the default)
        for views of data the reader keeps, e.g. arrays in memory.
    """

    coords: np.ndarray
    style: str
    cells: np.ndarray
    times: Optional[np.ndarray] = None
    velocities: Optional[np.ndarray] = None
    images: Optional[np.ndarray] = None
    origins: Optional[np.ndarray] = None
    steps: Optional[np.ndarray] = None
    owned: bool = False


#: longest cell vector a reader accepts, Å (1 mm: far beyond any simulation cell; 10⁹ or 10³⁰ Å is a damaged box)
MAX_CELL_A = 1e7
#: largest |coordinate| accepted, Å (Cartesian) — an unwrapped run of 10⁹ Å is not a trajectory of atoms
MAX_COORD_A = 1e9
#: largest |fractional coordinate| accepted
MAX_FRACTIONAL = 1e7


def check_cells(cells, *, path, frame0=0):
    """Raise a TrajectoryError naming the frame when a cell vector is not finite or longer than ``MAX_CELL_A``.

    (Zero or negative volumes are the trajectory's check.)  A broadcast view (one cell for every frame) is
    checked once.
    """
    c = np.asarray(cells, dtype=np.float64)
    if c.ndim == 2:
        c = c[None]
    if len(c) == 0:
        return
    if c.strides[0] == 0:
        c = c[:1]
    with np.errstate(all="ignore"):
        lengths = np.sqrt(np.einsum("tij,tij->ti", c, c))
    bad = ~(lengths <= MAX_CELL_A)
    if bad.any():
        t, k = (int(v) for v in np.argwhere(bad)[0])
        raise TrajectoryError(f"cell vector {'abc'[k]} is {lengths[t, k]:g} Å long ({np.array2string(c[t, k], precision=4)}"
                              f"); expected a finite length up to {MAX_CELL_A:g} Å — is the box / lattice right?",
                              path=path, frame=frame0 + t)


def check_coordinates(coords, style, *, path, frame0=0, atoms=None):
    """Raise a TrajectoryError naming frame and atom for a coordinate beyond ``MAX_COORD_A`` (``MAX_FRACTIONAL``).

    NaN and inf are left to the trajectory's finiteness check (it names them the same way).
    """
    c = coords
    if c is None or c.size == 0:
        return
    lim = MAX_FRACTIONAL if style == "fractional" else MAX_COORD_A
    hi, lo = c.max(), c.min()
    if np.isfinite(hi) and np.isfinite(lo):
        if hi <= lim and lo >= -lim:
            return
        big = np.abs(c) > lim
    else:   # a NaN or inf hides the extremes: look at the finite values (a damaged file, so the pass is rare)
        with np.errstate(invalid="ignore"):
            big = np.isfinite(c) & (np.abs(c) > lim)
    if big.any():
        t, i, k = (int(v) for v in np.argwhere(big)[0])
        atom = int(atoms[i]) if atoms is not None and len(atoms) > i else i
        unit = "" if style == "fractional" else " Å"
        raise TrajectoryError(f"coordinate {'xyz'[k]} is {c[t, i, k]:g}{unit}; expected |value| ≤ {lim:g}{unit} "
                              f"({style} coordinates) — a damaged number?", path=path, frame=frame0 + t, atom=atom)


def _checked_read(read):
    @functools.wraps(read)
    def checked(self, start, stop, atoms=None, velocities=None):
        raw = read(self, start, stop, atoms, velocities)
        check_cells(raw.cells, path=self.path, frame0=start)
        check_coordinates(raw.coords, raw.style, path=self.path, frame0=start,
                          atoms=None if atoms is None else np.asarray(atoms))
        return raw
    return checked


def _checked_read_cells(read_cells):
    @functools.wraps(read_cells)
    def checked(self, start, stop):
        cells = read_cells(self, start, stop)
        check_cells(cells, path=self.path, frame0=start)
        return cells
    return checked


def _checked_constant_cell(constant_cell):
    @functools.wraps(constant_cell)
    def checked(self):
        cell = constant_cell(self)
        if cell is not None:
            check_cells(cell, path=self.path)
        return cell
    return checked


def _forgetting_close(close):
    @functools.wraps(close)
    def closing(self):
        _OPEN_READERS.discard(self)   # a closed reader no longer protects its files
        return close(self)
    return closing


class BaseReader:
    """Base class of format readers.

    Subclasses set, in ``__init__`` (after a fast scan of the file):

    ``n_atoms``, ``n_frames``, ``species`` (ndarray of str, one per atom in id
    order), ``masses`` (ndarray amu or None → from the element table),
    ``charges`` (ndarray e or None), ``has_velocities``, ``coord_style``,
    ``times`` (ndarray ps or None when the file has none), ``steps`` (ndarray
    or None), ``units`` (dict describing the conversions applied), and
    ``metadata`` (dict of file-level attributes, e.g. a NetCDF file's
    ``constraint_mode``).

    and implement :meth:`read`.

    A reader reads **only what is asked for**: the atoms ``atoms`` (not all
    atoms and then a selection, where the layout allows), velocities only
    when ``velocities`` is not False, and numbers in the file's precision
    until the final selected float64 copy.
    """

    format_name = "base"
    #: human description used by ``anionmotion info`` and ``docs/formats.md``
    description = ""

    def __init_subclass__(cls, **kwargs):
        # every format's read() / read_cells() hands out cells and coordinates checked for damaged sizes
        super().__init_subclass__(**kwargs)
        if "read" in cls.__dict__ and not hasattr(cls.__dict__["read"], "__wrapped__"):
            cls.read = _checked_read(cls.__dict__["read"])
        if "read_cells" in cls.__dict__ and not hasattr(cls.__dict__["read_cells"], "__wrapped__"):
            cls.read_cells = _checked_read_cells(cls.__dict__["read_cells"])
        if "constant_cell" in cls.__dict__ and not hasattr(cls.__dict__["constant_cell"], "__wrapped__"):
            cls.constant_cell = _checked_constant_cell(cls.__dict__["constant_cell"])
        if "close" in cls.__dict__ and not hasattr(cls.__dict__["close"], "__wrapped__"):
            cls.close = _forgetting_close(cls.__dict__["close"])

    def __init__(self, path, options: ReaderOptions):
        self.path = os.fspath(path)
        self.options = options
        _OPEN_READERS.add(self)
        self.n_atoms = 0
        self.n_frames = 0
        self.species = np.zeros(0, dtype=object)
        self.masses = None
        self.charges = None
        self.has_velocities = False
        self.coord_style = "wrapped"
        self.times = None
        self.steps = None
        self.units = {}
        self.metadata = {}

    # -- to implement -------------------------------------------------------
    def read(self, start: int, stop: int, atoms: Optional[np.ndarray] = None, velocities: Optional[bool] = None
             ) -> RawFrames:
        """Read frames ``start:stop`` (0-based, stop exclusive) of atoms ``atoms``.

        Parameters
        ----------
        start, stop : int
        atoms : ndarray of int64, optional
            Indices in id order (sorted, unique when they come from
            :meth:`Trajectory.select`; readers accept any order); None = all.
        velocities : bool or None
            False: do not read velocities (``RawFrames.velocities`` is None);
            True or None: read them when the file stores them.
        """
        raise NotImplementedError

    def read_cells(self, start: int, stop: int) -> np.ndarray:
        """Cells (n, 3, 3) Å of frames ``start:stop``; override when cheaper than :meth:`read`."""
        return self.read(start, stop, np.zeros(0, dtype=np.int64), velocities=False).cells

    def constant_cell(self) -> Optional[np.ndarray]:
        """The cell (3, 3) Å when the reader knows cheaply that every frame has it, else None.

        None means "not known without reading the cells" (the trajectory then
        checks :meth:`read_cells` block by block); readers whose index or
        header tells (LAMMPS boxes, an XDATCAR without per-frame headers, a
        ``cell=`` option) override it.
        """
        return None

    def close(self):
        """Release the file; the default closes a handle kept as ``self._fh`` (idempotent)."""
        _OPEN_READERS.discard(self)
        fh = getattr(self, "_fh", None)
        if fh is not None:
            fh.close()
            self._fh = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown or half-built reader
            pass

    # -- helpers -------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"{type(self).__name__}({self.path!r})"


def compact_cells(cells) -> np.ndarray:
    """``cells`` (n, 3, 3) as a read-only broadcast view of one cell when all are equal bit for bit, else as given.

    Readers that keep every frame's cell in memory use it so that a constant
    cell costs 72 bytes, not 72 bytes per frame.
    """
    cells = np.asarray(cells, dtype=np.float64)
    if len(cells) > 1 and cells.strides[0] != 0:
        flat = np.ascontiguousarray(cells).reshape(len(cells), 9).view(np.int64)
        if np.all(flat == flat[0]):
            c0 = np.array(cells[0])
            c0.flags.writeable = False
            return np.broadcast_to(c0, cells.shape)
    return cells


def broadcast_cell(cells) -> Optional[np.ndarray]:
    """The one cell (3, 3) of a broadcast view made by :func:`compact_cells` (or ``np.broadcast_to``), else None."""
    if cells is not None and len(cells) and cells.strides[0] == 0:
        return np.array(cells[0])
    return None


def want_velocities(flag) -> bool:
    """Whether a reader asked with ``velocities=flag`` should read velocities (False → no; True/None → yes)."""
    return flag is None or bool(flag)


def compression_of(path) -> Optional[str]:
    """``"gzip"``, ``"bz2"`` or None, from the magic bytes of ``path``."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh":
        return "bz2"
    return None


def open_binary(path):
    """Open ``path`` for binary reading, transparently decompressing gzip and bz2.

    Raises
    ------
    FileNotFoundError
        With the path in the message.
    """
    path = check_input_file(path)
    comp = compression_of(path)
    if comp == "gzip":
        return gzip.open(path, "rb")
    if comp == "bz2":
        return bz2.open(path, "rb")
    return io.open(path, "rb", buffering=1 << 20)


def check_text_head(head: bytes, path, expected="a text trajectory"):
    """Raise FormatError when ``head`` (the first bytes of a file) is empty or binary."""
    if len(head) == 0:
        raise FormatError(f"empty file; expected {expected}", path=path)
    if b"\x00" in head[:65536]:
        raise FormatError(f"binary data in a file read as text (a NUL byte in the first 64 KiB); expected {expected}."
                          " Is the format right? Use --format to choose it", path=path)
