"""The runbook's IAM policy for the VM against the DataSync calls the code makes: every call
allowed, nothing else allowed (docs/aws-runbook.md, "The IAM policy for the VM").

The calls are read from the source, not from a run: every place in ``datasync_multi`` that
reaches a client by an operation's method name (``client.describe_task``,
``_guarded(client).create_task``, a method taken without being called), and every
``get_paginator("<operation>")``. The method names are botocore's own for DataSync's
operations (``botocore.xform_name`` over the service model's operation names, which is how
boto3 names a client's methods), so a call of any operation is seen, whatever the operation."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import botocore
import botocore.session
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "datasync_multi"
RUNBOOK = ROOT / "docs" / "aws-runbook.md"
MARKED_BLOCK = re.compile(r"<!-- policy: ([\w-]+) -->\s*```json\n(.*?)```", re.S)
DYNAMIC = ("_make_api_call", "_PY_TO_OP_NAME")
"""botocore's ways to reach an operation without its method name: refused, rather than a call missed
(as is ``getattr`` on anything named like a client)."""
ENHANCED_ONLY = {"iam:CreateServiceLinkedRole"}
"""What CreateTask needs beside datasync:CreateTask for an Enhanced mode task (the user guide's
"choosing a task mode"; DataSync creates its service-linked role AWSServiceRoleForDataSync)."""


S3_ACTIONS = {"ListObjectsV2": "s3:ListBucket", "HeadObject": "s3:GetObject"}
"""The audit's S3 operations and the IAM action each needs (the Service Authorization Reference:
S3's actions are not named after its operations). An S3 call not listed here fails the test."""


def operations() -> dict[str, str]:
    """boto3's method name -> the operation's name, DataSync's (its IAM action's name, e.g.
    list_tasks -> ListTasks) or S3's as ``s3:<operation>`` (the audit's reads). No method name
    is both services' (checked)."""
    session = botocore.session.get_session()
    datasync = {botocore.xform_name(op): op for op in session.get_service_model("datasync").operation_names}
    s3 = {botocore.xform_name(op): f"s3:{op}" for op in session.get_service_model("s3").operation_names}
    assert not set(datasync) & set(s3)
    return {**s3, **datasync}


