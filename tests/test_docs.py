"""The Sphinx documentation builds offline without a single warning (sphinx and myst-parser are in the test extra)."""

import os
import subprocess
import sys

import myst_parser  # noqa: F401  (the Markdown parser the build needs; in the test extra)
import pytest
import sphinx  # noqa: F401

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    out = tmp_path / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", DOCS, str(out)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(DOCS)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    pages = {os.path.splitext(f)[0] for f in os.listdir(DOCS) if f.endswith(".md")}
    built = {os.path.splitext(f)[0] for f in os.listdir(out) if f.endswith(".html")}
    assert pages <= built, f"pages not built: {sorted(pages - built)}"
    api = (out / "api.html").read_text(encoding="utf-8")
    for name in ("anionmotion.analysis.msd.msd", "anionmotion.analysis.modes.mode_decomposition",
                 "anionmotion.report.run_report"):
        assert name in api, f"{name} missing from the API page"
