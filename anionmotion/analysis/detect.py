"""Detection of the mobile cation and of isolated polyanions in a trajectory.

Used by ``anionmotion report`` when ``--cation`` / ``--center --ligand`` are
not given.  Detection only ever looks at the first frame and always says what
it found and why (the ``reason`` strings end up in the report), so a user can
check it and override it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..elements import MOBILE_CATIONS, normalize_symbol
from ..errors import OptionError
from ..kernels.pbc import minimum_image_ref

__all__ = ["LIGAND_SPECIES", "MAX_BOND_A", "CationChoice", "PolyanionChoice", "detect_cation", "detect_polyanions"]

#: species that can be ligands of a polyanion centre
LIGAND_SPECIES = ("O", "S", "F", "Cl", "Br", "I", "N", "H", "Se", "Te")

#: longest centre–ligand bond accepted (Å) per ligand, generous upper limits of tabulated bond lengths
#: (P–O 1.54, S–O 1.47, B–F 1.40, B–H 1.21, Si–O 1.63, P–S 2.05, Sb–S 2.33, Nb–Cl 2.37, Al–Cl 2.13, Ga–I 2.55)
#: (Y–Cl 2.62 in Na3YCl6 and Er–Cl 2.65 set the Cl limit; Y–Br 2.78 the Br limit; Na–Cl 2.82 stays outside)
MAX_BOND_A = {"O": 2.05, "F": 2.0, "N": 2.0, "H": 1.45, "S": 2.6, "Cl": 2.75, "Se": 2.75, "Br": 2.9, "I": 2.95,
              "Te": 2.95}

#: ratio between the first non-bonded and the last bonded distance that counts as a clear gap
GAP_RATIO = 1.25


@dataclass(frozen=True)
class CationChoice:
    """The mobile cation used by a report.

    Attributes
    ----------
    species : str or None
        Element symbol, or None when no mobile cation is present.
    n_atoms : int
    source : {"given", "detected", "none"}
    reason : str
        One sentence explaining the choice.
    """

    species: str | None
    n_atoms: int
    source: str
    reason: str


@dataclass(frozen=True)
class PolyanionChoice:
    """The polyanions used by a report.

    Attributes
    ----------
    center, ligand : str or None
        Element symbols; None when no isolated polyanion was found.
    cutoff_A : float or None
        Centre–ligand cutoff (Å) that separates bonded from non-bonded ligands in the first frame.
    n_anions : int
    n_ligands_per_anion : int
    isolated : bool
        True when no ligand is bonded to two centres.
    source : {"given", "detected", "none"}
    reason : str
    candidates : list of dict
        Every (centre, ligand) pair examined, with its verdict.
    """

    center: str | None
    ligand: str | None
    cutoff_A: float | None
    n_anions: int
    n_ligands_per_anion: int
    isolated: bool
    source: str
    reason: str
    candidates: list = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.center is not None


def detect_cation(traj, cation=None) -> CationChoice:
    """Pick the mobile cation: ``cation`` if given, else the first of :data:`~anionmotion.elements.MOBILE_CATIONS` present.

    Parameters
    ----------
    traj : Trajectory
    cation : str, optional
        Element symbol given by the user.

    Raises
    ------
    OptionError
        When ``cation`` is given but absent from the trajectory.
    """
    counts = traj.species_counts()
    if cation is not None:
        sym = normalize_symbol(cation)
        if sym not in counts:
            raise OptionError(f"--cation {cation}: no such species in {traj.path} "
                              f"(species present: {', '.join(counts)})")
        return CationChoice(sym, int(counts[sym]), "given", f"{sym} given by the user ({counts[sym]} atoms)")
    for sym in MOBILE_CATIONS:
        if sym in counts and sym != "H":
            return CationChoice(sym, int(counts[sym]), "detected",
                                f"{sym} is the first mobile cation of {', '.join(MOBILE_CATIONS)} present "
                                f"({counts[sym]} atoms); override with --cation")
    return CationChoice(None, 0, "none", "none of the mobile cations " + ", ".join(c for c in MOBILE_CATIONS if c != "H")
                        + f" is present (species: {', '.join(counts)}); give --cation")


def _first_frame(traj):
    chunk = traj.read(frames=slice(0, 1))
    return chunk.positions[0], chunk.cells[0]


def _pair_distances(pos_c, pos_l, cell, block=256):
    """Minimum-image distances (n_c, n_l), Å, computed in blocks of centres."""
    out = np.empty((len(pos_c), len(pos_l)))
    for i in range(0, len(pos_c), block):
        d = pos_l[None, :, :] - pos_c[i:i + block, None, :]
        out[i:i + block] = np.linalg.norm(minimum_image_ref(d, cell), axis=-1)
    return out


def _examine(dist, ligand):
    """Verdict for one (centre, ligand) pair from the first-frame distance matrix."""
    n_c, n_l = dist.shape
    limit = MAX_BOND_A.get(ligand, 2.5)
    k_max = min(8, n_l)
    if k_max < 2:
        return None, "fewer than 2 ligand atoms"
    srt = np.sort(dist, axis=1)[:, :k_max + 1] if n_l > k_max else np.sort(dist, axis=1)
    best = None
    for k in range(2, k_max + 1):
        last = srt[:, k - 1].max()
        if last > limit:
            break
        nxt = srt[:, k].min() if srt.shape[1] > k else np.inf
        ratio = nxt / last
        if ratio >= GAP_RATIO and (best is None or ratio > best[1]):
            best = (k, ratio, last, nxt)
    if best is None:
        return None, f"no common coordination number with a clear distance gap below {limit} Å"
    k, ratio, last, nxt = best
    cutoff = float(last + (min(nxt, 2 * last) - last) / 2) if np.isfinite(nxt) else float(last * 1.15)
    bonded = dist < cutoff
    per_ligand = bonded.sum(axis=0)
    isolated = bool(per_ligand.max() <= 1)
    return dict(k=int(k), ratio=float(ratio), last=float(last), next=float(nxt), cutoff=cutoff,
                isolated=isolated, shared=int((per_ligand > 1).sum())), None


def _can_centre(center, ligand):
    """An anion-forming species centres a polyanion only on more electronegative ligands (S in SO4, Cl in ClO4,
    N in NO3; not F on O, not N on H)."""
    from ..structures.framework import ELECTRONEGATIVITY

    if center not in LIGAND_SPECIES or center not in ELECTRONEGATIVITY or ligand not in ELECTRONEGATIVITY:
        return True
    return ELECTRONEGATIVITY[center] < ELECTRONEGATIVITY[ligand]


def detect_polyanions(traj, *, cation=None, center=None, ligand=None) -> PolyanionChoice:
    """Find isolated polyanions (centre bonded to ligands) in the first frame.

    Every species except the mobile cation is tried as centre against every
    ligand species of :data:`LIGAND_SPECIES`.  A pair qualifies when every
    centre has the same number k ≥ 2 of nearest ligands below the bond limit
    :data:`MAX_BOND_A` followed by a clear gap (next distance / k-th distance
    ≥ :data:`GAP_RATIO`).  Among qualifying pairs the isolated one (no ligand
    shared by two centres) with the largest gap wins.

    Parameters
    ----------
    traj : Trajectory
    cation : str, optional
        Mobile cation (never a centre).
    center, ligand : str, optional
        Given by the user: only this pair is examined (a non-isolated or
        unbonded pair is still reported, with its verdict).

    Returns
    -------
    PolyanionChoice
    """
    counts = traj.species_counts()
    given = center is not None or ligand is not None
    if given and (center is None or ligand is None):
        raise OptionError("give both --center and --ligand (or neither, to detect them)")
    if given:
        center, ligand = normalize_symbol(center), normalize_symbol(ligand)
        for opt, sym in (("--center", center), ("--ligand", ligand)):
            if sym not in counts:
                raise OptionError(f"{opt} {sym}: no such species in {traj.path} (species present: {', '.join(counts)})")
        pairs = [(center, ligand)]
    else:
        pairs = [(c, lig) for c in counts for lig in LIGAND_SPECIES
                 if lig in counts and c != lig and c != cation and counts[c] <= counts[lig]
                 and _can_centre(c, lig)]
    if traj.n_frames == 0 or not pairs:
        return PolyanionChoice(None, None, None, 0, 0, False, "none",
                               "no candidate centre/ligand species pair" if traj.n_frames else "no frames")
    pos, cell = _first_frame(traj)
    candidates = []
    best = None
    for c, lig in pairs:
        ic, il = np.flatnonzero(traj.species == c), np.flatnonzero(traj.species == lig)
        verdict, why = _examine(_pair_distances(pos[ic], pos[il], cell), lig)
        entry = {"center": c, "ligand": lig}
        if verdict is None:
            entry.update(accepted=False, reason=why)
        else:
            entry.update(accepted=verdict["isolated"], coordination=verdict["k"], cutoff_A=verdict["cutoff"],
                         gap_ratio=verdict["ratio"], isolated=verdict["isolated"],
                         reason="isolated" if verdict["isolated"]
                         else f"{verdict['shared']} ligands shared between centres (connected framework)")
            key = (verdict["isolated"], verdict["ratio"])
            if best is None or key > best[0]:
                best = (key, c, lig, verdict, len(ic))
        candidates.append(entry)
    if best is None or (not best[3]["isolated"] and not given):
        why = "; ".join(f"{e['center']}–{e['ligand']}: {e['reason']}" for e in candidates)
        return PolyanionChoice(None, None, None, 0, 0, False, "none",
                               f"no isolated polyanion found in the first frame ({why})", candidates)
    _, c, lig, v, n = best
    source = "given" if given else "detected"
    text = (f"{n} {c}{lig}{v['k']} units: centre {c}, ligand {lig}, {v['k']} ligands within {v['cutoff']:.2f} Å "
            f"(gap {v['last']:.2f} → {v['next']:.2f} Å)")
    text += ", isolated" if v["isolated"] else ", NOT isolated (ligands shared: connected framework)"
    if not given:
        text += "; override with --center/--ligand"
    return PolyanionChoice(c, lig, v["cutoff"], n, v["k"], v["isolated"], source, text, candidates)
