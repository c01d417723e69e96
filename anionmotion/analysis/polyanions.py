"""Polyanion identification (SPEC §4): centres, ligands, clusters, framework connectivity.

:func:`find_polyanions` finds the polyanions of a structure in one frame
(default: the first) and returns a :class:`Polyanions` object that the other
polyanion analyses (reorientation, coupling, timelines) use to compute
centre→ligand vectors and centres of mass in any chunk of frames.

Two kinds of polyanion are supported:

* **centred** (PS4³⁻, SO4²⁻, BF4⁻, NbCl6⁻, …): atoms of a centre species and
  the atoms of a ligand species within ``cutoff`` of them (minimum image,
  triclinic cells); each ligand belongs to its nearest centre;
* **centre-less clusters** (B10H10²⁻, B12H12²⁻): bonded components of the
  atoms of the ``cluster`` species (two atoms are bonded when closer than
  ``cutoff``); their centre is the centre of mass.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..elements import normalize_symbol
from ..errors import IntegrityWarning, OptionError
from ..kernels.pbc import minimum_image_ref
from ..kernels.polyanion import ligand_vectors as _ligand_vectors_kernel
from ..results import Result
from ..trajectory import Chunk, Trajectory

__all__ = ["find_polyanions", "Polyanions", "LigandDepartures", "auto_cutoff", "AUTO_CUTOFF_SOURCE", "parse_species"]

AUTO_CUTOFF_SOURCE = "auto: first minimum/gap of the centre–ligand distance distribution"
USER_CUTOFF_SOURCE = "user"

#: distances are searched for the first gap up to ``GAP_WINDOW_FACTOR × d_min + GAP_WINDOW_PAD`` Å
GAP_WINDOW_FACTOR = 2.0
GAP_WINDOW_PAD = 0.5
#: a gap narrower than this (Å) is not a clear separation between the bonded shell and the rest
MIN_GAP = 0.25


def parse_species(value, name):
    """Species list from ``"P"``, ``"B H"``, ``"Si,Ge"`` or a sequence; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.replace(",", " ").split()
    else:
        parts = [str(v) for v in value]
    if not parts:
        raise OptionError(f"{name} must name at least one species (e.g. {name}='P'); got {value!r}")
    return [normalize_symbol(p) for p in parts]


def auto_cutoff(distances):
    """Cutoff (Å) at the first gap of a distance distribution.

    Parameters
    ----------
    distances : array_like, Å
        Centre–ligand (or cluster-atom pair) distances in one frame.

    Returns
    -------
    cutoff : float, Å
        Midpoint of the widest gap between consecutive sorted distances within
        [d_min, 2 d_min + 0.5 Å] (the window is extended by the first distance
        beyond it, so the gap to the second shell is always seen).
    info : dict
        ``d_min``, ``gap_low``, ``gap_high`` (Å) and ``n_within``.

    Raises
    ------
    OptionError
        When there are no distances or the widest gap is narrower than 0.25 Å
        (no clear first shell): the cutoff must then be given explicitly.

    Notes
    -----
    In a crystal or a melt of intact polyanions the centre–ligand distance
    distribution has a sharp bonded peak followed by an empty interval; the
    midpoint of that interval is the first minimum of the distribution, and
    is robust against thermal broadening of the peak.
    """
    d = np.sort(np.asarray(distances, dtype=np.float64).ravel())
    d = d[np.isfinite(d) & (d > 1e-6)]
    if len(d) == 0:
        raise OptionError("cannot choose a cutoff automatically: no centre–ligand distances; give cutoff= (Å)")
    d0 = d[0]
    n_in = int(np.searchsorted(d, GAP_WINDOW_FACTOR * d0 + GAP_WINDOW_PAD, side="right"))
    win = d[:min(len(d), n_in + 1)]
    if len(win) == 1 or (len(win) == n_in and n_in == len(d)):
        # no second shell inside the structure at all: everything found is bonded
        cutoff = float(1.25 * d[-1]) if len(d) else float(1.25 * d0)
        return cutoff, {"d_min": float(d0), "gap_low": float(d[-1]), "gap_high": None, "n_within": int(len(d))}
    gaps = np.diff(win)
    i = int(np.argmax(gaps))
    if gaps[i] < MIN_GAP:
        raise OptionError(f"cannot choose a cutoff automatically: the distances from {d0:.3f} Å to {win[-1]:.3f} Å "
                          f"have no gap wider than {MIN_GAP} Å (widest {gaps[i]:.3f} Å at {win[i]:.3f} Å); "
                          "give cutoff= / --cutoff (Å)")
    cutoff = 0.5 * (win[i] + win[i + 1])
    return float(cutoff), {"d_min": float(d0), "gap_low": float(win[i]), "gap_high": float(win[i + 1]),
                           "n_within": int(i + 1)}


