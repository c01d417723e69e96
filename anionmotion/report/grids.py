"""Writers (and small readers) for 3-D density grids: VASP CHGCAR, Gaussian cube, NetCDF (SPEC §7).

Writers take a :class:`~anionmotion.analysis.density.DensityResult` only.
Conventions:

- **CHGCAR** (VASP 5, read by VESTA, pymatgen, ASE): a POSCAR block (mean cell,
  atoms of the first analysed frame), the grid shape, then ρ·V_cell with the
  first index (along a) fastest, five values per line.  VASP stores density ×
  cell volume, so the grid mean equals the number of atoms of the species.
- **cube** (Gaussian): lengths in bohr, values ρ in bohr⁻³ (atoms per bohr³),
  z fastest, six per line; the voxel vectors are a/nx, b/ny, c/nz, so
  triclinic cells are exact.
- **NetCDF** (netCDF4): variable ``density`` (x, y, z) in Å⁻³ with ``cell``
  (rows a, b, c, Å), ``origin`` and the atom structure.
"""

from __future__ import annotations

import os

import numpy as np

from ..elements import atomic_number
from ..errors import OptionError
from ..io._netcdf_lock import netcdf_locked
from ..results import check_output
from ..units import BOHR_A

__all__ = ["atomic_number", "write_grid", "write_chgcar", "write_cube", "write_netcdf", "read_chgcar", "read_cube", "read_netcdf",
           "GRID_FORMATS"]




GRID_FORMATS = {".chgcar": "chgcar", ".vasp": "chgcar", ".cube": "cube", ".cub": "cube", ".nc": "netcdf",
                ".netcdf": "netcdf"}


def _format_of(path):
    name = os.path.basename(os.fspath(path)).lower()
    if name.startswith("chgcar") or name.startswith("parchg") or name.startswith("locpot"):
        return "chgcar"
    ext = os.path.splitext(name)[1]
    if ext in GRID_FORMATS:
        return GRID_FORMATS[ext]
    raise OptionError(f"{path}: unknown grid format; use a name ending in .CHGCAR (or named CHGCAR), .cube or .nc")


def write_grid(result, path, *, overwrite=False):
    """Write ``result`` in the format given by the file name (``*.CHGCAR``/``CHGCAR``, ``*.cube``, ``*.nc``)."""
    fmt = _format_of(path)
    return {"chgcar": write_chgcar, "cube": write_cube, "netcdf": write_netcdf}[fmt](result, path,
                                                                                   overwrite=overwrite)


def _species_blocks(structure):
    """Group the structure's atoms by species (VASP needs contiguous blocks); returns names, counts, order."""
    sp = np.asarray(structure["species"], dtype=object)
    names = list(dict.fromkeys(sp.tolist()))
    order = np.concatenate([np.nonzero(sp == s)[0] for s in names]) if len(sp) else np.zeros(0, dtype=int)
    return names, [int(np.sum(sp == s)) for s in names], order


def _chgcar_header(result):
    cell = np.asarray(result.cell)
    names, counts, order = _species_blocks(result.structure)
    frac = np.asarray(result.structure["frac"]).reshape(-1, 3)[order]
    lines = [f"anionmotion density of {result.species}: rho*V_cell (VASP convention; grid mean = "
             f"{result.n_atoms} atoms), {result.n_frames} frames", "   1.00000000000000"]
    for v in cell:
        lines.append("  " + " ".join(f"{x:21.15f}" for x in v))
    lines.append("   " + "   ".join(names))
    lines.append("   " + "   ".join(str(c) for c in counts))
    lines.append("Direct")
    for s in frac:
        lines.append("  " + " ".join(f"{x:19.15f}" for x in s))
    lines.append("")
    nx, ny, nz = result.density.shape
    lines.append(f"   {nx}   {ny}   {nz}")
    return "\n".join(lines) + "\n"


