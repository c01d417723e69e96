"""Synthetic Li2SO4-like trajectories for the report / compare / batch tests (no test functions here)."""

import numpy as np

import anionmotion

TETRA = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3.0)


def rotation_matrices(axis, angles):
    """Rodrigues rotation matrices, shape (len(angles), 3, 3)."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    s, c = np.sin(angles)[:, None, None], np.cos(angles)[:, None, None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def li2so4_arrays(*, n_frames=600, dt=0.02, box=12.0, D_li=0.1, omega=2.0, seed=0, velocities=True,
                  rotate=True):
    """Positions (n_frames, 40, 3) Å of 16 Li random walkers and 8 rotating SO4 tetrahedra (S–O 1.48 Å).

    D_li is the Li diffusion coefficient in Å²/ps (random walk, 2·D·dt variance per axis and frame);
    omega the rotation rate of every anion in rad/ps about its own random axis.
    """
    rng = np.random.default_rng(seed)
    centres = np.array([[x, y, z] for x in (0.25, 0.75) for y in (0.25, 0.75) for z in (0.25, 0.75)]) * box
    t = np.arange(n_frames) * dt
    s_pos = np.repeat(centres[None], n_frames, axis=0)
    o_pos = np.empty((n_frames, 32, 3))
    for k in range(8):
        R = rotation_matrices(rng.normal(size=3), (omega if rotate else 0.0) * t + rng.uniform(0, 6.28))
        o_pos[:, 4 * k:4 * k + 4] = centres[k] + 1.48 * np.einsum("fij,lj->fli", R, TETRA)
    li0 = np.array([[x, y, z] for x in (0.0, 0.5) for y in (0.0, 0.5) for z in (0.0, 0.5)]) * box
    li0 = np.concatenate([li0, li0 + np.array([0.5, 0.0, 0.25]) * box]) % box
    steps = rng.normal(scale=np.sqrt(2 * D_li * dt), size=(n_frames, 16, 3))
    steps[0] = 0
    li = li0 + np.cumsum(steps, axis=0)
    pos = np.concatenate([li, s_pos, o_pos], axis=1)
    # harmonic vibrations of every atom (5-12 THz, 0.03 Å) so that every species has a VDOS
    nu = rng.uniform(5.0, 12.0, size=(1, pos.shape[1], 3))
    phase = rng.uniform(0, 2 * np.pi, size=(1, pos.shape[1], 3))
    pos = pos + 0.03 * np.sin(2 * np.pi * nu * t[:, None, None] + phase)
    species = ["Li"] * 16 + ["S"] * 8 + ["O"] * 32
    vel = np.gradient(pos, dt, axis=0) if velocities else None
    return pos, np.eye(3) * box, t, species, vel


def li2so4(**kw):
    """In-memory Trajectory of :func:`li2so4_arrays` (wrapped positions, unwrapped by the reader)."""
    metadata = kw.pop("metadata", None)
    pos, cell, t, species, vel = li2so4_arrays(**kw)
    return anionmotion.from_arrays(pos, cell, times=t, species=species, velocities=vel, metadata=metadata)


def write_netcdf(path, *, temperature=None, mode=None, **kw):
    """Write :func:`li2so4_arrays` as an AMBER-convention NetCDF file (what `anionmotion md` writes)."""
    import netCDF4

    pos, cell, t, species, vel = li2so4_arrays(**kw)
    n_frames, n_atoms, _ = pos.shape
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.Conventions = "AMBER"
        nc.ConventionVersion = "1.0"
        nc.program = "anionmotion-tests"
        nc.programVersion = "0"
        if mode is not None:
            nc.constraint_mode = mode
        if temperature is not None:
            nc.temperature_K = float(temperature)
        nc.createDimension("frame", None)
        nc.createDimension("spatial", 3)
        nc.createDimension("atom", n_atoms)
        nc.createDimension("cell_spatial", 3)
        nc.createDimension("cell_angular", 3)
        nc.createDimension("label", 5)
        nc.createVariable("spatial", "c", ("spatial",))[:] = np.array(list("xyz"), "S1")
        nc.createVariable("cell_spatial", "c", ("cell_spatial",))[:] = np.array(list("abc"), "S1")
        ca = nc.createVariable("cell_angular", "c", ("cell_angular", "label"))
        ca[:] = np.array([list("alpha"), list("beta "), list("gamma")], "S1")
        tv = nc.createVariable("time", "f8", ("frame",))
        tv.units = "picosecond"
        tv[:] = t
        cv = nc.createVariable("coordinates", "f4", ("frame", "atom", "spatial"))
        cv.units = "angstrom"
        cv[:] = pos % cell[0, 0]
        if vel is not None:
            vv = nc.createVariable("velocities", "f4", ("frame", "atom", "spatial"))
            vv.units = "angstrom/picosecond"
            vv[:] = vel
        cl = nc.createVariable("cell_lengths", "f8", ("frame", "cell_spatial"))
        cl.units = "angstrom"
        cl[:] = np.repeat(np.diag(cell)[None], n_frames, axis=0)
        cg = nc.createVariable("cell_angles", "f8", ("frame", "cell_angular"))
        cg.units = "degree"
        cg[:] = 90.0
        ty = nc.createVariable("element", "S1", ("atom", "label"))
        ty[:] = np.array([list(s.ljust(5)) for s in species], "S1")
    return path