@dataclass(frozen=True)
class Polyanions(Result):
    """The polyanions of a structure.

    Attributes
    ----------
    centers : ndarray, shape (n_anions,), int64
        Trajectory atom index of each centre atom; −1 for centre-less
        clusters (their centre is the centre of mass).
    ligands : ndarray, shape (n_anions, n_ligands), int64
        Trajectory atom indices of the ligands of each anion, sorted.  When
        anions have different ligand counts, ``n_ligands`` is the largest count
        and shorter rows are padded with −1 (see ``ligand_counts``).
    members : list of ndarray of int64
        All atoms of each anion, centre first (centred anions: centre then the
        ligands; clusters: every atom of the component, sorted).
    center_species : str or None
        Species of the centre atoms (None for clusters).
    ligand_species : str
        Species of the ligands (space-separated if several).
    cutoff : float, Å
        Centre–ligand (clusters: bond) cutoff distance.
    cutoff_source : str
        ``"user"`` or ``"auto: first minimum/gap of the centre–ligand distance distribution"``.
    ligand_counts : ndarray, shape (n_anions,), int64
    member_masses : list of ndarray of float64, amu
        Masses of ``members``.
    connectivity : str
        ``isolated``, ``corner-sharing``, ``edge-sharing``, ``face-sharing`` or ``mixed``.
    shared : ndarray, shape (n_pairs, 3), int64
        Rows (anion i, anion j, number of ligands within the cutoff of both centres).
    vpa_A3 : float, Å³
        Volume per atom (cell volume of the identification frame / number of atoms).
    aal_A : float, Å
        Average centre–ligand distance in the identification frame (clusters: centre of mass–ligand).
    max_ligand_distance : ndarray, shape (n_anions,), Å
        Distance beyond which a ligand counts as having left its anion in the integrity check.
    frame : int
        Trajectory frame used for the identification.
    n_atoms : int
        Atoms in the trajectory (to check chunks against).
    meta : dict
        Parameters and details of the automatic cutoff.
    """

    centers: np.ndarray
    ligands: np.ndarray
    members: list
    center_species: Optional[str]
    ligand_species: str
    cutoff: float
    cutoff_source: str
    ligand_counts: np.ndarray
    member_masses: list
    connectivity: str
    shared: np.ndarray
    vpa_A3: float
    aal_A: float
    max_ligand_distance: np.ndarray
    frame: int
    n_atoms: int
    meta: dict = field(default_factory=dict)

    # ------------------------------------------------------------ basics
    @property
    def n_anions(self) -> int:
        return len(self.members)

    @property
    def n_ligands(self) -> int:
        """Ligands per anion (the largest count when they differ)."""
        return int(self.ligands.shape[1]) if self.ligands.ndim == 2 else 0

    @property
    def is_cluster(self) -> bool:
        return bool(len(self.centers) and self.centers[0] < 0)

    @property
    def uniform(self) -> bool:
        """True when every anion has the same number of ligands."""
        return bool(len(self.ligand_counts) == 0 or np.all(self.ligand_counts == self.ligand_counts[0]))

    @property
    def atoms(self) -> np.ndarray:
        """Sorted trajectory indices of every atom in any polyanion (for ``traj.read(atoms=...)``)."""
        if not self.members:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(self.members)).astype(np.int64)

    @property
    def label(self) -> str:
        """Formula-like label, e.g. ``PS4`` or ``(B H)12``."""
        n = int(self.ligand_counts[0]) if len(self.ligand_counts) else 0
        if self.center_species:
            return f"{self.center_species}{self.ligand_species}{n if n != 1 else ''}"
        return f"cluster[{self.meta.get('cluster_species', '')}]"

    def __repr__(self):
        return (f"Polyanions({self.n_anions} × {self.label}, cutoff={self.cutoff:.3f} Å ({self.cutoff_source}), "
                f"{self.connectivity})")

    def summary(self) -> str:
        return repr(self)

    # ------------------------------------------------------ chunk access
    def _columns(self, chunk: Chunk, idx):
        """Chunk columns of trajectory atom indices ``idx`` (−1 stays −1)."""
        ai = np.asarray(chunk.atom_indices, dtype=np.int64)
        idx = np.asarray(idx, dtype=np.int64)
        flat = idx.ravel()
        valid = flat >= 0
        pos = np.searchsorted(ai, flat[valid])
        pos_c = np.minimum(pos, max(len(ai) - 1, 0))
        ok = (pos < len(ai)) & (ai[pos_c] == flat[valid]) if len(ai) else np.zeros(valid.sum(), bool)
        if not np.all(ok):
            missing = flat[valid][~ok][0]
            raise OptionError(f"the chunk does not contain atom {int(missing)} of the polyanions; read the chunk "
                              "with atoms=polyanions.atoms (or all atoms)")
        out = np.full(flat.shape, -1, dtype=np.int64)
        out[valid] = pos_c
        return out.reshape(idx.shape)

    def _member_table(self):
        """Members as a padded (n_anions, max_members) table and masses (NaN-free, padded 0)."""
        n = max((len(m) for m in self.members), default=0)
        tab = np.full((self.n_anions, n), -1, dtype=np.int64)
        mas = np.zeros((self.n_anions, n))
        for a, (m, w) in enumerate(zip(self.members, self.member_masses)):
            tab[a, :len(m)] = m
            mas[a, :len(m)] = w
        return tab, mas

    def _check_chunk(self, chunk):
        if not isinstance(chunk, Chunk):
            raise TypeError(f"expected a Chunk (from traj.read or traj.iter_chunks); got {type(chunk).__name__}")

    def member_vectors(self, chunk: Chunk, *, use_ext=True) -> np.ndarray:
        """Minimum-image vectors from each anion's first member to all its members.

        Returns
        -------
        ndarray, shape (n_frames, n_anions, max_members, 3), float64, Å
            NaN for padding.  For centred anions the first member is the centre.
        """
        self._check_chunk(chunk)
        tab, _ = self._member_table()
        cols = self._columns(chunk, tab)
        return _ligand_vectors_kernel(chunk.positions, chunk.cells, cols[:, 0], cols, use_ext=use_ext)

    def com(self, chunk: Chunk, *, use_ext=True) -> np.ndarray:
        """Centres of mass of the polyanions (whole molecules, unwrapped).

        Parameters
        ----------
        chunk : Chunk
            Frames holding at least the atoms in :attr:`atoms`.

        Returns
        -------
        ndarray, shape (n_frames, n_anions, 3), float64, Å
            R = r_ref + Σ m_i d_i / Σ m_i with d_i the minimum-image vector from
            the reference atom (the centre, or the first atom of a cluster) to
            member i; continuous in time because r_ref is unwrapped.
        """
        self._check_chunk(chunk)
        tab, mas = self._member_table()
        cols = self._columns(chunk, tab)
        if chunk.n_frames == 0 or self.n_anions == 0:
            return np.zeros((chunk.n_frames, self.n_anions, 3))
        d = _ligand_vectors_kernel(chunk.positions, chunk.cells, cols[:, 0], cols, use_ext=use_ext)
        d = np.nan_to_num(d, nan=0.0)
        shift = np.einsum("tamk,am->tak", d, mas) / mas.sum(axis=1)[None, :, None]
        return chunk.positions[:, cols[:, 0], :] + shift

    def ligand_vectors(self, chunk: Chunk, *, use_ext=True) -> np.ndarray:
        """Minimum-image centre→ligand vectors.

        Parameters
        ----------
        chunk : Chunk
            Frames holding at least the atoms in :attr:`atoms`.

        Returns
        -------
        ndarray, shape (n_frames, n_anions, n_ligands, 3), float64, Å
            Vector from the centre atom (clusters: the centre of mass) to each
            ligand; NaN for the −1 padding of anions with fewer ligands.
        """
        self._check_chunk(chunk)
        if not self.is_cluster:
            cols_c = self._columns(chunk, self.centers)
            cols_l = self._columns(chunk, self.ligands)
            return _ligand_vectors_kernel(chunk.positions, chunk.cells, cols_c, cols_l, use_ext=use_ext)
        tab, mas = self._member_table()
        cols = self._columns(chunk, tab)
        d = _ligand_vectors_kernel(chunk.positions, chunk.cells, cols[:, 0], cols, use_ext=use_ext)
        dz = np.nan_to_num(d, nan=0.0)
        com_shift = np.einsum("tamk,am->tak", dz, mas) / mas.sum(axis=1)[None, :, None]
        # position of every ligand inside its member row
        out = np.full((chunk.n_frames, self.n_anions, self.n_ligands, 3), np.nan)
        for a in range(self.n_anions):  # loop over anions only; frames are vectorised
            lig = self.ligands[a][self.ligands[a] >= 0]
            where = np.searchsorted(self.members[a], lig)
            out[:, a, :len(lig), :] = d[:, a, where, :] - com_shift[:, a, None, :]
        return out

    # ----------------------------------------------------------- integrity
    def broken_ligands(self, vectors, frame_offset=0, *, frames=None):
        """Ligands farther than :attr:`max_ligand_distance` from their centre.

        Parameters
        ----------
        vectors : ndarray, shape (n_frames, n_anions, n_ligands, 3), Å
            From :meth:`ligand_vectors`.
        frame_offset : int
            Trajectory index of the first frame of ``vectors`` (frames assumed consecutive).
        frames : ndarray, shape (n_frames,), int, optional
            Trajectory index of every frame of ``vectors`` (``chunk.frame_indices``;
            right also for strided frame ranges); overrides ``frame_offset``.

        Returns
        -------
        list of dict
            One entry per (anion, ligand) that leaves, with the first frame
            where it is out and its distance there (Å).
        """
        r = np.linalg.norm(vectors, axis=-1)
        out = np.nan_to_num(r, nan=0.0) > self.max_ligand_distance[None, :, None]
        events = []
        if not out.any():
            return events
        anyout = out.any(axis=0)
        first = np.argmax(out, axis=0)
        for a, l in zip(*np.nonzero(anyout)):
            t = int(first[a, l])
            frame = int(frames[t]) if frames is not None else int(frame_offset + t)
            events.append({"anion": int(a), "center_atom": int(self.centers[a]), "ligand_atom": int(self.ligands[a, l]),
                           "frame": frame, "distance_A": float(r[t, a, l])})
        return events

    def warn_broken(self, events):
        """Emit one :class:`IntegrityWarning` naming the anion and the frame of the first ligand that left."""
        if not events:
            return
        e = min(events, key=lambda x: x["frame"])
        what = (f"centre atom {e['center_atom']} ({self.center_species})" if e["center_atom"] >= 0
                else "a centre-less cluster")
        warnings.warn(f"polyanion {e['anion']} ({what}) lost ligand atom {e['ligand_atom']} at frame {e['frame']} "
                      f"(distance {e['distance_A']:.3f} Å > {self.max_ligand_distance[e['anion']]:.3f} Å); "
                      f"{len(events)} ligand departure(s) in total: the framework is not intact (SPEC §4)",
                      IntegrityWarning, stacklevel=3)

    def check_integrity(self, traj: Trajectory, *, frames_per_chunk=2000, start=None, stop=None, step=None,
                        warn=True, progress=None, memory=None):
        """Check along a trajectory that every ligand stays with its centre.

        Streams the frames in chunks (memory independent of the trajectory
        length: one chunk of the polyanion atoms and one entry per departed ligand).

        Parameters
        ----------
        traj : Trajectory
        frames_per_chunk : int
            Largest chunk (frames); smaller when the memory budget asks for it.
        start, stop, step : int, optional
            Frame range.
        warn : bool
            Emit an :class:`IntegrityWarning` (naming the anion and frame) when a ligand leaves.
        progress : bool, optional
            Progress bar (None = only on a terminal).
        memory : int or str, optional
            Memory budget (``"2GB"``); default half of the available RAM.

        Returns
        -------
        list of dict
            See :meth:`broken_ligands`; empty when the framework is intact.
        """
        from .base import frames_per_chunk as _fpc
        from .base import resolve_memory

        fr = traj.frame_range(start=start, stop=stop, step=step)
        n_atoms = len(self.atoms)
        # positions as read and as float64, plus the vectors and their norms
        per_frame = n_atoms * 3 * 8 * 3 + self.n_anions * max(self.n_ligands, 1) * 8 * 6
        fpc = _fpc(per_frame, resolve_memory(memory), maximum=frames_per_chunk)
        tracker = LigandDepartures(self)
        # minimum-image vectors do not need unwrapped positions
        for chunk in traj.iter_chunks(fpc, atoms=self.atoms, start=fr.start, stop=fr.stop, step=fr.step,
                                      progress=progress, desc="integrity", unwrap=False):
            tracker.update(self.ligand_vectors(chunk), chunk.frame_indices)
        ev = tracker.events()
        if warn:
            self.warn_broken(ev)
        return ev


