"""anionmotion compare: mode decomposition (SPEC §8) and Arrhenius series against hand computations."""

import json
import math

import numpy as np
import pytest

from anionmotion.errors import OptionError
from anionmotion.report.compare import D_THRESHOLD_CM2_S, compare, curvature_test, load_entry, mode_decomposition
from anionmotion.units import KB_EV, nernst_einstein_S_cm


def msd_json(D, T, *, below=False, n=16, q=1.0, V=1728.0, species="Li", mode=None, err=None):
    """An msd-style result dict (the keys `anionmotion msd --json` writes)."""
    sigma = 1e3 * nernst_einstein_S_cm(n, q, D * 1e4, V, T)
    d = {"species": species, "n_atoms": n, "temperature_K": T,
         "diffusion": {"D_cm2_s": D, "D_stderr_cm2_s": err if err is not None else 0.05 * D,
                       "below_threshold": below},
         "conductivity": {"sigma_mS_cm": sigma, "sigma_stderr_mS_cm": 0.05 * sigma, "charge": q, "volume_A3": V}}
    if mode is not None:
        d = {"constraint_mode": mode, "temperature_K": T, "analyses": {"diffusion": {"status": "ok", "result": d}}}
    return d


# ----------------------------------------------------------------------------- mode decomposition

def test_mode_decomposition_hand_computed():
    s = {"UC": 12.0, "RC": 3.1, "RTC": 0.9, "RTVC": 0.2}
    md = mode_decomposition(s)
    d_rot, d_trans, d_vib = (math.log10(12.0) - math.log10(3.1), math.log10(3.1) - math.log10(0.9),
                             math.log10(0.9) - math.log10(0.2))
    tot = d_rot + d_trans + d_vib
    assert md["delta"]["rot"]["value"] == pytest.approx(d_rot, rel=1e-12)
    assert md["delta"]["trans"]["value"] == pytest.approx(d_trans, rel=1e-12)
    assert md["delta"]["vib"]["value"] == pytest.approx(d_vib, rel=1e-12)
    assert md["total"] == {"value": pytest.approx(tot), "stderr": None, "kind": "exact"}
    for k, v in (("rot", d_rot), ("trans", d_trans), ("vib", d_vib)):
        assert md["r"][k]["value"] == pytest.approx(v / tot) and md["r"][k]["kind"] == "exact"
    assert sum(md["r"][k]["value"] for k in md["r"]) == pytest.approx(1.0)
    assert md["notes"] == []


def test_mode_decomposition_is_unit_independent():
    a = mode_decomposition({"UC": 12.0, "RC": 3.1, "RTC": 0.9, "RTVC": 0.2})
    b = mode_decomposition({"UC": 12e-3, "RC": 3.1e-3, "RTC": 0.9e-3, "RTVC": 0.2e-3})
    for k in ("rot", "trans", "vib"):
        assert a["r"][k]["value"] == pytest.approx(b["r"][k]["value"], rel=1e-12)


def test_mode_decomposition_bound_on_frozen_anions():
    md = mode_decomposition({"UC": 12.0, "RC": 3.1, "RTC": 0.9, "RTVC": 0.2}, upper_bounds=["RTVC"])
    assert md["delta"]["vib"]["kind"] == "lower_bound"
    assert md["delta"]["rot"]["kind"] == md["delta"]["trans"]["kind"] == "exact"
    assert md["total"]["kind"] == "lower_bound"
    assert md["r"]["vib"]["kind"] == "lower_bound"
    assert md["r"]["rot"]["kind"] == md["r"]["trans"]["kind"] == "upper_bound"
    assert any("Δ_vib ≥" in n and "lower bound" in n for n in md["notes"])
    # the dict form says the same
    md2 = mode_decomposition({"UC": 12.0, "RC": 3.1, "RTC": 0.9, "RTVC": {"value": 0.2, "upper_bound": True}})
    assert md2["delta"] == md["delta"] and md2["r"] == md["r"]


