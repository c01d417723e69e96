"""Results tabulate and draw themselves: one view per result class, used by the CLI, the report and the API."""

import csv
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import anionmotion  # noqa: E402
from anionmotion.analysis import views  # noqa: E402
from anionmotion.analysis.registry import ANALYSES  # noqa: E402
from anionmotion.errors import OptionError  # noqa: E402
from anionmotion.report import example_path  # noqa: E402


def test_every_registered_result_class_has_a_view():
    names = [n for e in ANALYSES for n in e.api if n.endswith("Result")]
    assert names, "the registry lists result classes"
    missing = [n for n in names if n not in views._VIEWS]
    assert not missing, f"result classes without a view: {missing}"


@pytest.fixture(scope="module")
def example():
    return anionmotion.open(example_path(), progress=False)


@pytest.fixture(scope="module")
def results(example):
    msd = anionmotion.msd(example, species="Li")
    return {
        "msd": msd,
        "fit": anionmotion.fit_diffusion(msd),
        "reorientation": anionmotion.reorientation(example, center="S", ligand="O"),
        "rdf": anionmotion.rdf(example, ["S-Li", "Li-Li"], temperature=1000.0),
        "density": anionmotion.density(example, "Li", spacing=0.5),
        "vdos": anionmotion.vdos(example),
        "libration": anionmotion.libration(example, center="S", ligand="O", cation="Li"),
        "coupling": anionmotion.coupling(example, cation="Li", center="S", ligand="O", hop_residence=0.3,
                                         hop_window=0.9, n_permutations=50),
    }


def _csv_rows(text):
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("name", ["msd", "reorientation", "rdf", "density", "vdos", "libration", "coupling"])
def test_tables_round_trip_through_csv(results, name, tmp_path):
    res = results[name]
    tabs = res.tables()
    assert tabs
    for t in tabs:
        assert t.data.ndim == 2 and t.data.shape[1] == len(t.header)
        rows = _csv_rows(t.to_csv())
        assert rows[0] == t.header and len(rows) == len(t.data) + 1
        back = np.array([[float(x) if x else np.nan for x in r] for r in rows[1:]])
        np.testing.assert_allclose(back, t.data, rtol=1e-9, equal_nan=True)
    path = tmp_path / "t.csv"
    res.write_csv(path, which=tabs[0].name)
    assert path.read_text() == tabs[0].to_csv()
    with pytest.raises(OptionError, match="exists"):
        res.write_csv(path)


def test_msd_table_is_the_msd(results):
    res = results["msd"]
    (t,) = res.tables()
    np.testing.assert_array_equal(t.data[:, 0], res.lag)
    np.testing.assert_array_equal(t.data[:, 1], res.msd)
    np.testing.assert_array_equal(t.data[:, 2:5], res.msd_xyz)


@pytest.mark.parametrize("name", ["msd", "reorientation", "rdf", "density", "vdos", "libration", "coupling"])
def test_figures_draw_on_new_and_given_axes(results, name, tmp_path):
    res = results[name]
    specs = res.figures()
    assert specs and len({s.stem for s in specs}) == len(specs)
    for s in specs:
        fig = res.plot(which=s.stem)
        assert any(ax.has_data() for ax in fig.axes)
        plt.close(fig)
        fig2, axes = plt.subplots(s.nrows, s.ncols, squeeze=False)
        assert res.plot(list(axes.ravel()), which=s.stem) is fig2
        plt.close(fig2)
    out = tmp_path / "fig.png"
    res.save_plot(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(OptionError, match="no figure"):
        res.plot(which="nonsense")


def test_msd_figure_shows_the_fit_line(results):
    res, fit = results["msd"], results["fit"]
    fig = res.plot(fit=fit)
    labels = [ln.get_label() for ln in fig.axes[0].lines]
    plt.close(fig)
    assert any(lab.startswith("fit: D =") for lab in labels) == (not fit.below_threshold)


def test_hops_view_lists_every_event():
    pos = np.zeros((200, 2, 3))
    pos[100:, 0, 0] = 4.0
    traj = anionmotion.from_arrays(pos, np.eye(3) * 20, species=["Na", "Na"], frame_interval=0.1)
    res = anionmotion.hops(traj, species="Na", a=3.0, residence=3, window=9)
    (t,) = res.tables()
    assert t.header[:3] == ["atom", "frame", "time_ps"]
    np.testing.assert_array_equal(t.data[:, 0], res.event_atom)
    np.testing.assert_array_equal(t.data[:, 2], res.event_time_ps)
    plt.close(res.plot())


def test_report_json_thins_long_series_and_keeps_pairs():
    from anionmotion.report.stages import MAX_JSON_POINTS, StageOutput, rdict, thin_series

    n = 3 * MAX_JSON_POINTS + 7
    pos = np.cumsum(np.random.default_rng(1).normal(size=(n, 2, 3)), axis=0) * 0.05
    res = anionmotion.msd(anionmotion.from_arrays(pos, np.eye(3) * 40, species=["Li", "Li"], frame_interval=0.01),
                          species="Li")
    d = rdict(res)
    k = -(-n // MAX_JSON_POINTS)
    assert len(d["lag_ps"]) == len(d["msd_A2"]) == len(range(0, n, k)) <= MAX_JSON_POINTS
    np.testing.assert_allclose(d["lag_ps"], res.lag[::k])
    np.testing.assert_allclose(d["msd_A2"], res.msd[::k])
    assert d["thinned_series"]["msd"] == {"n": n, "stride": k}
    assert d["tmsd_A2"] == res.tmsd                      # scalars untouched
    short = {"a": np.arange(10), "b": {"c": list(range(MAX_JSON_POINTS))}}
    assert thin_series(short)["b"]["c"] == short["b"]["c"]
    out = StageOutput("x", "X", result={"curve": np.arange(n, dtype=float)})
    r = out.to_dict()["result"]
    assert len(r["curve"]) <= MAX_JSON_POINTS and r["thinned_series"]["curve"]["n"] == n
    # the full series stays in the result's table
    (t,) = res.tables()
    assert len(t.data) == n


def test_timeline_view_has_one_panel_per_hop_up_to_six():
    n = 400
    pos = np.zeros((n, 6, 3))
    pos[:, 0] = [5, 5, 5]                                          # S centre
    for k, v in enumerate(np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3) * 1.5):
        pos[:, k + 1] = pos[:, 0] + v
    pos[:, 5] = [7.5, 5, 5]
    pos[200:, 5, 0] += 4.0                                         # Li hops 4 Å at frame 200
    traj = anionmotion.from_arrays(pos, np.eye(3) * 15, species=["S", "O", "O", "O", "O", "Li"], frame_interval=0.01)
    res = anionmotion.timeline(traj, cation="Li", center="S", ligand="O", hop_a=3.0, hop_residence=0.3,
                               hop_window=0.9)
    (spec,) = res.figures()
    assert spec.nrows * spec.ncols >= len(res.hops[:6]) >= 1
    fig = res.plot()
    assert len([a for a in fig.axes if a.get_ylabel().startswith("Li displacement")]) == len(res.hops[:6])
    plt.close(fig)
    (t,) = res.tables()
    assert t.header[:2] == ["time_ps", "cation_displacement_A"]
