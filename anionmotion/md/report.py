"""Constraint report: did each constraint hold, and was nothing else frozen? (SPEC §8)

Computed from the recorded trajectory (Å, ps, Å/ps) and the reference of the
mode (the anions at switch-on).  Pure numpy; no OpenMM needed.
"""

from __future__ import annotations

import numpy as np

from ..units import AMU_A2_PS2_EV, KB_EV
from .modes import rotation_angle

__all__ = ["ConstraintAccumulator", "format_report"]


def _min_image(d, cell):
    s = d @ np.linalg.inv(cell)
    return (s - np.round(s)) @ cell


class ConstraintAccumulator:
    """Streaming statistics of a constrained run, fed frame blocks of unwrapped positions and velocities.

    Parameters
    ----------
    groups : list of ndarray of int
        Anion atom indices, centre first (all groups of one size are processed together).
    references : list of ndarray (n_group, 3), Å
        Reference geometry of each anion (at switch-on).
    masses : ndarray, shape (n_atoms,), amu
        Physical masses (RTVC: the masses before they were zeroed).
    n_dof : int
        Degrees of freedom seen by the thermostat.
    dynamic_masses : ndarray, shape (n_atoms,), amu
        Masses used in the dynamics (zeros for RTVC anions), for the kinetic temperature.
    """

    def __init__(self, groups, references, masses, n_dof, dynamic_masses):
        self.masses = np.asarray(masses, dtype=np.float64)
        self.dyn = np.asarray(dynamic_masses, dtype=np.float64)
        self.n_dof = int(n_dof)
        self.sizes = {}
        for g, grp in enumerate(groups):
            self.sizes.setdefault(len(grp), []).append(g)
        self.groups = [np.asarray(g, dtype=np.int64) for g in groups]
        self.refs = [np.asarray(r, dtype=np.float64) for r in references]
        n = self.masses.size
        anion = np.zeros(n, dtype=bool)
        if self.groups:
            anion[np.concatenate(self.groups)] = True
        self.anion = anion
        self.others = np.flatnonzero(~anion)
        self.angles = []        # per block: (n_frames, n_anions) degrees
        self.com_disp2 = []     # (n_frames, n_anions) Å²
        self.bond = []          # (n_frames, n_bonds) Å
        self.angle_lcl = []     # (n_frames, n_angles) degrees
        self.temps = []         # (n_frames,) K
        self.t_anion = []
        self.t_other = []
        self.first_other = None
        self.last_other = None
        self.first_com = None
        self.last_com = None

    def add(self, positions, velocities, cells):
        """Add frames: positions (n_frames, n_atoms, 3) Å unwrapped, velocities Å/ps, cells (n_frames, 3, 3) Å."""
        pos = np.asarray(positions, dtype=np.float64)
        nf = pos.shape[0]
        if nf == 0:
            return
        ang = np.empty((nf, len(self.groups)))
        d2 = np.empty((nf, len(self.groups)))
        coms = np.empty((nf, len(self.groups), 3))
        bonds, lcl = [], []
        for size, members in self.sizes.items():
            idx = np.stack([self.groups[g] for g in members])            # (k, size)
            m = self.masses[idx]                                          # (k, size)
            X = pos[:, idx]                                               # (nf, k, size, 3)
            com = np.einsum("ks,fksi->fki", m, X) / m.sum(axis=1)[None, :, None]
            ref = np.stack([self.refs[g] for g in members])               # (k, size, 3)
            rcom = np.einsum("ks,ksi->ki", m, ref) / m.sum(axis=1)[:, None]
            P = ref - rcom[:, None]
            Q = X - com[:, :, None]
            H = np.einsum("ksi,ks,fksj->fkij", P, m, Q)
            U, _, Vt = np.linalg.svd(H)
            V = np.swapaxes(Vt, -1, -2)
            d = np.sign(np.linalg.det(V @ np.swapaxes(U, -1, -2)))
            V[..., :, 2] *= np.where(d == 0, 1.0, d)[..., None]
            R = V @ np.swapaxes(U, -1, -2)
            ang[:, members] = rotation_angle(R)
            disp = com - rcom[None]
            cell = np.asarray(cells, dtype=np.float64)
            for f in range(nf):
                disp[f] = _min_image(disp[f], cell[f])
            d2[:, members] = np.sum(disp * disp, axis=2)
            coms[:, members] = com
            v = X[:, :, 1:] - X[:, :, :1]                                # centre→ligand (whole: unwrapped)
            r = np.linalg.norm(v, axis=3)                                 # (nf, k, size-1)
            bonds.append(r.reshape(nf, -1))
            nl = size - 1
            if nl >= 2:
                iu, ju = np.triu_indices(nl, 1)
                u = v / r[..., None]
                cosang = np.sum(u[:, :, iu] * u[:, :, ju], axis=3)
                lcl.append(np.degrees(np.arccos(np.clip(cosang, -1, 1))).reshape(nf, -1))
        self.angles.append(ang)
        self.com_disp2.append(d2)
        self.bond.append(np.concatenate(bonds, axis=1) if bonds else np.zeros((nf, 0)))
        self.angle_lcl.append(np.concatenate(lcl, axis=1) if lcl else np.zeros((nf, 0)))
        if velocities is not None:
            vel = np.asarray(velocities, dtype=np.float64)
            ke2 = np.einsum("n,fni->f", self.dyn, vel * vel) * AMU_A2_PS2_EV   # 2 × kinetic energy, eV
            self.temps.append(ke2 / (max(self.n_dof, 1) * KB_EV))
            if self.anion.any():
                ka = np.einsum("n,fni->f", self.dyn[self.anion], vel[:, self.anion] ** 2) * AMU_A2_PS2_EV
                na = 3 * int(np.count_nonzero(self.dyn[self.anion] > 0))
                self.t_anion.append(ka / (na * KB_EV) if na else np.zeros(nf))
            if self.others.size:
                ko = np.einsum("n,fni->f", self.dyn[self.others], vel[:, self.others] ** 2) * AMU_A2_PS2_EV
                self.t_other.append(ko / (3 * self.others.size * KB_EV))
        if self.first_other is None:
            self.first_other = pos[0, self.others].copy()
            self.first_com = coms[0].copy()
        self.last_other = pos[-1, self.others].copy()
        self.last_com = coms[-1].copy()

    def result(self, *, species=None, restraint_energies=None, temperature=None, kT_kJmol=None):
        """The report as a JSON-ready dict (see :func:`format_report`)."""
        ang = np.concatenate(self.angles) if self.angles else np.zeros((0, 0))
        d2 = np.concatenate(self.com_disp2) if self.com_disp2 else np.zeros((0, 0))
        bond = np.concatenate(self.bond) if self.bond else np.zeros((0, 0))
        lcl = np.concatenate(self.angle_lcl) if self.angle_lcl else np.zeros((0, 0))
        out = {"n_frames": int(ang.shape[0]), "n_anions": len(self.groups)}
        if ang.size:
            p50, p95, p99 = np.percentile(ang, [50.0, 95.0, 99.0])
            out["rotation_deg"] = {"mean": float(ang.mean()), "max": float(ang.max()),
                                   "rms": float(np.sqrt(np.mean(ang ** 2))),
                                   "p50": float(p50), "p95": float(p95), "p99": float(p99),
                                   "definition": "Kabsch rigid-body rotation of each anion from its reference; "
                                                 "percentiles over all anions and frames"}
            out["com_displacement_A"] = {
                "rms": float(np.sqrt(d2.mean())), "max": float(np.sqrt(d2.max())),
                "definition": "anion centre of mass minus its reference (minimum image), all anions and frames"}
        if bond.size:
            # fluctuation: per-bond standard deviation over time, averaged over bonds
            out["bond_A"] = {"mean": float(bond.mean()), "fluctuation": float(bond.std(axis=0).mean()),
                             "definition": "centre–ligand distance; fluctuation = time std per bond, mean over bonds"}
        if lcl.size:
            out["angle_deg"] = {"mean": float(lcl.mean()), "fluctuation": float(lcl.std(axis=0).mean()),
                                "definition": "ligand–centre–ligand angle; fluctuation as for bonds"}
        if self.temps:
            T = np.concatenate(self.temps)
            out["temperature_K"] = {"mean": float(T.mean()), "std": float(T.std()), "n_dof": self.n_dof}
            if temperature is not None:
                out["temperature_K"]["target"] = float(temperature)
                out["temperature_K"]["relative_deviation"] = float(T.mean() / temperature - 1.0)
            if self.t_anion:
                out["temperature_K"]["anions"] = float(np.concatenate(self.t_anion).mean())
            if self.t_other:
                out["temperature_K"]["other_atoms"] = float(np.concatenate(self.t_other).mean())
        if self.first_other is not None and self.others.size:
            disp = self.last_other - self.first_other
            out["other_atoms"] = {"n_atoms": int(self.others.size),
                                  "msd_first_to_last_A2": float(np.mean(np.sum(disp * disp, axis=1)))}
            if species is not None:
                sp = np.asarray(species, dtype=object)[self.others]
                out["other_atoms"]["per_species_msd_A2"] = {
                    str(s): float(np.mean(np.sum(disp[sp == s] ** 2, axis=1))) for s in np.unique(sp)}
        if self.first_com is not None and len(self.groups):
            dc = self.last_com - self.first_com
            out["anion_com_msd_first_to_last_A2"] = float(np.mean(np.sum(dc * dc, axis=1)))
        if restraint_energies:
            re = {}
            for name, vals in restraint_energies.items():
                vals = np.asarray(vals, dtype=np.float64)
                if vals.size:
                    e = {"mean_kJmol": float(vals.mean()), "per_anion_kJmol": float(vals.mean() / len(self.groups)),
                         "n_samples": int(vals.size)}
                    if kT_kJmol:
                        # equipartition: 3 harmonic DOF per anion → ⟨E⟩ = 3/2 kT per anion
                        e["per_anion_over_1.5kT"] = float(vals.mean() / len(self.groups) / (1.5 * kT_kJmol))
                    re[name] = e
            out["restraint_energy"] = re
        return out