def test_mode_decomposition_two_bounds():
    md = mode_decomposition({"UC": 12.0, "RC": 3.1, "RTC": 0.9, "RTVC": 0.2}, upper_bounds=["RTC", "RTVC"])
    assert md["delta"]["trans"]["kind"] == "lower_bound"
    assert md["delta"]["vib"]["kind"] == "undetermined" and md["delta"]["vib"]["value"] is None
    assert all(r["kind"] == "undetermined" and r["value"] is None for r in md["r"].values())
    md = mode_decomposition({"UC": 12.0, "RC": 3.1, "RTC": 0.9, "RTVC": 0.2}, upper_bounds=["RC"])
    assert md["delta"]["rot"]["kind"] == "lower_bound" and md["delta"]["trans"]["kind"] == "upper_bound"
    assert all(r["kind"] == "undetermined" for r in md["r"].values())


def test_mode_decomposition_missing_modes():
    md = mode_decomposition({"UC": 5.0, "RC": 1.0})
    assert md["delta"]["rot"] == {"value": pytest.approx(math.log10(5.0)), "stderr": None, "kind": "exact",
                                  "from": "UC", "to": "RC"}
    assert md["delta"]["trans"]["kind"] == "missing" and md["delta"]["vib"]["kind"] == "missing"
    assert all(r["kind"] == "missing" for r in md["r"].values())
    assert any("RTC, RTVC missing" in n for n in md["notes"])


def test_mode_decomposition_errors():
    with pytest.raises(OptionError, match="invalid constraint mode 'XC'; choose one of UC, RC, RTC, RTVC"):
        mode_decomposition({"XC": 1.0})
    with pytest.raises(OptionError, match="conductivity of mode RC must be positive"):
        mode_decomposition({"UC": 1.0, "RC": 0.0})
    with pytest.raises(OptionError, match="invalid constraint mode.*in upper_bounds/stderr: XX"):
        mode_decomposition({"UC": 1.0}, upper_bounds=["XX"])
    with pytest.raises(OptionError, match="standard error of mode UC must be non-negative"):
        mode_decomposition({"UC": 1.0, "RC": 0.5}, stderr={"UC": -0.1})
    with pytest.raises(TypeError, match="sigma must be a dict"):
        mode_decomposition([1.0, 2.0])


def test_mode_decomposition_errors_propagate_from_sigma():
    s = {"UC": 12.0, "RC": 3.1, "RTC": 0.9, "RTVC": 0.2}
    err = {"UC": 1.5, "RC": 0.2, "RTC": 0.15, "RTVC": 0.01}
    md = mode_decomposition({m: {"value": v, "stderr": err[m]} for m, v in s.items()})
    assert md == mode_decomposition(s, stderr=err)  # dict form and keyword agree
    sl = {m: err[m] / (s[m] * math.log(10)) for m in s}
    assert md["log10_sigma_stderr"] == pytest.approx(sl)
    assert md["delta"]["trans"]["stderr"] == pytest.approx(math.hypot(sl["RC"], sl["RTC"]))
    # Σ Δ telescopes to log σ_UC − log σ_RTVC: only those two errors enter
    assert md["total"]["stderr"] == pytest.approx(math.hypot(sl["UC"], sl["RTVC"]))
    # r = Δ/Σ: first-order propagation against a Monte Carlo over independent runs (log-normal σ)
    rng = np.random.default_rng(0)
    L = {m: math.log10(v) + sl[m] * rng.normal(size=200000) for m, v in s.items()}
    tot = L["UC"] - L["RTVC"]
    for step, a, b in (("rot", "UC", "RC"), ("trans", "RC", "RTC"), ("vib", "RTC", "RTVC")):
        r_mc = (L[a] - L[b]) / tot
        assert md["r"][step]["stderr"] == pytest.approx(np.std(r_mc), rel=0.05), step
    # r sums to 1 exactly, so the three errors are not independent either: Var(Σ r) = 0 at first order
    assert sum(md["r"][k]["value"] for k in md["r"]) == pytest.approx(1.0)


