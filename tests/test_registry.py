"""One registry of analyses: every entry has a CLI subcommand, a report stage, a docs page and an API entry."""

import importlib
import os
import re

import pytest

import anionmotion
from anionmotion.analysis.registry import ANALYSES, cli_subcommands, entry, lazy_api, stage_order
from anionmotion.cli import SUBCOMMANDS, build_parser
from anionmotion.report.stages import STAGES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _subparsers():
    p = build_parser()
    action = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def test_names_are_unique():
    assert len({e.name for e in ANALYSES}) == len(ANALYSES)
    assert len({e.cli for e in ANALYSES}) == len(ANALYSES)
    assert len(set(cli_subcommands())) == len(cli_subcommands())


@pytest.mark.parametrize("e", ANALYSES, ids=lambda e: e.name)
def test_entry_is_complete(e):
    # CLI subcommand, with the one memory budget option
    subs = _subparsers()
    assert e.cli in SUBCOMMANDS and e.cli in subs, f"no CLI subcommand {e.cli!r}"
    opts = {s for a in subs[e.cli]._actions for s in a.option_strings}
    assert "--memory" in opts, f"anionmotion {e.cli} has no --memory"
    # report stage of the same name, title and needs
    stage = {s.name: s for s in STAGES}.get(e.name)
    assert stage is not None, f"no report stage {e.name!r}"
    assert stage.title == e.title and tuple(stage.needs) == tuple(e.needs)
    # docs page exists and names the public function
    page = os.path.join(ROOT, e.docs)
    assert os.path.isfile(page), f"missing docs page {e.docs}"
    text = open(page, encoding="utf-8").read()
    assert e.api[0] in text, f"{e.docs} does not mention {e.api[0]}"
    # the streaming page explains how it stays bounded
    assert f"`{e.name}`" in open(os.path.join(ROOT, "docs", "streaming.md"), encoding="utf-8").read()
    # API names resolve lazily to the registered module
    mod = importlib.import_module(e.module)
    for name in e.api:
        assert getattr(anionmotion, name) is getattr(mod, name)
        assert name in anionmotion.__all__
    for name in e.needs:
        getattr(anionmotion, name)
    # every trajectory analysis runs on the analysis base (polyanions: identification + streamed integrity)
    if e.name != "polyanions":
        from anionmotion.analysis.base import AnalysisBase
        classes = [getattr(mod, n) for n in e.api[1:] if not n.endswith("Result")]
        assert classes and all(issubclass(c, AnalysisBase) for c in classes), e.name


def test_order_and_lookup():
    assert [s.name for s in STAGES] == stage_order()
    assert SUBCOMMANDS == cli_subcommands()
    assert SUBCOMMANDS[0] == "info"
    assert entry("reorient") is entry("reorientation")
    with pytest.raises(KeyError, match="registered"):
        entry("nonsense")
    assert set(lazy_api()) <= set(anionmotion.__all__)


def test_layering():
    """No report → cli imports; detection and the mode decomposition live in analysis/."""
    pkg = os.path.join(ROOT, "anionmotion")
    for sub in ("report", "analysis", "io", "kernels", "md"):
        for dirpath, _, files in os.walk(os.path.join(pkg, sub)):
            for f in files:
                if f.endswith(".py"):
                    text = open(os.path.join(dirpath, f), encoding="utf-8").read()
                    bad = re.findall(r"^\s*(?:from\s+(?:\.\.cli|anionmotion\.cli)|import\s+anionmotion\.cli)", text,
                                     re.M)
                    assert not bad, f"{sub}/{f} imports the CLI"
    for f in os.listdir(os.path.join(pkg, "io")):
        if f.endswith(".py"):
            text = open(os.path.join(pkg, "io", f), encoding="utf-8").read()
            assert not re.search(r"^\s*from\s+(?:\.\.trajectory|anionmotion\.trajectory)|^\s*from\s+\.\.\s+import", text,
                                 re.M), f"io/{f} imports the trajectory model (io ↔ trajectory cycle)"
    from anionmotion.analysis import detect, modes
    assert anionmotion.mode_decomposition is modes.mode_decomposition
    assert anionmotion.report.detect_cation is detect.detect_cation
