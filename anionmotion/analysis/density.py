"""Probability density of a species on a fractional grid and 1-D profiles along cell axes (SPEC §7).

:func:`density` streams frames, wraps the (optionally drift-corrected)
positions of a species into fractional coordinates of each frame's own cell
(triclinic and NPT cells alike) and bins them with the compiled kernel.  The
grid is normalised to atoms per Å³; writers for CHGCAR, cube and NetCDF are in
:mod:`anionmotion.report.grids`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError
from ..kernels.grid import bin_axis, bin_fractional
from ..kernels.unwrap import cart_to_frac
from ..results import Result
from ._streaming import stream_chunks

__all__ = ["density", "DensityResult", "grid_shape_for_spacing", "AXES"]

AXES = {"a": 0, "b": 1, "c": 2}


@dataclass(frozen=True)
class DensityResult(Result):
    """Time-averaged number density of one selection on a fractional grid.

    Attributes
    ----------
    density : ndarray, shape (nx, ny, nz), float64, Å⁻³
        ρ(voxel) = ⟨number of atoms in the voxel / voxel volume⟩ over frames.
        Voxel (i, j, k) spans s ∈ [i/nx, (i+1)/nx) × … of the cell.
    cell : ndarray, shape (3, 3), Å
        Time-averaged cell (rows a, b, c) the grid is drawn in.
    origin : ndarray, shape (3,), Å
        Cartesian position of the grid corner s = 0 (the cell origin).
    species : str
        Label of the binned selection.
    n_atoms : int
        Atoms in the selection (the grid integrates to this: Σ ρ V_voxel = N).
    n_frames : int
    profiles : dict of str -> dict
        Per cell axis ``"a"``, ``"b"``, ``"c"``: ``s`` (bin centres, fractional), ``x_A`` (s × axis
        length, Å) and ``p`` (probability density per unit of s, ∫ p ds = 1).
    structure : dict
        Atoms of the first analysed frame for the writers: ``species`` (list of str) and
        ``frac`` (n, 3) wrapped fractional coordinates.
    meta : dict
        Grid shape, spacing, frames, drift removal.
    """

    density: np.ndarray
    cell: np.ndarray
    origin: np.ndarray
    species: str
    n_atoms: int
    n_frames: int
    profiles: dict
    structure: dict
    meta: dict = field(default_factory=dict)

    @property
    def shape(self):
        return self.density.shape

    @property
    def volume(self) -> float:
        """Volume of the mean cell, Å³."""
        return float(abs(np.linalg.det(self.cell)))

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel of the mean cell, Å³."""
        return self.volume / self.density.size

    @property
    def occupancy(self) -> np.ndarray:
        """Mean number of atoms per voxel per frame (sums to ``n_atoms``)."""
        return self.density * self.voxel_volume

    def to_dict(self, include_grid: bool = False) -> dict:
        """JSON-compatible dict; the 3-D grid is left out unless ``include_grid`` (use the grid writers)."""
        d = super().to_dict()
        if not include_grid:
            d["density"] = None
            d["grid_shape"] = list(self.density.shape)
            d["density_max_per_A3"] = float(self.density.max()) if self.density.size else None
        return d

    def summary(self) -> str:
        return (f"density of {self.species} ({self.n_atoms} atoms, {self.n_frames} frames) on a "
                f"{'×'.join(map(str, self.density.shape))} grid; voxel {self.voxel_volume:.4g} Å³; "
                f"mean {self.density.mean():.4g} Å⁻³, max {self.density.max():.4g} Å⁻³; "
                f"Σρ·V_voxel = {self.occupancy.sum():.6g}")

    def profile_csv(self, axis="c") -> str:
        """CSV of the 1-D distribution along a cell axis: s, x (Å), p(s)."""
        pr = self.profiles[_axis_name(axis)]
        rows = ["s,x_A,p_per_unit_s"] + [f"{s:.8g},{x:.8g},{p:.8g}" for s, x, p in zip(pr["s"], pr["x_A"], pr["p"])]
        return "\n".join(rows) + "\n"


def _axis_name(axis):
    if isinstance(axis, (int, np.integer)) and int(axis) in (0, 1, 2):
        return "abc"[int(axis)]
    if str(axis).lower() in AXES:
        return str(axis).lower()
    raise OptionError(f"invalid axis {axis!r}; choose one of a, b, c")


def grid_shape_for_spacing(cell, spacing):
    """Grid points per axis so that the voxel edge along each cell vector is ≤ ``spacing`` Å."""
    if not (np.isfinite(spacing) and spacing > 0):
        raise OptionError(f"spacing must be a positive length in Å; got {spacing}")
    lengths = np.linalg.norm(np.asarray(cell, dtype=np.float64), axis=1)
    return tuple(int(max(1, np.ceil(L / spacing - 1e-9))) for L in lengths)