def _fortran_chunks(grid, scale, size=1 << 20):
    """The values of ``grid × scale`` in Fortran order (first index fastest), about ``size`` at a time."""
    nx, ny, nz = grid.shape
    per_k = max(1, size // max(nx * ny, 1))
    for k0 in range(0, nz, per_k):
        slab = grid[:, :, k0:k0 + per_k]
        yield (np.transpose(slab, (2, 1, 0)) * scale).ravel()


def _write_rows(fh, values_iter, per_row, fmt):
    """Write values ``per_row`` to a line (``fmt`` each, one space apart), streaming the chunks of ``values_iter``."""
    carry = np.zeros(0)
    for chunk in values_iter:
        vals = np.concatenate([carry, chunk]) if len(carry) else chunk
        full = len(vals) - len(vals) % per_row
        if full:
            np.savetxt(fh, vals[:full].reshape(-1, per_row), fmt=fmt, delimiter=" ")
        carry = vals[full:]
    if len(carry):
        fh.write(" ".join(fmt % v for v in carry) + "\n")


def _chgcar_text(result):
    """The CHGCAR as one string (small grids and tests; :func:`write_chgcar` streams it instead)."""
    import io

    buf = io.StringIO()
    _write_chgcar(result, buf)
    return buf.getvalue()


def _write_chgcar(result, fh):
    fh.write(_chgcar_header(result))
    _write_rows(fh, _fortran_chunks(result.density, float(result.volume)), 5, "% .11E")


def write_chgcar(result, path, *, overwrite=False):
    """VASP CHGCAR of ρ·V_cell (grid mean = number of atoms of the species); for VESTA/pymatgen/ASE.

    The text is written block by block (no copy of the grid as text or Python floats in memory).
    """
    from ..results import atomic_output

    with atomic_output(path, overwrite) as fh:
        _write_chgcar(result, fh)
    return os.fspath(path)


def read_chgcar(path):
    """Read a CHGCAR written here (or by VASP): returns (cell (3,3) Å, density (nx,ny,nz) Å⁻³, species, frac)."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    scale = float(lines[1].split()[0])
    cell = np.array([[float(x) for x in lines[i].split()[:3]] for i in range(2, 5)]) * scale
    names = lines[5].split()
    counts = [int(x) for x in lines[6].split()]
    n_at = sum(counts)
    i = 7
    if lines[i].strip()[:1].lower() == "s":
        i += 1
    frac = np.array([[float(x) for x in lines[i + 1 + k].split()[:3]] for k in range(n_at)]).reshape(-1, 3)
    i = i + 1 + n_at
    while not lines[i].strip():
        i += 1
    nx, ny, nz = (int(x) for x in lines[i].split()[:3])
    n = nx * ny * nz
    vals = []
    i += 1
    while len(vals) < n:
        vals.extend(float(x) for x in lines[i].split())
        i += 1
    vol = abs(np.linalg.det(cell))
    rho = np.array(vals[:n]).reshape((nx, ny, nz), order="F") / vol
    species = [s for s, c in zip(names, counts) for _ in range(c)]
    return cell, rho, species, frac


def _cube_header(result):
    cell = np.asarray(result.cell)
    nx, ny, nz = result.density.shape
    sp = list(result.structure["species"])
    frac = np.asarray(result.structure["frac"]).reshape(-1, 3)
    cart = (frac @ cell + np.asarray(result.origin)) / BOHR_A
    o = np.asarray(result.origin) / BOHR_A
    lines = [f"anionmotion density of {result.species} ({result.n_atoms} atoms, {result.n_frames} frames)",
             "number density in atoms/bohr^3 (rho[1/A^3] * 0.529177^3); lengths in bohr",
             f"{len(sp):5d} {o[0]:12.6f} {o[1]:12.6f} {o[2]:12.6f}"]
    for n, v in zip((nx, ny, nz), cell):
        w = v / n / BOHR_A
        lines.append(f"{n:5d} {w[0]:12.6f} {w[1]:12.6f} {w[2]:12.6f}")
    for s, r in zip(sp, cart):
        z = atomic_number(s)
        lines.append(f"{z:5d} {float(z):12.6f} {r[0]:12.6f} {r[1]:12.6f} {r[2]:12.6f}")
    return "\n".join(lines) + "\n"


def _write_cube(result, fh):
    fh.write(_cube_header(result))
    nx, ny, nz = result.density.shape
    scale = BOHR_A ** 3
    full = nz - nz % 6
    for i in range(nx):      # one x-slab at a time: z fastest, six values per line, a new line per (x, y)
        slab = result.density[i] * scale
        if nz % 6 == 0:
            np.savetxt(fh, slab.reshape(-1, 6), fmt="%13.5E", delimiter=" ")
            continue
        for j in range(ny):
            row = slab[j]
            if full:
                np.savetxt(fh, row[:full].reshape(-1, 6), fmt="%13.5E", delimiter=" ")
            fh.write(" ".join("%13.5E" % v for v in row[full:]) + "\n")


def _cube_text(result):
    """The cube file as one string (small grids and tests; :func:`write_cube` streams it instead)."""
    import io

    buf = io.StringIO()
    _write_cube(result, buf)
    return buf.getvalue()


def write_cube(result, path, *, overwrite=False):
    """Gaussian cube of the number density (atoms per bohr³; lengths in bohr), written slab by slab."""
    from ..results import atomic_output

    with atomic_output(path, overwrite) as fh:
        _write_cube(result, fh)
    return os.fspath(path)


def read_cube(path):
    """Read a cube file: returns (cell (3,3) Å, density (nx,ny,nz) Å⁻³, atomic numbers, positions Å)."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    n_at = abs(int(lines[2].split()[0]))
    shape, vecs = [], []
    for i in range(3, 6):
        p = lines[i].split()
        shape.append(int(p[0]))
        vecs.append([float(x) for x in p[1:4]])
    cell = np.array(vecs) * np.array(shape)[:, None] * BOHR_A
    atoms = np.array([[float(x) for x in lines[6 + k].split()] for k in range(n_at)]).reshape(-1, 5)
    vals = np.array(" ".join(lines[6 + n_at:]).split(), dtype=np.float64)
    rho = vals.reshape(shape) / BOHR_A ** 3
    return cell, rho, atoms[:, 0].astype(int), atoms[:, 2:5] * BOHR_A


@netcdf_locked
def write_netcdf(result, path, *, overwrite=False):
    """NetCDF4 file with ``density`` (Å⁻³), ``cell``, ``origin``, atom structure and the analysis metadata."""
    try:
        import netCDF4
    except ImportError as err:  # pragma: no cover - netCDF4 is a dependency
        raise ImportError("NetCDF grids need netCDF4: pip install netCDF4") from err
    import json

    from ..results import to_jsonable

    path = check_output(path, overwrite)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), "." + os.path.basename(path) + ".tmp")
    try:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
            nx, ny, nz = result.density.shape
            ds.createDimension("x", nx)
            ds.createDimension("y", ny)
            ds.createDimension("z", nz)
            ds.createDimension("vector", 3)
            ds.createDimension("atom", len(result.structure["species"]))
            v = ds.createVariable("density", "f8", ("x", "y", "z"), zlib=True)
            v.units = "1/angstrom^3"
            v.long_name = f"number density of {result.species}"
            v.description = "voxel (i,j,k) spans fractional [i/nx,(i+1)/nx) x [j/ny,...) x [k/nz,...) of cell"
            v[:] = result.density
            c = ds.createVariable("cell", "f8", ("vector", "vector"))
            c.units = "angstrom"
            c.description = "rows are the lattice vectors a, b, c (time-averaged)"
            c[:] = result.cell
            o = ds.createVariable("origin", "f8", ("vector",))
            o.units = "angstrom"
            o[:] = result.origin
            f = ds.createVariable("atom_frac", "f8", ("atom", "vector"))
            f.description = "fractional coordinates of the atoms of the first analysed frame"
            f[:] = np.asarray(result.structure["frac"]).reshape(-1, 3)
            s = ds.createVariable("atom_species", str, ("atom",))
            for i, name in enumerate(result.structure["species"]):
                s[i] = str(name)
            ds.species = result.species
            ds.n_atoms = int(result.n_atoms)
            ds.n_frames = int(result.n_frames)
            ds.program = "anionmotion"
            ds.meta = json.dumps(to_jsonable(result.meta))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


@netcdf_locked
def read_netcdf(path):
    """Read a grid written by :func:`write_netcdf`: returns (cell (3,3) Å, density Å⁻³, species, frac)."""
    import netCDF4

    with netCDF4.Dataset(path) as ds:
        return (np.array(ds["cell"][:]), np.array(ds["density"][:]), [str(x) for x in ds["atom_species"][:]],
                np.array(ds["atom_frac"][:]))