class LigandDepartures:
    """Online integrity check: the first departure of every ligand, chunk by chunk.

    Parameters
    ----------
    polyanions : Polyanions

    Notes
    -----
    Memory is one entry per ligand that leaves (at most n_anions × n_ligands),
    whatever the trajectory length.  Chunks must arrive in frame order.
    """

    def __init__(self, polyanions: Polyanions):
        self.polyanions = polyanions
        self._first = {}

    def update(self, vectors, frames):
        """Add a chunk: ``vectors`` (n_frames, n_anions, n_ligands, 3) Å, ``frames`` their trajectory indices."""
        for e in self.polyanions.broken_ligands(vectors, frames=np.asarray(frames)):
            self._first.setdefault((e["anion"], e["ligand_atom"]), e)

    def events(self) -> list:
        """Departures so far, ordered by frame then anion (see :meth:`Polyanions.broken_ligands`)."""
        return sorted(self._first.values(), key=lambda x: (x["frame"], x["anion"]))


# ---------------------------------------------------------------------- finding
def _frame_of(source, frame):
    """(positions (n_atoms,3), cell (3,3), species, masses, atom_indices, n_atoms_total, volume)."""
    if isinstance(source, Trajectory):
        n = source.n_frames
        if not isinstance(frame, (int, np.integer)) or not -n <= frame < n:
            raise OptionError(f"frame {frame} out of range for a trajectory of {n} frames")
        frame = int(frame) % n
        ch = source.read(frames=slice(frame, frame + 1), progress=False)
        return ch.positions[0], ch.cells[0], np.asarray(source.species), np.asarray(source.masses), \
            np.arange(source.n_atoms, dtype=np.int64), source.n_atoms, frame
    if isinstance(source, Chunk):
        n = source.n_frames
        if not isinstance(frame, (int, np.integer)) or not -n <= frame < n:
            raise OptionError(f"frame {frame} out of range for a chunk of {n} frames")
        frame = int(frame) % n
        return source.positions[frame], source.cells[frame], np.asarray(source.species), np.asarray(source.masses), \
            np.asarray(source.atom_indices, dtype=np.int64), source.n_atoms, int(source.frame_indices[frame])
    raise TypeError(f"find_polyanions needs a Trajectory or a Chunk; got {type(source).__name__}")


