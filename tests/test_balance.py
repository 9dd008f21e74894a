"""On a skewed share the heaviest task comes within 5% of the lower bound, deterministically."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasync_multi.plan import make_plan
from trees import skewed_tree

AGENTS = [f"arn:aws:datasync:us-east-1:111122223333:agent/agent-{i:017x}" for i in range(1, 33)]


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), agents=st.sampled_from([4, 6, 8, 12, 16]),
       per_file_cost=st.sampled_from([0, 512 * 1024]))
def test_heaviest_task_within_five_percent_of_the_lower_bound(seed, agents, per_file_cost):
    tree = skewed_tree(seed)
    plan = make_plan(tree, AGENTS[:agents], task_name="T_", per_file_cost=per_file_cost, max_depth=6)
    share = plan.total_cost / agents
    assert plan.lower_bound >= share
    assert plan.max_cost <= 1.05 * plan.lower_bound, (plan.balance, plan.warnings)
    assert sum(t.cost for t in plan.tasks) == plan.total_cost


def test_the_same_tree_gives_the_same_plan():
    first = make_plan(skewed_tree(7), AGENTS[:8], task_name="T_")
    second = make_plan(skewed_tree(7), list(reversed(AGENTS[:8])), task_name="T_")
    assert json.dumps(first.to_json()) == json.dumps(second.to_json())


def test_depth_zero_keeps_manifest_entries_whole_and_says_why():
    plan = make_plan(skewed_tree(3), AGENTS[:4], task_name="T_", max_depth=0)
    assert [t.includes for t in plan.tasks] == [("/*",)]
    assert any("only 1 of 4 agents" in w for w in plan.warnings)


@pytest.mark.parametrize("agents", [1, 2])
def test_few_agents(agents):
    plan = make_plan(skewed_tree(1), AGENTS[:agents], task_name="T_")
    assert len(plan.tasks) == agents
    assert plan.balance <= 1.05
