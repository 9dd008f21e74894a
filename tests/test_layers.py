"""The layering the package promises: only ``datasync`` speaks to AWS."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "datasync_multi"
AWS_LIBRARIES = ("boto3", "botocore")


def aws_imports(path: Path) -> list[str]:
    """The AWS libraries a module imports, at any depth of its code."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        found += [n for n in names if n.split(".")[0] in AWS_LIBRARIES]
    return found


def test_only_the_datasync_module_imports_boto3_or_botocore():
    importers = {p.name for p in PACKAGE.glob("*.py") if aws_imports(p)}
    assert importers == {"datasync.py"}


def test_the_core_and_the_ledger_load_without_boto3():
    """Imports are transitive: a pure module that imports ``datasync`` would load boto3 too."""
    code = ("import sys\nimport datasync_multi.decisions, datasync_multi.dispatch_rules, datasync_multi.ledger, "
            "datasync_multi.assign, datasync_multi.report, "
            "datasync_multi.plan, datasync_multi.records\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
