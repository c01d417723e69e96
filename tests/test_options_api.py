"""Library-level option checks: the memory budget respects the process's limits, and frame ranges and
selections of the wrong type raise AnionmotionError subclasses (the CLI's one-line messages), not raw errors."""
import subprocess
import sys

import numpy as np
import pytest

import anionmotion
from anionmotion.analysis.base import available_memory, default_memory
from anionmotion.errors import AnionmotionError, OptionError, OptionTypeError


def test_default_memory_respects_the_address_space_limit():
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30));"
            "from anionmotion.analysis.base import available_memory, default_memory;"
            "print(available_memory(), default_memory())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    avail, budget = int(out[0]), int(out[1])
    assert 0 < avail < 2 << 30            # the room left under ulimit -v, not the machine's free memory
    assert budget == max(256 << 20, avail // 2)


def test_default_memory_is_half_of_available():
    assert default_memory() >= 256 << 20
    assert default_memory() <= max(256 << 20, available_memory() // 2 + (64 << 20))


@pytest.fixture(scope="module")
def traj(tmp_path_factory):
    from anionmotion.io.netcdf_writer import NetCDFWriter

    path = tmp_path_factory.mktemp("opt") / "t.nc"
    rng = np.random.default_rng(0)
    species = ["Li"] * 4 + ["S"] + ["O"] * 4
    with NetCDFWriter(str(path), species, velocities=False) as w:
        for i in range(12):
            w.write(rng.normal(5, 1, (len(species), 3)), cell=np.eye(3) * 10, time=0.01 * i)
    with anionmotion.open(str(path)) as t:
        yield t


@pytest.mark.parametrize("kw", [dict(start="a"), dict(stop=[3]), dict(step=0.5), dict(step=0), dict(start=np.nan)])
def test_frame_range_rejects_bad_values_with_option_errors(traj, kw):
    with pytest.raises(OptionError, match="frame"):
        traj.frame_range(**kw)


def test_frame_range_accepts_integral_floats_and_negative_indices(traj):
    assert tuple(traj.frame_range(start=2.0, stop=-2, step=3)) == (2, 10, 3)


@pytest.mark.parametrize("species", [5, ["Li", 3], {"Li": 1}, b"Li"])
def test_select_rejects_non_symbols(traj, species):
    with pytest.raises(OptionTypeError, match="species"):
        traj.select(species=species)
    assert issubclass(OptionTypeError, TypeError) and issubclass(OptionTypeError, AnionmotionError)


def test_select_species_forms(traj):
    assert list(traj.select(species="Li")) == [0, 1, 2, 3]
    assert list(traj.select(species={"S", "Li"})) == [0, 1, 2, 3, 4]
    assert list(traj.select(species=np.array(["S"]))) == [4]
    with pytest.raises(OptionError, match="empty"):
        traj.select(species=[])
    with pytest.raises(OptionTypeError, match="integers"):
        traj.select(indices=[0.5, 1.5])


def test_rdf_takes_the_temperature_from_the_file_like_msd():
    from anionmotion._example import example_path

    with anionmotion.open(example_path("UC")) as t:
        assert t.metadata["temperature_K"] == 1000.0
        r = anionmotion.rdf(t, [("S", "Li")], stop=50)
        assert r.temperature_K == 1000.0 and r.free_energy_eV is not None
        assert anionmotion.rdf(t, [("S", "Li")], stop=50, temperature=500).temperature_K == 500.0


def test_report_example_path_modes():
    from anionmotion import _example, report

    assert report.example_path() == _example.example_path("UC")
    assert report.example_path("RC") == _example.example_path("RC")
    with pytest.raises(OptionError):
        report.example_path("RTC")
