"""Spectra and structure on engine-written trajectories (LAMMPS and CP2K runs of the Li2SO4-like model)."""

import warnings

import numpy as np
import numpy.testing as npt
import pytest

import anionmotion as am
from anionmotion.errors import SamplingWarning

from conftest import data_path

LAMMPS = data_path("lammps", "li2so4_ortho_T1000.first60.lammpstrj.gz")
VACF = data_path("spectra", "li2so4_ortho_T1000.first60.vacf.txt")
CP2K = data_path("cp2k", "li2so4", "li2so4_ortho_T1000-pos-1.xyz.gz")

@pytest.fixture(scope="module")
def lammps():
    return am.open(LAMMPS, timestep=0.001, types="1=Li,2=S,3=O")


@pytest.fixture(scope="module")
def cp2k():
    return am.open(CP2K)


def test_single_origin_vacf_matches_lammps_compute_vacf(lammps):
    ref = np.loadtxt(VACF)
    r = am.vdos(lammps, origins="first")
    for k, s in enumerate(["Li", "S", "O"]):
        lam = ref[:, 4 + 4 * k]  # total ⟨v(0)·v(t)⟩, Å²/ps²
        # the dump holds 6 significant digits, LAMMPS its double-precision velocities
        npt.assert_allclose(r.vacf[s], lam, atol=2e-5 * lam[0])


def test_lammps_vdos_is_physical(lammps):
    r = am.vdos(lammps, max_freq=45)
    for s in ("Li", "S", "O"):
        npt.assert_allclose(r.kinetic_temperature_K[s], 1000, rtol=0.1)
    npt.assert_allclose(np.trapezoid(r.vdos["total"], r.freq_THz), 3 * 504, rtol=0.02)  # most weight < 45 THz
    # S moves almost only in the S-O stretch: its largest peak lies at 30-38 THz (~34 THz on the full run)
    f = r.freq_THz
    assert 30 < f[np.argmax(r.vdos["S"])] < 38
    assert r.band_center_THz["Li"] < r.band_center_THz["O"] < r.band_center_THz["S"]


def test_cp2k_file_and_difference_velocities_agree(cp2k):
    rf = am.vdos(cp2k)
    with pytest.warns(SamplingWarning, match="Nyquist frequency is 100 THz"):
        rp = am.vdos(cp2k, velocities="positions")
    low = rf.freq_THz < 15
    # below 15 THz the central-difference damping sinc²(2νΔt) is < 7 %
    npt.assert_allclose(rp.vdos["Li"][low], rf.vdos["Li"][low], atol=0.1 * rf.vdos["Li"].max())
    npt.assert_allclose(rf.kinetic_temperature_K["total"], 1000, rtol=0.15)
    assert 30 < rf.freq_THz[np.argmax(rf.vdos["S"])] < 38


def test_cp2k_libration(cp2k):
    r = am.libration(cp2k, center="S", ligand="O", max_freq=50)
    assert r.n_anions == 72 and r.cation == "Li"
    assert 0 < r.overlap_with_cation < 1
    # rigid-body equipartition: <ω²> = Σ_k k_B T / I_k for a free SO4 (I ≈ 2/3·4·m_O·d², d ≈ 1.5 Å)
    i_so4 = 8 / 3 * 15.9994 * 1.5 ** 2
    kT = 8.617333262e-5 * 1000 / 1.0364269656262175e-4  # amu Å²/ps²
    npt.assert_allclose(r.omega_rms ** 2, 3 * kT / i_so4, rtol=0.35)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        rr = am.libration(cp2k, center="S", ligand="O", omega="rotations", cation=None)
    npt.assert_allclose(rr.omega_rms, r.omega_rms, rtol=0.05)


def test_lammps_structure(lammps, tmp_path):
    g = am.rdf(lammps, ["S-O", "Li-S", "Li-Li"], bins=300, temperature=1000)
    fs = g.first_shell["S-O"]
    npt.assert_allclose(fs["coordination"], 4.0, atol=0.01)  # SO4 tetrahedra
    assert 1.3 < fs["r_peak_A"] < 1.7
    assert np.all(np.isfinite(g.free_energy_eV["Li-S"][g.g["Li-S"] > 0]))
    d = am.density(lammps, "Li", spacing=0.5)
    npt.assert_allclose(d.occupancy.sum(), 144, rtol=1e-12)
    from anionmotion.report.grids import read_chgcar, write_grid

    write_grid(d, tmp_path / "li.CHGCAR")
    npt.assert_allclose(read_chgcar(tmp_path / "li.CHGCAR")[1], d.density, rtol=1e-10, atol=1e-14)


def test_triclinic_lammps_structure():
    tr = am.open(data_path("lammps", "li2so4_tri_T1000.unwrapped.first60.lammpstrj.gz"), timestep=0.001,
                 types="1=Li,2=S,3=O")
    assert abs(tr.cells[0][1, 0]) > 1.0  # a genuinely triclinic cell
    g = am.rdf(tr, ["S-O"], bins=300)
    npt.assert_allclose(g.first_shell["S-O"]["coordination"], 4.0, atol=0.01)
    d = am.density(tr, "Li", spacing=0.5)
    npt.assert_allclose(d.occupancy.sum(), 144, rtol=1e-12)
