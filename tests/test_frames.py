"""regdata.frames is the one frame-schema module: every schema is declared there and nowhere else."""

from __future__ import annotations

import ast
from pathlib import Path

import regdata.analysis.fleet
import regdata.analysis.freshness
import regdata.analysis.snapshots
import regdata.analysis.versions
import regdata.client.tag_details
import regdata.frames
import regdata.instrument.requestlog
import regdata.instrument.summary
from regdata import frames

ROOT = Path(regdata.frames.__file__).parent


def test_every_schema_is_declared_in_frames_only() -> None:
    declared = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.AnnAssign) and ast.unparse(node.annotation) == "Schema":
                declared.append((str(path.relative_to(ROOT)), ast.unparse(node.target)))
    elsewhere = [d for d in declared if d[0] != "frames.py"]
    assert elsewhere == []
    assert len(declared) >= 17  # images, history, requests and the 14 that lived elsewhere


def test_the_modules_use_the_schemas_of_frames() -> None:
    for module, names in (
        (regdata.client.tag_details, ["TAG_DETAILS"]),
        (regdata.analysis.versions, ["VERSIONS"]),
        (regdata.analysis.freshness, ["NEWEST", "CADENCE", "CADENCE_SUMMARY", "SHARED", "AGES", "CHANGES"]),
        (regdata.analysis.fleet, ["FLEET", "FRESHNESS", "STATUSES"]),
        (regdata.analysis.snapshots, ["DIFF", "DIFF_CHANGES"]),
        (regdata.instrument.requestlog, ["REQUEST_LOG", "LIMITER_EVENTS"]),
        (regdata.instrument.summary, ["SUMMARY"]),
    ):
        for name in names:
            assert getattr(module, name) is getattr(frames, name), f"{module.__name__}.{name}"
            assert name in frames.__all__
