"""Real-data checks of the polyanion analyses (small files copied into tests/data; see their ATTRIBUTION.md)."""

import os
import warnings

import numpy as np
import pytest

import anionmotion
from anionmotion.analysis.coupling import coupling
from anionmotion.analysis.polyanions import AUTO_CUTOFF_SOURCE, find_polyanions
from anionmotion.analysis.reorientation import reorientation

DATA = os.path.join(os.path.dirname(__file__), "data")
ARGY = os.path.join(DATA, "argyrodite", "Li6PS5Cl_100p_run1_XDATCAR.gz")
LI2SO4 = os.path.join(DATA, "lammps", "li2so4_ortho_T1000.first60.lammpstrj.gz")


@pytest.fixture(scope="module")
def argyrodite():
    return anionmotion.open(ARGY, frame_interval=0.1)


def test_argyrodite_has_32_isolated_ps4(argyrodite):
    pa = find_polyanions(argyrodite, center="P", ligand="S")
    assert pa.n_anions == 32 and pa.n_ligands == 4 and pa.uniform
    assert pa.connectivity == "isolated" and pa.cutoff_source == AUTO_CUTOFF_SOURCE
    assert 2.2 < pa.cutoff < 3.5                      # P–S bonds ≈ 2.05 Å, next S ≥ 3.5 Å
    assert 2.0 < pa.aal_A < 2.1
    assert pa.vpa_A3 == pytest.approx(20.3123 ** 3 / 416, rel=2e-3)
    # the 32 free S2- (and Cl-) are not ligands
    assert len(np.unique(pa.ligands)) == 128
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pa.check_integrity(argyrodite) == []    # PS4 stay intact for all 140 frames


def test_argyrodite_ps4_librate_but_do_not_rotate(argyrodite):
    r = reorientation(argyrodite, center="P", ligand="S")
    assert r.n_anions == 32 and not r.rotating
    assert 0.95 < r.C1_at_reliable_lag < 1.0         # libration only at 500 K over 7 ps
    assert r.rotation_events == 0                     # no 70° turns
    assert r.lag_ps[1] == pytest.approx(0.1)


def test_argyrodite_coupling_runs(argyrodite):
    r = coupling(argyrodite, cation="Li", center="P", ligand="S", n_permutations=200)
    assert 4.0 < r.shell_A < 5.0                      # first minimum of g_P–Li(r)
    assert r.n_events > 500 and -0.2 < r.pearson_mean < 0.6
    assert r.coincidence["n_hops"] > 0 and 0 < r.coincidence["p_value"] <= 1


def test_li2so4_rotor_phase_rotates():
    traj = anionmotion.open(LI2SO4, timestep=0.001, types="1=Li,2=S,3=O")
    r = reorientation(traj, center="S", ligand="O")
    assert r.n_anions == 72 and r.framework["connectivity"] == "isolated"
    assert r.rotating and r.C1_at_reliable_lag < 0.9
    assert r.rotation_events > 0
    assert 1.4 < r.framework["AAL_A"] < 1.55


def test_cli_reorient_on_real_file(tmp_path):
    import json

    from anionmotion.cli import main

    out = tmp_path / "r.json"
    rc = main(["reorient", ARGY, "--frame-interval", "0.1", "--center", "P", "--ligand", "S", "--threshold", "70",
               "--json", str(out), "--no-progress"])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["n_anions"] == 32 and d["rotating"] is False and d["rotation_events"] == 0
    assert d["framework"]["connectivity"] == "isolated" and d["framework"]["VPA_A3"] > 20
    assert len(d["lag_ps"]) == len(d["C1"]) == len(d["C2"]) == 140
    rc = main(["reorient", ARGY, "--frame-interval", "0.1", "--center", "B", "--ligand", "S", "--no-progress"])
    assert rc == 2                                     # clear error: no B atoms