def format_report(rep) -> str:
    """Human-readable summary of a constraint report dict."""
    lines = [f"constraint report: mode {rep.get('mode', '?')}, {rep.get('n_frames', 0)} frames, "
             f"{rep.get('n_anions', 0)} anions"]
    r = rep.get("rotation_deg")
    if r:
        lines.append(f"  anion rigid-body rotation (Kabsch): mean {r['mean']:.2f}°, "
                     + (f"95 % below {r['p95']:.2f}°, " if "p95" in r else "") + f"max {r['max']:.2f}°")
    c = rep.get("com_displacement_A")
    if c:
        lines.append(f"  anion COM displacement from reference: RMS {c['rms']:.4f} Å, max {c['max']:.4f} Å")
    b = rep.get("bond_A")
    if b:
        lines.append(f"  centre–ligand bond: mean {b['mean']:.4f} Å, fluctuation {b['fluctuation']:.4f} Å")
    a = rep.get("angle_deg")
    if a:
        lines.append(f"  ligand–centre–ligand angle: mean {a['mean']:.2f}°, fluctuation {a['fluctuation']:.2f}°")
    t = rep.get("temperature_K")
    if t:
        s = f"  temperature: {t['mean']:.1f} ± {t['std']:.1f} K"
        if "target" in t:
            s += f" (target {t['target']:.1f} K, {100 * t['relative_deviation']:+.1f} %)"
        if "anions" in t and "other_atoms" in t:
            s += f"; anions {t['anions']:.1f} K, other atoms {t['other_atoms']:.1f} K"
        lines.append(s)
    o = rep.get("other_atoms")
    if o:
        per = ", ".join(f"{k} {v:.3f}" for k, v in o.get("per_species_msd_A2", {}).items())
        lines.append(f"  non-anion atoms, squared displacement first→last frame: {o['msd_first_to_last_A2']:.3f} Å²"
                     + (f" ({per})" if per else ""))
    for name, e in rep.get("restraint_energy", {}).items():
        s = f"  {name} restraint energy: {e['mean_kJmol']:.2f} kJ/mol ({e['per_anion_kJmol']:.3f} per anion"
        if "per_anion_over_1.5kT" in e:
            s += f", {e['per_anion_over_1.5kT']:.2f} × 3/2 kT"
        lines.append(s + ")")
    return "\n".join(lines)
