"""The plan file read back as a Plan: a round trip, and a clear refusal of any other version."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arns
from datasync_multi.errors import UserError
from datasync_multi.plan import DYNAMIC_PLAN_VERSION, PLAN_VERSION, Plan, TaskPlan, make_plan
from datasync_multi.scan import scan
from datasync_multi.split import DIR, GROUP, Unit
from profiles import examples

AGENTS = arns.AGENTS[:4]

units = st.builds(Unit, pattern=st.text(min_size=1, max_size=20).map(lambda s: "/" + s),
                  kind=st.sampled_from([DIR, GROUP]), bytes=st.integers(0, 2**50), files=st.integers(0, 10**8),
                  dirs=st.integers(0, 10**7), cost=st.integers(0, 2**60))
tasks = st.builds(TaskPlan, agent_arn=st.sampled_from(AGENTS), name=st.text(min_size=1, max_size=30),
                  units=st.lists(units, max_size=5).map(tuple))
plans = st.builds(Plan, tasks=st.lists(tasks, max_size=4).map(tuple),
                  agents=st.lists(st.sampled_from(AGENTS), min_size=1, max_size=4, unique=True).map(tuple),
                  roots=st.lists(st.text(max_size=12).filter(lambda r: not r.startswith("/")), max_size=3).map(tuple),
                  per_file_cost=st.integers(0, 2**20), max_depth=st.none() | st.integers(0, 9),
                  lower_bound=st.integers(0, 2**60), threshold=st.integers(1, 2**60),
                  warnings=st.lists(st.text(max_size=40), max_size=3).map(tuple))


@settings(max_examples=examples(60))
@given(plans)
def test_any_plan_survives_the_plan_file(plan):
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


@pytest.mark.parametrize("roots,agents,kinds", [(("",), 1, {DIR}), (("files", "images"), 1, {DIR}),
                                                (("",), 4, {GROUP}), (("files", "images"), 4, {GROUP})])
def test_a_planned_share_survives_the_plan_file(tmp_path, roots, agents, kinds):
    for i in range(40):
        for top in ("files", "images"):
            (tmp_path / top / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
            (tmp_path / top / f"d{i % 7}" / f"f{i}").write_bytes(b"x" * (i * 100))
    plan = make_plan(scan(str(tmp_path), roots), AGENTS[:agents], task_name="T_", per_file_cost=0)
    assert {u.kind for t in plan.tasks for u in t.units} == kinds and len(plan.tasks) == agents
    again = Plan.from_json(json.loads(json.dumps(plan.to_json())))
    assert again == plan and again.to_json() == plan.to_json()


def plan_file(**changes) -> dict:
    unit = Unit("/a/", DIR, 10, 1, 1, 20)
    data = Plan((TaskPlan((unit,), agent_arn=AGENTS[0], name="T_a"),), (AGENTS[0],), ("a",), 0, None, 20, 20).to_json()
    data.update(changes)
    return data


@pytest.mark.parametrize("data,message", [
    (plan_file(version=1), "written by an older version of the scheduler (plan version 1, this one reads versions 2 "
                           "and 3); rerun the scheduler"),
    (plan_file(version=DYNAMIC_PLAN_VERSION + 1), "plan version 4 is not one this version reads"),
    (plan_file(version=None), "plan version None is not one this version reads"),
    ([], "not a plan file"),
    ({k: v for k, v in plan_file().items() if k != "agents"}, "not a plan this version wrote: no 'agents'"),
    (plan_file(roots=["a"]), "root 'a' does not start with '/'"),
])
def test_a_plan_file_of_another_version_or_shape_is_one_clear_error(data, message):
    with pytest.raises(UserError) as err:
        Plan.from_json(data)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("change,message", [
    ({"excludes": ["/a/b"]}, "has excludes"),
    ({"includes": ["/b/"]}, "includes are not its units' patterns"),
    ({"units": [{"pattern": "/a/", "kind": "file", "bytes": 1, "files": 1, "dirs": 0, "cost": 1}]},
     "unit kind 'file'"),
])
def test_a_task_the_scheduler_would_not_have_written_is_refused(change, message):
    data = plan_file()
    data["tasks"][0].update(change)
    with pytest.raises(UserError, match=message):
        Plan.from_json(data)


@pytest.mark.parametrize("queue_depth", [1, 2])
def test_a_dynamic_plan_survives_the_plan_file_and_a_static_one_keeps_version_2(tmp_path, queue_depth):
    for i in range(60):
        (tmp_path / f"d{i % 9}").mkdir(exist_ok=True)
        (tmp_path / f"d{i % 9}" / f"f{i}").write_bytes(b"x" * (i * 100))
    tree = scan(str(tmp_path), ("",))
    static = make_plan(tree, AGENTS[:2], task_name="T_", per_file_cost=0)
    assert static.to_json()["version"] == PLAN_VERSION and "chunks" not in static.to_json()
    plan = make_plan(tree, AGENTS[:2], task_name="T_", per_file_cost=0, chunks_per_agent=3, queue_depth=queue_depth)
    data = plan.to_json()
    assert data["version"] == DYNAMIC_PLAN_VERSION and len(data["chunks"]) == 6
    assert [t["name"] for t in data["tasks"]] == [n for a in AGENTS[:2] for n in
                                                  ["T_" + a.rsplit("/", 1)[-1], "T_" + a.rsplit("/", 1)[-1] + "_q2"]
                                                  [:queue_depth]]
    costs = [c["cost"] for c in data["chunks"]]
    assert costs == sorted(costs, reverse=True) and [c["index"] for c in data["chunks"]] == list(range(6))
    assert sum(costs) == static.total_cost and plan.total_files == static.total_files
    again = Plan.from_json(json.loads(json.dumps(data)))
    assert again == plan and again.to_json() == data


def test_a_chunk_whose_includes_are_not_its_units_is_refused():
    data = plan_file(version=DYNAMIC_PLAN_VERSION, chunks=[{"index": 0, "includes": ["/b/"], "units": [
        {"pattern": "/a/", "kind": DIR, "bytes": 1, "files": 1, "dirs": 0, "cost": 1}]}])
    with pytest.raises(UserError, match="chunk 0's includes are not its units' patterns"):
        Plan.from_json(data)
