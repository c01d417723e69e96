"""Synthetic polyanion systems shared by the polyanion tests (not collected by pytest)."""

import numpy as np

TET = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3)
OCT = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)


def random_rotations(rng, n):
    """n uniformly random rotation matrices (n, 3, 3)."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], 1)


def axis_angle(axis, angle):
    """Rotation matrix about a unit axis by angle (rad)."""
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def lattice(n_side=2, cell=None, bond=2.05, shape=TET, center="P", ligand="S", cation="Li", rng=None):
    """Centres on a simple lattice inside ``cell`` (rows a, b, c) with ligands and one cation per anion.

    Returns (positions (n_atoms, 3), species list, centre fractional positions).
    """
    cell = np.eye(3) * 10.0 if cell is None else np.asarray(cell, float)
    pos, sp = [], []
    rot = None if rng is None else random_rotations(rng, n_side ** 3)
    k = 0
    for i in range(n_side):
        for j in range(n_side):
            for m in range(n_side):
                f = (np.array([i, j, m]) + 0.25) / n_side
                c = f @ cell
                pos.append(c)
                sp.append(center)
                s = shape * bond
                if rot is not None:
                    s = s @ rot[k].T
                for v in s:
                    pos.append(c + v)
                    sp.append(ligand)
                if cation:
                    pos.append(((np.array([i, j, m]) + 0.75) / n_side) @ cell)
                    sp.append(cation)
                k += 1
    return np.array(pos), sp


def rotational_brownian(rng, n_frames, n_anions, dt, Dr, shape=TET, bond=2.05, box=30.0):
    """Rigid tetrahedra under rotational Brownian motion with diffusion coefficient Dr (rad²/ps).

    Returns (positions (n_frames, n_anions*(1+n_lig), 3), species, cell).
    """
    n_lig = len(shape)
    R = random_rotations(rng, n_anions)
    out = np.empty((n_frames, n_anions, n_lig, 3))
    sig = np.sqrt(2 * Dr * dt)
    for t in range(n_frames):
        out[t] = np.einsum("aij,lj->ali", R, shape * bond)
        w = rng.normal(0, sig, size=(n_anions, 3))
        ang = np.linalg.norm(w, axis=1)
        ax = w / np.where(ang > 0, ang, 1)[:, None]
        K = np.zeros((n_anions, 3, 3))
        K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -ax[:, 2], ax[:, 1], -ax[:, 0]
        K[:, 1, 0], K[:, 2, 0], K[:, 2, 1] = ax[:, 2], -ax[:, 1], ax[:, 0]
        s, c = np.sin(ang)[:, None, None], np.cos(ang)[:, None, None]
        dR = np.eye(3) + s * K + (1 - c) * K @ K
        R = dR @ R
    n_side = int(np.ceil(n_anions ** (1 / 3)))
    centres = np.array([[i, j, k] for i in range(n_side) for j in range(n_side) for k in range(n_side)][:n_anions],
                       float) * (box / n_side) + 1.0
    pos = np.empty((n_frames, n_anions, 1 + n_lig, 3))
    pos[:, :, 0] = centres
    pos[:, :, 1:] = centres[None, :, None, :] + out
    sp = (["P"] + ["S"] * n_lig) * n_anions
    return pos.reshape(n_frames, -1, 3), sp, np.eye(3) * box