def _select(species, wanted, name):
    present = sorted(set(species.tolist()))
    missing = [s for s in wanted if s not in present]
    if missing:
        raise OptionError(f"no atoms of {name} species {', '.join(missing)}; the trajectory has {', '.join(present)}")
    return np.nonzero(np.isin(species, wanted))[0].astype(np.int64)


def _classify(common_counts):
    kinds = set()
    for c in common_counts:
        kinds.add("corner-sharing" if c == 1 else "edge-sharing" if c == 2 else "face-sharing")
    if not kinds:
        return "isolated"
    if len(kinds) == 1:
        return kinds.pop()
    return "mixed"


def find_polyanions(traj_or_chunk, *, center=None, ligand=None, cutoff=None, cluster=None, frame=0) -> Polyanions:
    """Identify the polyanions in one frame.

    Parameters
    ----------
    traj_or_chunk : Trajectory or Chunk
        The structure (a Chunk must hold the polyanion atoms; its atom indices are used).
    center : str, optional
        Centre species (``"P"``; several as ``"Si Ge"``).  Give ``center``
        and ``ligand`` for centred polyanions, or ``cluster`` for centre-less ones.
    ligand : str, optional
        Ligand species (``"S"``).  For clusters: the species whose atoms give
        the orientation vectors (default: the lightest species of ``cluster``).
    cutoff : float, optional, Å
        Centre–ligand distance (clusters: bond length) cutoff.  Default: the
        first gap of the distance distribution in the identification frame
        (:func:`auto_cutoff`).
    cluster : str, optional
        Species forming centre-less clusters (``"B H"`` for B12H12²⁻): bonded
        components (pairs closer than ``cutoff``) of these atoms.
    frame : int
        Frame (of the trajectory or chunk) used for the identification.

    Returns
    -------
    Polyanions

    Raises
    ------
    OptionError
        Missing/unknown species, an invalid cutoff, a centre without ligands,
        or no clear gap for the automatic cutoff.

    Notes
    -----
    All distances use the minimum image in the (possibly triclinic) cell of the
    identification frame.  A ligand belongs to its nearest centre when that
    centre is within ``cutoff``; ligands within the cutoff of two or more
    centres are *shared* and define the framework connectivity (1 shared
    ligand between two polyhedra = corner-, 2 = edge-, ≥ 3 = face-sharing).
    VPA = V / N_atoms (for a Chunk, N_atoms is the chunk's atom count: pass a
    chunk of all atoms, or a Trajectory); AAL = mean centre–ligand distance.  Anions are ordered
    by their centre (or smallest) atom index and ligands by atom index, so the
    result does not depend on the order of atoms in the file beyond that labelling.

    References
    ----------
    SPEC §4; paper 003 (framework connectivity, VPA, AAL).

    Examples
    --------
    >>> import numpy as np, anionmotion
    >>> pos = np.array([[[5, 5, 5], [6.5, 5, 5], [3.5, 5, 5], [5, 6.5, 5], [5, 3.5, 5]]], float)
    >>> traj = anionmotion.from_arrays(pos, np.eye(3) * 12, species=["S", "O", "O", "O", "O"], frame_interval=1.0)
    >>> pa = anionmotion.find_polyanions(traj, center="S", ligand="O", cutoff=2.0)
    >>> pa.n_anions, pa.n_ligands, pa.connectivity
    (1, 4, 'isolated')
    """
    if cluster is None and center is None:
        raise OptionError("give center= and ligand= (e.g. center='P', ligand='S') for centred polyanions, "
                          "or cluster= (e.g. cluster='B H') for centre-less clusters")
    if cluster is not None and center is not None:
        raise OptionError("give either center= (centred polyanions) or cluster= (centre-less clusters), not both")
    if center is not None and ligand is None:
        raise OptionError(f"ligand= is required with center={center!r} (e.g. ligand='S' for PS4)")
    if cutoff is not None:
        try:
            cutoff = float(cutoff)
        except (TypeError, ValueError) as err:
            raise OptionError(f"cutoff must be a distance in Å; got {cutoff!r}") from err
        if not np.isfinite(cutoff) or cutoff <= 0:
            raise OptionError(f"cutoff must be a positive distance in Å; got {cutoff}")
    pos, cell, species, masses, atom_idx, n_atoms, tframe = _frame_of(traj_or_chunk, frame)
    species = np.asarray([normalize_symbol(s) for s in species], dtype=object)
    volume = float(abs(np.linalg.det(cell)))
    if cluster is not None:
        return _find_clusters(pos, cell, species, masses, atom_idx, n_atoms, tframe, volume,
                              parse_species(cluster, "cluster"), parse_species(ligand, "ligand"), cutoff)
    cs = parse_species(center, "center")
    ls = parse_species(ligand, "ligand")
    both = sorted(set(cs) & set(ls))
    if both:
        raise OptionError(f"species {', '.join(both)} given as both centre and ligand")
    ic = _select(species, cs, "centre")
    il = _select(species, ls, "ligand")
    d = np.linalg.norm(minimum_image_ref(pos[il][None, :, :] - pos[ic][:, None, :], cell), axis=-1)  # (nc, nl)
    meta = {"center": " ".join(cs), "ligand": " ".join(ls), "frame": int(tframe), "mode": "centred"}
    if cutoff is None:
        cutoff, info = auto_cutoff(d)
        source = AUTO_CUTOFF_SOURCE
        meta["auto_cutoff"] = info
    else:
        source = USER_CUTOFF_SOURCE
    within = d <= cutoff
    nearest = np.argmin(d, axis=0) if len(ic) else np.zeros(len(il), dtype=np.int64)
    owned = within[nearest, np.arange(len(il))] if len(ic) else np.zeros(len(il), bool)
    owner = np.where(owned, nearest, -1)
    counts = np.bincount(owner[owner >= 0], minlength=len(ic))
    if np.any(counts == 0):
        bad = ic[counts == 0]
        raise OptionError(f"centre atom(s) {', '.join(str(int(atom_idx[b])) for b in bad[:5])} have no "
                          f"{' '.join(ls)} ligand within the cutoff {cutoff:.3f} Å ({source}); "
                          f"nearest at {d[counts == 0].min():.3f} Å — give a larger cutoff")
    if not np.all(counts == counts[0]):
        vals, n = np.unique(counts, return_counts=True)
        meta["ligand_count_histogram"] = {int(v): int(k) for v, k in zip(vals, n)}
    nmax = int(counts.max()) if len(counts) else 0
    ligs = np.full((len(ic), nmax), -1, dtype=np.int64)
    members, mmasses = [], []
    for a in range(len(ic)):  # per anion (not per frame)
        mine = np.sort(atom_idx[il[owner == a]])
        ligs[a, :len(mine)] = mine
        members.append(np.concatenate([[atom_idx[ic[a]]], mine]).astype(np.int64))
    centers = atom_idx[ic].astype(np.int64)
    order = np.argsort(centers, kind="stable")
    centers, ligs = centers[order], ligs[order]
    members = [members[i] for i in order]
    local = {int(g): k for k, g in enumerate(atom_idx)}
    mmasses = [np.asarray([masses[local[int(g)]] for g in m], dtype=np.float64) for m in members]
    # framework connectivity from ligands within the cutoff of several centres
    w = within[order].astype(np.int64)
    common = w @ w.T
    iu, ju = np.triu_indices(len(ic), k=1)
    sel = common[iu, ju] > 0
    shared = np.stack([iu[sel], ju[sel], common[iu, ju][sel]], axis=1).astype(np.int64) if sel.any() \
        else np.zeros((0, 3), dtype=np.int64)
    connectivity = _classify(shared[:, 2].tolist())
    aal = float(np.mean(d[owner[owned], np.nonzero(owned)[0]])) if owned.any() else float("nan")
    n_per = counts[order]
    meta["ligands_per_anion"] = int(n_per[0]) if len(n_per) and np.all(n_per == n_per[0]) else n_per.tolist()
    return Polyanions(centers=centers, ligands=ligs, members=members, center_species=" ".join(cs),
                      ligand_species=" ".join(ls), cutoff=float(cutoff), cutoff_source=source,
                      ligand_counts=n_per.astype(np.int64), member_masses=mmasses, connectivity=connectivity,
                      shared=shared, vpa_A3=volume / n_atoms, aal_A=aal,
                      max_ligand_distance=np.full(len(ic), float(cutoff)), frame=int(tframe), n_atoms=int(n_atoms),
                      meta=meta)