def calls_in(source: str, where: str) -> dict[str, list[str]]:
    """The DataSync operations a module's code reaches: operation -> where (file:line)."""
    ops = operations()
    tree = ast.parse(source, where)
    modules = {(a.asname or a.name).split(".")[0] for node in ast.walk(tree)
               if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
    found: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ops:
            if isinstance(node.value, ast.Name) and node.value.id in modules:
                continue  # ds.list_tasks(client): our wrapper, whose own body is read too
            found.setdefault(ops[node.attr], []).append(f"{where}:{node.lineno}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get_paginator":
            arg = node.args[0] if node.args else None
            assert isinstance(arg, ast.Constant) and arg.value in ops, \
                f"{where}:{node.lineno}: get_paginator with an argument this test cannot read"
            found.setdefault(ops[arg.value], []).append(f"{where}:{node.lineno}")
        assert not (isinstance(node, ast.Attribute) and node.attr in DYNAMIC), \
            f"{where}:{node.lineno}: {node.attr} could reach an operation this test cannot see"
        assert not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                    and "client" in ast.unparse(node.args[0])), \
            f"{where}:{node.lineno}: getattr on a client could reach an operation this test cannot see"
    return found


def code_calls() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        for op, places in calls_in(path.read_text(), path.relative_to(ROOT).as_posix()).items():
            found.setdefault(op, []).extend(places)
    return found


def needed_actions(calls: dict[str, list[str]]) -> set[str]:
    """The DataSync IAM actions the calls need: each operation's own, and datasync:TagResource
    for an operation that takes Tags (CreateTask, CreateLocationNfs, StartTaskExecution: the
    user guide's "permissions for tagging during creation" asks for it when tags are given, and
    ours always give them)."""
    model = botocore.session.get_session().get_service_model("datasync")
    datasync = [op for op in calls if not op.startswith("s3:")]
    actions = {f"datasync:{op}" for op in datasync}
    if any("Tags" in model.operation_model(op).input_shape.members for op in datasync):
        actions.add("datasync:TagResource")
    return actions


def needed_s3_actions(calls: dict[str, list[str]]) -> set[str]:
    """The S3 IAM actions the audit's calls need."""
    ops = [op.removeprefix("s3:") for op in calls if op.startswith("s3:")]
    unknown = [op for op in ops if op not in S3_ACTIONS]
    assert not unknown, f"an S3 call whose IAM action this test does not know: {unknown}"
    return {S3_ACTIONS[op] for op in ops}


def policies(text: str) -> dict[str, dict]:
    """The runbook's policy blocks, by the name of their marker (``<!-- policy: NAME -->``)."""
    return {name: json.loads(body) for name, body in MARKED_BLOCK.findall(text)}


def allowed(policy: dict) -> set[str]:
    """The actions a policy allows. Only plain Allow statements with listed actions are read:
    anything this test could not check exactly (Deny, NotAction, a wildcard) fails it."""
    actions: set[str] = set()
    for st in policy["Statement"]:
        assert st.get("Effect") == "Allow" and "NotAction" not in st, st
        listed = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        assert not any("*" in a or "?" in a for a in listed), f"a wildcard action cannot be checked: {listed}"
        actions |= set(listed)
    return actions


def check(calls: dict[str, list[str]], blocks: dict[str, dict]) -> list[str]:
    """What is wrong with the policy against the calls, in words (nothing when it fits)."""
    vm = allowed(blocks["vm"])
    enhanced = allowed(blocks["vm-enhanced"])
    needed = needed_actions(calls)
    problems = [f"the policy misses {a} (called at {', '.join(calls.get(a.split(':')[1], ['Tags on create']))})"
                for a in sorted(needed - vm)]
    problems += [f"the policy allows {a}, which the code never calls" for a in sorted(vm - needed)]
    if enhanced != ENHANCED_ONLY:
        problems.append(f"the Enhanced mode statement allows {sorted(enhanced)}, not {sorted(ENHANCED_ONLY)}")
    audit, reads = allowed(blocks["audit"]), needed_s3_actions(calls)
    problems += [f"the audit's policy misses {a}" for a in sorted(reads - audit)]
    problems += [f"the audit's policy allows {a}, which the code never calls" for a in sorted(audit - reads)]
    return problems


def test_the_runbook_policy_allows_exactly_the_datasync_calls_the_code_makes():
    blocks = policies(RUNBOOK.read_text())
    assert set(blocks) == {"vm", "vm-enhanced", "audit"}
    assert check(code_calls(), blocks) == []


def test_the_policy_passes_no_role_and_scopes_the_service_linked_role():
    """Our code creates no S3 location, so it passes no role: iam:PassRole is nowhere. The one
    IAM action (Enhanced mode) may create DataSync's own service-linked role and nothing else."""
    text = RUNBOOK.read_text()
    blocks = policies(text)
    assert "PassRole" not in json.dumps(blocks)
    (statement,) = blocks["vm-enhanced"]["Statement"]
    assert statement["Resource"].endswith(":role/aws-service-role/datasync.amazonaws.com/AWSServiceRoleForDataSync")
    assert statement["Condition"] == {"StringEquals": {"iam:AWSServiceName": "datasync.amazonaws.com"}}


def test_a_call_added_to_the_code_without_the_policy_is_caught():
    """The check can fail: a module that makes one more call (taken as a method, or through a
    paginator) than the policy allows, and a policy that allows one the code does not make."""
    blocks = policies(RUNBOOK.read_text())
    calls = code_calls()
    extra = calls_in("def forget(client, arn):\n    client.untag_resource(ResourceArn=arn, Keys=['k'])\n", "new.py")
    assert check({**calls, **extra}, blocks) == [
        "the policy misses datasync:UntagResource (called at new.py:2)"]
    fewer = {op: places for op, places in calls.items() if op != "ListAgents"}
    assert check(fewer, blocks) == ["the policy allows datasync:ListAgents, which the code never calls"]
    paged = calls_in("def pages(client):\n    return client.get_paginator('list_agents').paginate()\n", "new.py")
    assert check({**fewer, **paged}, blocks) == []
    for dynamic in ("getattr(client, name)(**kw)", "client._make_api_call(name, kw)"):
        with pytest.raises(AssertionError, match="cannot see"):
            calls_in(f"def call(client, name, kw):\n    return {dynamic}\n", "new.py")
