"""The layering the package promises: only ``datasync`` speaks to AWS. And the tests' own:
a test module imports helper modules, never another test module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "datasync_multi"
AWS_LIBRARIES = ("boto3", "botocore")


def absolute_imports(path: Path) -> list[str]:
    """The modules a module imports by absolute name, at any depth of its code."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        found += [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
    return found


def aws_imports(path: Path) -> list[str]:
    """The AWS libraries a module imports, at any depth of its code."""
    return [n for n in absolute_imports(path) if n.split(".")[0] in AWS_LIBRARIES]


def test_only_the_datasync_module_imports_boto3_or_botocore():
    importers = {p.name for p in PACKAGE.glob("*.py") if aws_imports(p)}
    assert importers == {"datasync.py"}


def test_the_core_and_the_ledger_load_without_boto3():
    """Imports are transitive: a pure module that imports ``datasync`` would load boto3 too."""
    code = ("import sys\nimport datasync_multi.decisions, datasync_multi.dispatch_rules, datasync_multi.ledger, "
            "datasync_multi.assign, datasync_multi.report, datasync_multi.picture, datasync_multi.timeline, "
            "datasync_multi.plan, datasync_multi.records, datasync_multi.live, datasync_multi.journal, "
            "datasync_multi.ordered, datasync_multi.audit\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_test_module_imports_another():
    """What several test modules share lives in a helper module (sites, commands, trees, arns,
    calls, profiles, conftest's fixtures): a test module imported by another runs twice
    and ties the two together."""
    test_modules = {p.stem for p in TESTS.glob("test_*.py")}
    assert len(test_modules) > 1
    found = {p.name: sorted({n.split(".")[0] for n in absolute_imports(p)} & test_modules) for p in TESTS.glob("*.py")}
    assert {name: imported for name, imported in found.items() if imported} == {}