def test_compare_carries_the_fit_errors_and_the_diffusive_flag():
    runs = [msd_json(2e-5, 600, mode="UC"), msd_json(6e-6, 600, mode="RC"), msd_json(1e-6, 600, mode="RTC"),
            msd_json(2e-7, 600, mode="RTVC", err=1e-7)]
    runs[3]["analyses"]["diffusion"]["result"]["conductivity"]["sigma_stderr_mS_cm"] *= 10  # 50 % error
    runs[3]["analyses"]["diffusion"]["result"]["diffusion"]["diffusive_regime_reached"] = False
    res = compare(runs, labels=["uc", "rc", "rtc", "rtvc"])
    md = res.modes["600 K"]
    sl = [0.05 / math.log(10)] * 3 + [0.5 / math.log(10)]
    assert md["delta"]["vib"]["stderr"] == pytest.approx(math.hypot(sl[2], sl[3]))
    assert md["delta"]["rot"]["stderr"] == pytest.approx(math.hypot(sl[0], sl[1]))
    assert md["sigma_stderr_mS_cm"]["RTVC"] == pytest.approx(0.5 * md["sigma_mS_cm"]["RTVC"])
    assert res.entries[3].diffusive_regime_reached is False
    assert any(w.startswith("rtvc: the MSD never reached its diffusive regime") for w in res.warnings)
    from anionmotion.report.compare import _md_text

    text = _md_text(res, [])
    assert f"| vib (RTC→RTVC) | {md['delta']['vib']['value']:.3g} ± {md['delta']['vib']['stderr']:.2g} | exact |" in text


# ----------------------------------------------------------------------------- compare

def test_compare_modes_from_reports_and_bound():
    runs = [msd_json(2e-5, 600, mode="UC"), msd_json(6e-6, 600, mode="RC"), msd_json(1e-6, 600, mode="RTC"),
            msd_json(3e-9, 600, below=True, mode="RTVC")]
    res = compare(runs, labels=["uc", "rc", "rtc", "rtvc"])
    assert list(res.modes) == ["600 K"]
    md = res.modes["600 K"]
    bound = 1e3 * nernst_einstein_S_cm(16, 1.0, D_THRESHOLD_CM2_S * 1e4, 1728.0, 600)
    assert md["sigma_mS_cm"]["RTVC"] == pytest.approx(bound, rel=1e-12)
    assert md["upper_bound"]["RTVC"] is True
    hand = mode_decomposition({"UC": res.entries[0].sigma_mS_cm, "RC": res.entries[1].sigma_mS_cm,
                               "RTC": res.entries[2].sigma_mS_cm, "RTVC": bound}, upper_bounds=["RTVC"],
                              stderr={m: 0.05 * res.entries[i].sigma_mS_cm for i, m in enumerate(("UC", "RC", "RTC"))})
    assert md["delta"] == hand["delta"] and md["r"] == hand["r"]
    # the errors of D (5 %) reach the exact steps; the bounded step and the r of a bounded total have none
    s_log = 0.05 / math.log(10)
    assert md["delta"]["rot"]["stderr"] == pytest.approx(math.sqrt(2) * s_log)
    assert md["delta"]["vib"]["stderr"] is None and all(r["stderr"] is None for r in md["r"].values())
    assert res.entries[3].below_threshold and res.entries[3].D_cm2_s == D_THRESHOLD_CM2_S
    assert res.arrhenius == {}  # one temperature per mode


