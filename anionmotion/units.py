"""Physical constants and unit conversions (SPEC §0).

Internal units: Å, ps, Å/ps, amu, e, K, eV, THz.  CODATA 2018 values.
"""

BOHR_A = 0.529177210544
"""1 bohr in Å (SPEC §0)."""
AU_TIME_PS = 2.4188843265857e-5
"""1 atomic unit of time in ps (SPEC §0)."""
AU_VELOCITY_A_PS = BOHR_A / AU_TIME_PS
"""1 atomic unit of velocity (bohr / a.u. time) in Å/ps (≈ 21876.91)."""
NM_A = 10.0
FS_PS = 1.0e-3

KB_EV = 8.617333262e-5
"""Boltzmann constant, eV/K."""
KB_J = 1.380649e-23
"""Boltzmann constant, J/K."""
E_C = 1.602176634e-19
"""Elementary charge, C."""
AMU_KG = 1.66053906660e-27
HARTREE_EV = 27.211386245988
KJMOL_EV = 1.0 / 96.48533212331
"""1 kJ/mol in eV."""

A2_PS_TO_CM2_S = 1.0e-4
"""1 Å²/ps = 1e-4 cm²/s."""
THZ_TO_CM1 = 33.35640951981521
"""1 THz = 33.356 cm⁻¹."""
THZ_TO_MEV = 4.135667696
"""1 THz = 4.1357 meV (h·ν)."""

# kinetic energy: 1 amu Å²/ps² in eV
AMU_A2_PS2_EV = AMU_KG * 1e4 / E_C
"""1 amu·Å²/ps² in eV (≈ 1.0364e-4)."""


def nernst_einstein_S_cm(n_ions, charge, D_A2_ps, volume_A3, temperature_K):
    """Tracer Nernst–Einstein conductivity σ = N q² D / (V k_B T) in S/cm.

    Parameters
    ----------
    n_ions : int
        Number of mobile ions N.
    charge : float
        Charge of one ion, e.
    D_A2_ps : float or ndarray
        Tracer diffusion coefficient, Å²/ps.
    volume_A3 : float
        Cell volume, Å³.
    temperature_K : float
        Temperature, K.
    """
    D_m2_s = D_A2_ps * 1e-8  # Å²/ps -> m²/s
    V_m3 = volume_A3 * 1e-30
    sigma_S_m = n_ions * (charge * E_C) ** 2 * D_m2_s / (V_m3 * KB_J * temperature_K)
    return sigma_S_m * 1e-2