def density(traj, species, *, grid=None, spacing=None, profile_bins=None, remove_drift=None, start=None, stop=None,
            step=None, frames_per_chunk=500, progress=None) -> DensityResult:
    """Probability density of a species on a 3-D fractional grid (SPEC §7).

    Parameters
    ----------
    traj : Trajectory
    species : str or selection
        Atoms to bin (``"Li"``; any :meth:`Trajectory.select` selection).
    grid : tuple of 3 int, optional
        Grid points along a, b, c.  Default: from ``spacing``.
    spacing : float, optional, Å
        Target voxel edge along each cell vector (default 0.2 Å when ``grid`` is not given).
    profile_bins : int, optional
        Bins of the 1-D profiles (default: the grid points along that axis).
    remove_drift : None, "framework" or selection
        Subtract the centre-of-mass displacement of these atoms since the first frame from every binned
        position before wrapping (``"framework"``: every atom not being binned).  Default: no correction.
    start, stop, step : int, optional
        Frame range.
    frames_per_chunk : int
        Frames streamed at a time.

    Returns
    -------
    DensityResult

    Notes
    -----
    ρ(v) = (1/n_frames) Σ_t c_t(v) / (V_t / n_voxels): the count c_t in each voxel of frame t's own cell,
    divided by that frame's voxel volume, so Σ_v ρ(v) V_voxel = N for a constant cell (NPT: the mean of
    N V̄/V_t with V̄ the volume of the mean cell).  The 1-D profile along axis k is p(s) = n_bins · (counts in slab) / (N · n_frames), with
    ∫_0^1 p ds = 1.

    References
    ----------
    SPEC §7; paper 000 Fig. 6a (Li distribution along c).
    """
    sel = traj.select(species)
    if len(sel) == 0:
        raise OptionError("the selection is empty; nothing to bin")
    label = species if isinstance(species, str) else " ".join(sorted(set(traj.species[sel])))
    fr_start, fr_stop, fr_step = traj._frame_range(None, start, stop, step)
    n_frames = len(range(fr_start, fr_stop, fr_step))
    if n_frames < 1:
        raise OptionError("the frame range is empty; a density grid needs at least 1 frame")
    cells = traj.cells[fr_start:fr_stop:fr_step]
    mean_cell = cells.mean(axis=0)
    if grid is not None and spacing is not None:
        raise OptionError("give either grid= or spacing=, not both")
    if grid is not None:
        if len(grid) != 3 or any(int(n) != n or int(n) < 1 for n in grid):
            raise OptionError(f"grid must be three positive integers (points along a, b, c); got {grid}")
        shape = tuple(int(n) for n in grid)
    else:
        shape = grid_shape_for_spacing(mean_cell, 0.2 if spacing is None else spacing)
    if np.prod(shape, dtype=np.float64) > 2e8:
        raise OptionError(f"grid {shape} has {np.prod(shape, dtype=np.float64):.3g} points; use a coarser grid "
                          "or spacing (at most 2e8 points)")
    if profile_bins is not None and int(profile_bins) < 1:
        raise OptionError(f"profile_bins must be a positive integer; got {profile_bins}")
    pbins = [int(profile_bins) if profile_bins is not None else n for n in shape]

    ref = None
    if remove_drift is not None:
        if isinstance(remove_drift, str) and remove_drift == "framework":
            ref = np.setdiff1d(np.arange(traj.n_atoms), sel)
        else:
            ref = traj.select(remove_drift)
        if len(ref) == 0:
            raise OptionError("remove_drift selects no atoms; nothing to take the drift from")
    read_idx = sel if ref is None else np.union1d(sel, ref)
    cols_sel = np.searchsorted(read_idx, sel)
    cols_ref = None if ref is None else np.searchsorted(read_idx, ref)
    m_ref = None if ref is None else traj.masses[ref]

    grid_acc = np.zeros(shape)
    need_unwrap = ref is not None  # the drift needs continuous framework positions
    prof = [np.zeros(n) for n in pbins]
    com0 = None
    n_vox = float(np.prod(shape))
    vol_sum = 0.0
    for chunk in stream_chunks(traj, need_unwrap, frames_per_chunk, read_idx, start=fr_start, stop=fr_stop,
                         step=fr_step, progress=progress, desc="density"):
        pos = chunk.positions[:, cols_sel] - chunk.origins[:, None, :]
        if ref is not None:
            com = np.einsum("tik,i->tk", chunk.positions[:, cols_ref], m_ref) / m_ref.sum()
            if com0 is None:
                com0 = com[0].copy()
            pos = pos - (com - com0)[:, None, :]
        frac = cart_to_frac(np.ascontiguousarray(pos), chunk.cells)
        vols = chunk.volumes
        vol_sum += float(vols.sum())
        bin_fractional(frac, weights=n_vox / vols / n_frames, out=grid_acc)
        for k in range(3):
            bin_axis(frac, k, weights=np.ones(chunk.n_frames), out=prof[k])
    # structure of the first analysed frame for the writers
    first = traj.read(frames=slice(fr_start, fr_start + 1))
    sfrac = first.fractional(wrap=True)[0]
    lengths = np.linalg.norm(mean_cell, axis=1)
    profiles = {}
    for k, name in enumerate("abc"):
        nb = pbins[k]
        s = (np.arange(nb) + 0.5) / nb
        profiles[name] = {"s": s, "x_A": s * lengths[k], "p": prof[k] * nb / (len(sel) * n_frames)}
    meta = {
        "grid": list(shape), "spacing_A": None if grid is not None else (0.2 if spacing is None else float(spacing)),
        "voxel_edges_A": (lengths / np.array(shape)).tolist(), "frames": [fr_start, fr_stop, fr_step],
        "normalisation": "atoms per Å³, each frame divided by its own voxel volume; Σ ρ V_voxel = N",
        "wrapped": "fractional coordinates of each frame's own cell, wrapped into [0, 1)",
        "remove_drift": (None if ref is None else
                         ("framework (all other atoms)" if isinstance(remove_drift, str) and remove_drift == "framework"
                          else str(remove_drift))),
        "mean_volume_A3": vol_sum / n_frames, "profile_bins": pbins,
        "cell_changes": bool(np.ptp(cells, axis=0).max() > 1e-9) if len(cells) else False,
    }
    return DensityResult(density=grid_acc, cell=mean_cell, origin=np.asarray(first.origins[0], dtype=np.float64),
                         species=label, n_atoms=int(len(sel)), n_frames=n_frames, profiles=profiles,
                         structure={"species": [str(s) for s in first.species], "frac": sfrac}, meta=meta)