def test_compare_mode_labels_override_and_errors(tmp_path):
    paths = []
    for i, D in enumerate((2e-5, 6e-6)):
        p = tmp_path / f"r{i}.json"
        p.write_text(json.dumps(msd_json(D, 500)))
        paths.append(str(p))
    res = compare(paths, modes=["uc", "rc"])
    assert res.modes["500 K"]["delta"]["rot"]["value"] == pytest.approx(math.log10(2e-5 / 6e-6))
    assert res.meta["modes_from"] == "--mode labels"
    with pytest.raises(OptionError, match="modes must have one entry per result"):
        compare(paths, modes=["UC"])
    with pytest.raises(OptionError, match="two runs with mode UC at 500 K"):
        compare(paths, modes=["UC", "UC"])
    with pytest.raises(OptionError, match="invalid constraint mode 'QQ'"):
        compare(paths, modes=["QQ", "UC"])
    with pytest.raises(OptionError, match="at least one result"):
        compare([])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(OptionError, match="bad.json: not a JSON file"):
        compare([str(bad)])


def test_load_entry_reports_missing_diffusion():
    rep = {"analyses": {"diffusion": {"status": "unavailable", "reason": "module missing"}}, "temperature_K": 300}
    e = load_entry(rep, label="x")
    assert e.D_cm2_s is None and "diffusion analysis unavailable: module missing" in e.reason
    res = compare([rep])
    assert any("x" not in w or "module missing" in w for w in res.warnings)
    assert any("nothing to compare" in w for w in res.warnings)


def test_curvature_test():
    T = np.array([400.0, 500.0, 600.0, 700.0, 800.0, 900.0])
    D = 1e-2 * np.exp(-0.3 / (KB_EV * T))
    assert curvature_test(T, D)["curved"] is False
    assert curvature_test(T, D * np.exp(1e-3 * np.sin(T)))["curved"] is False
    vtf = 1e-3 * np.exp(-0.05 / (KB_EV * (T - 300.0)))
    assert curvature_test(T, vtf, 0.01 * vtf)["curved"] is True
    assert curvature_test(T[:3], D[:3])["curved"] is None


def test_compare_arrhenius_hand_computed():
    T = np.array([500.0, 600.0, 700.0, 800.0])
    rng = np.random.default_rng(4)
    D = 3e-3 * np.exp(-0.35 / (KB_EV * T)) * np.exp(rng.normal(scale=0.05, size=4))
    res = compare([msd_json(d, t, err=0.05 * d) for d, t in zip(D, T)], at_K=300.0)
    a = res.arrhenius["all"]
    # hand fit: ln D = ln D0 − Ea/(kB T), equal relative errors -> ordinary least squares in ln D
    x = 1.0 / (KB_EV * T)
    slope, icpt = np.polyfit(x, np.log(D), 1)
    assert a["Ea_eV"] == pytest.approx(-slope, rel=1e-8)
    assert a["D0_cm2_s"] == pytest.approx(math.exp(icpt), rel=1e-8)
    assert a["D_at_cm2_s"] == pytest.approx(math.exp(icpt + slope / (KB_EV * 300.0)), rel=1e-8)
    assert a["curvature"]["curved"] is False


def test_cli_compare(tmp_path, capsys):
    from anionmotion.cli import main

    paths = []
    for i, (D, below) in enumerate(((2e-5, False), (6e-6, False), (1e-6, False), (3e-9, True))):
        p = tmp_path / f"r{i}.json"
        p.write_text(json.dumps(msd_json(D, 600, below=below)))
        paths.append(str(p))
    out = tmp_path / "cmp"
    assert main(["compare", *paths, "--mode", "UC,RC,RTC,RTVC", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "modes at 600 K" in text and "Δ_vib ≥" in text
    d = json.loads((out / "compare.json").read_text())
    assert d["modes"]["600 K"]["r"]["vib"]["kind"] == "lower_bound"
    assert d["modes"]["600 K"]["delta"]["rot"]["stderr"] == pytest.approx(math.sqrt(2) * 0.05 / math.log(10))
    html = (out / "compare.html").read_text()
    assert html.count("data:image/png;base64,") == len(list((out / "figures").glob("*.png"))) >= 1
    assert main(["compare", *paths, "--mode", "UC,RC,RTC,RTVC", "--out", str(out)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["compare", *paths, "--mode", "UC,RC", "--out", str(out), "--overwrite"]) == 2
    assert "--mode needs one value per result (4); got 2" in capsys.readouterr().err
