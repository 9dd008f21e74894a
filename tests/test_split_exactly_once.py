"""Every file, symlink and empty directory in scope is selected by exactly one task."""

from __future__ import annotations

import itertools
import random
import tempfile

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasync_multi.filters import MAX_FILTER_CHARS, filter_value, is_nameable, pattern_for, selects
from datasync_multi.manifest import read_manifest
from datasync_multi.plan import make_plan
from datasync_multi.scan import scan
from trees import TOP, build, entries

AGENTS = [f"arn:aws:datasync:us-east-1:111122223333:agent/agent-{i:017x}" for i in range(1, 9)]


def selecting_tasks(plan, path):
    return [t.name for t in plan.tasks if selects(path, t.includes, t.excludes)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=TOP, data=st.data())
def test_every_entry_in_scope_is_selected_by_exactly_one_task(spec, data):
    with tempfile.TemporaryDirectory() as mount:
        build(mount, spec)
        tops = sorted(n for n, (kind, _) in spec.items() if kind == "dir" and is_nameable(n))
        if tops and data.draw(st.booleans(), label="subset"):
            chosen = data.draw(st.lists(st.sampled_from(tops), min_size=1, unique=True), label="manifest")
        else:
            chosen = ["/"]
        with open(f"{mount}.manifest", "w", encoding="utf-8") as fh:
            fh.write("# generated\n\n" + "\n".join("/" + c.lstrip("/") for c in chosen) + "\n")
        manifest = read_manifest(f"{mount}.manifest", mount)
        tree = scan(mount, manifest.entries, workers=data.draw(st.sampled_from([1, 4]), label="workers"))
        limit = data.draw(st.sampled_from([60, MAX_FILTER_CHARS]), label="limit")
        plan = make_plan(tree, AGENTS[:data.draw(st.integers(1, 8), label="agents")], task_name="T_",
                         per_file_cost=data.draw(st.sampled_from([0, 1, 1000]), label="per_file_cost"),
                         max_depth=data.draw(st.integers(0, 4), label="max_depth"),
                         filter_limit=limit, group_from=data.draw(st.sampled_from([1, 64]), label="group_from"))

        roots = ["/" + r if r else "" for r in manifest.entries]
        for path, kind in entries(mount):
            in_scope = any(r == "" or path == r or path.startswith(r + "/") for r in roots)
            owners = selecting_tasks(plan, path)
            if not in_scope:
                assert owners == [], (path, owners)
            elif kind != "dir":  # files, symlinks and empty directories: exactly once
                assert len(owners) == 1, (path, kind, owners, plan.to_json()["tasks"])

        for t in plan.tasks:
            assert t.includes, t.name
            roots_length = len(filter_value([pattern_for(r) for r in manifest.entries]))
            assert len(filter_value(t.includes)) <= max(limit, roots_length)
            assert len(filter_value(t.excludes)) <= limit
            for pattern in t.includes + t.excludes:
                assert "*" not in pattern[:-1], pattern  # a '*' only ever ends a pattern
                names = pattern.rstrip("*").strip("/").split("/")
                assert all(is_nameable(n) for n in names if n), pattern
        planned_files = sum(t.files for t in plan.tasks)
        assert planned_files == sum(1 for p, k in entries(mount) if k in ("file", "link")
                                    and any(r == "" or p.startswith(r + "/") for r in roots))


@pytest.mark.parametrize("agents", [3, 5, 8])
@pytest.mark.parametrize("seed", [1, 2])
def test_prefix_groups_are_disjoint_where_names_prefix_each_other(tmp_path, agents, seed):
    """Every name over {a, b} up to length 4 is a directory: 'ab' is a prefix of 'aba',
    'abab' of nothing, and a few are heavy enough to be cut off on their own."""
    rng = random.Random(seed)
    names = ["".join(p) for n in range(1, 5) for p in itertools.product("ab", repeat=n)]
    for name in names:
        (tmp_path / "wide" / name).mkdir(parents=True)
        size = 20_000 if rng.random() < 0.1 else rng.randint(0, 300)
        (tmp_path / "wide" / name / "f").write_bytes(b"x" * size)
    (tmp_path / "wide" / "abloose").write_bytes(b"x" * 10)  # a loose file a group prefix matches
    tree = scan(str(tmp_path), ("wide",))
    plan = make_plan(tree, AGENTS[:agents], task_name="T_", per_file_cost=0, max_depth=3, group_from=1)
    assert agents < 5 or any(u.kind == "group" for t in plan.tasks for u in t.units)
    for path, kind in entries(str(tmp_path)):
        if kind != "dir" and path.startswith("/wide/"):
            assert len(selecting_tasks(plan, path)) == 1, (path, [(t.includes, t.excludes) for t in plan.tasks])