def _find_clusters(pos, cell, species, masses, atom_idx, n_atoms, tframe, volume, cs, ls, cutoff):
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    ia = _select(species, cs, "cluster")
    if ls is None:
        # the lightest species of the cluster gives the orientation vectors (H in BnHn)
        sp_mass = {s: float(np.nanmean(masses[species == s])) for s in cs}
        ls = [min(cs, key=lambda s: sp_mass[s])]
    else:
        extra = [s for s in ls if s not in cs]
        if extra:
            raise OptionError(f"ligand species {', '.join(extra)} not among the cluster species {' '.join(cs)}")
    p = pos[ia]
    diff = minimum_image_ref(p[None, :, :] - p[:, None, :], cell)
    d = np.linalg.norm(diff, axis=-1)
    iu, ju = np.triu_indices(len(ia), k=1)
    meta = {"cluster_species": " ".join(cs), "ligand": " ".join(ls), "frame": int(tframe), "mode": "cluster"}
    if cutoff is None:
        cutoff, info = auto_cutoff(d[iu, ju])
        source = AUTO_CUTOFF_SOURCE
        meta["auto_cutoff"] = info
    else:
        source = USER_CUTOFF_SOURCE
    adj = d <= cutoff
    np.fill_diagonal(adj, False)
    n_comp, lab = connected_components(csr_matrix(adj), directed=False)
    members, ligs_l, mmasses, rmax = [], [], [], []
    local_mass = masses[ia]
    lig_mask = np.isin(species[ia], ls)
    for c in range(n_comp):
        loc = np.nonzero(lab == c)[0]
        g = atom_idx[ia[loc]]
        o = np.argsort(g)
        loc, g = loc[o], g[o]
        members.append(g.astype(np.int64))
        mmasses.append(local_mass[loc].astype(np.float64))
        ligs_l.append(g[lig_mask[loc]])
    sizes = np.array([len(m) for m in members])
    if np.any(sizes == 1):
        warnings.warn(f"{int(np.sum(sizes == 1))} cluster atom(s) have no bonded neighbour within "
                      f"{cutoff:.3f} Å and form single-atom 'clusters'", IntegrityWarning, stacklevel=3)
    first = np.array([m[0] for m in members])
    order = np.argsort(first)
    members = [members[i] for i in order]
    mmasses = [mmasses[i] for i in order]
    ligs_l = [ligs_l[i] for i in order]
    counts = np.array([len(x) for x in ligs_l], dtype=np.int64)
    if np.any(counts == 0):
        raise OptionError(f"{int(np.sum(counts == 0))} cluster(s) contain no {' '.join(ls)} atom to orient them; "
                          "choose another ligand= species")
    nmax = int(counts.max()) if len(counts) else 0
    ligs = np.full((len(members), nmax), -1, dtype=np.int64)
    local = {int(g): k for k, g in enumerate(atom_idx)}
    aal_all = []
    for a, lg in enumerate(ligs_l):
        ligs[a, :len(lg)] = lg
        m = members[a]
        rel = minimum_image_ref(pos[[local[int(x)] for x in m]] - pos[local[int(m[0])]], cell)
        com = (mmasses[a][:, None] * rel).sum(0) / mmasses[a].sum()
        rl = np.linalg.norm(rel[np.isin(m, lg)] - com, axis=-1)
        aal_all.append(rl)
        rmax.append(float(rl.max()) + cutoff)
    aal = float(np.mean(np.concatenate(aal_all))) if aal_all else float("nan")
    if not np.all(counts == counts[0]):
        vals, n = np.unique(counts, return_counts=True)
        meta["ligand_count_histogram"] = {int(v): int(k) for v, k in zip(vals, n)}
    meta["integrity_rule"] = "a ligand leaves when its distance from the centre of mass exceeds its frame-0 maximum + cutoff"
    return Polyanions(centers=np.full(len(members), -1, dtype=np.int64), ligands=ligs, members=members,
                      center_species=None, ligand_species=" ".join(ls), cutoff=float(cutoff), cutoff_source=source,
                      ligand_counts=counts, member_masses=mmasses, connectivity="isolated",
                      shared=np.zeros((0, 3), dtype=np.int64), vpa_A3=volume / n_atoms, aal_A=aal,
                      max_ligand_distance=np.asarray(rmax, dtype=np.float64), frame=int(tframe),
                      n_atoms=int(n_atoms), meta=meta)
