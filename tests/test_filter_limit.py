"""No filter value passes DataSync's 102,400 limit counted the strict way, in UTF-8 bytes:
names of emoji or other astral characters take four bytes each, so a count of code points
would let a value through at up to four times the limit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arns
from datasync_multi.errors import UserError
from datasync_multi.filters import MAX_FILTER_BYTES, filter_value, value_bytes
from datasync_multi.plan import make_plan
from datasync_multi.scan import Dir, Tree, aggregate
from profiles import examples
from trees import EMOJI, NFC_E, TOP_CODE_POINT

AGENTS = arns.AGENTS[:8]

LETTERS = ["a", "e", NFC_E, "\u0301", "日", EMOJI, TOP_CODE_POINT]
"""One to four UTF-8 bytes a code point; 'é' composed, and decomposed as 'e' + U+0301."""


def memory_tree(roots: list[str], loose: list[str]) -> Tree:
    """Manifest directories ``roots`` of one file each, and ``flat`` of the files ``loose`` if any."""
    dirs = {"": Dir()}
    files = {r: ["f"] for r in roots} | ({"flat": loose} if loose else {})
    for rel, names in files.items():
        dirs[""].children += (rel,)
        dirs[rel] = Dir(own_files=len(names), bytes=100 * len(names))
    tree = Tree(dirs, tuple(files), lambda rel: iter((name, 100) for name in files.get(rel, ())), largest_file=100)
    aggregate(tree)
    return tree


def value_lengths(plan) -> list[int]:
    return [value_bytes(filter_value(s.includes)) for s in plan.scopes]


@settings(max_examples=examples(400))
@given(roots=st.lists(st.text(LETTERS, min_size=1, max_size=12).map(lambda s: "r" + s), min_size=1, max_size=60,
                      unique=True),
       loose=st.lists(st.text(LETTERS, min_size=1, max_size=8), max_size=200, unique=True),
       agents=st.integers(1, 4), chunks_per_agent=st.sampled_from([1, 3]), fill=st.floats(0.02, 1.5),
       per_file_cost=st.sampled_from([0, 1000]))
def test_no_filter_value_passes_the_limit_in_utf8_bytes(roots, loose, agents, chunks_per_agent, fill, per_file_cost):
    """``fill``: the limit as a share of one value holding every manifest entry, so that it binds."""
    tree = memory_tree(roots, loose)
    whole = value_bytes(filter_value([f"/{r}/" for r in tree.roots]))
    limit = max(8, int(fill * whole))
    try:
        plan = make_plan(tree, AGENTS[:agents], task_name="T_", filter_limit=limit, per_file_cost=per_file_cost,
                         chunks_per_agent=chunks_per_agent)
    except UserError as err:
        assert whole > limit  # refused only when the manifest's entries, each whole, cannot share one filter
        assert "UTF-8 bytes" in str(err)
        return
    assert max(value_lengths(plan)) <= limit
    assert [s.include_bytes for s in plan.scopes] == value_lengths(plan)
    assert plan.total_files == len(roots) + len(loose)


def test_entries_of_emoji_names_fit_the_limit_in_bytes_not_code_points():
    """600 entries of 50 emoji each: 33,600 code points in one filter, but 123,600 UTF-8
    bytes. One agent cannot carry them (one line, no traceback); two share them."""
    tree = memory_tree([EMOJI * 50 + f"{i:03d}" for i in range(600)], [])
    with pytest.raises(UserError, match=r"longer include filters than 1 agent\(s\) can carry \(102,400 UTF-8 bytes"):
        make_plan(tree, AGENTS[:1], task_name="T_")
    plan = make_plan(tree, AGENTS[:2], task_name="T_")
    assert len(plan.tasks) == 2 and max(value_lengths(plan)) <= MAX_FILTER_BYTES
    assert max(t.include_chars for t in plan.tasks) < MAX_FILTER_BYTES / 3  # the old count would have let one through
    assert plan.to_json()["tasks"][0]["include_bytes"] == plan.tasks[0].include_bytes
