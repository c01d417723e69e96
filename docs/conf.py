"""Sphinx configuration of the anionmotion documentation (Markdown pages through MyST).

Build offline:  python -m sphinx -W -b html docs docs/_build/html
Needs the ``docs`` extra: pip install 'anionmotion[docs]'  (sphinx, myst-parser).
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from anionmotion import __version__  # noqa: E402

project = "anionmotion"
author = "anionmotion developers"
copyright = "anionmotion developers (MIT licence)"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",   # numpydoc-style sections in the docstrings
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["dollarmath", "amsmath", "deflist", "colon_fence"]
myst_heading_anchors = 3

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_mock_imports = ["openmm"]

html_theme = "alabaster"
html_static_path = []
html_title = f"anionmotion {__version__}"
# pages written by several authors may start below heading level 1 or jump a level
suppress_warnings = ["myst.header", "ref.python"]  # numpydoc types such as "shape (n_frames, n_atoms, 3)" are not cross-references


def _escape_bars(app, what, name, obj, options, lines):
    """Docstrings write |x| for absolute values and norms; in reST a bar starts a substitution, so escape it."""
    for i, line in enumerate(lines):
        if "|" in line:
            lines[i] = line.replace("\\|", "|").replace("|", "\\|")


def setup(app):
    app.connect("autodoc-process-docstring", _escape_bars)
