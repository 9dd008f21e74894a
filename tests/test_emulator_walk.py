"""The emulator's walk of a source (``transfer.plan``) selects exactly what its filter rules
select path by path (``FilterSet.selects``), under every reading: the walk prunes what no
include can reach and checks each entry against the includes alone, and neither shortcut
may change what a transfer copies."""

from __future__ import annotations

import itertools
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.filters import FilterSet, Reading
from emulator.transfer import plan
from profiles import examples
from trees import FAMILY, FLAT, NAME, TREE, build, entries

READINGS = [Reading(match, star, precedence) for match, star, precedence in
            itertools.product(("component", "prefix"), ("crosses", "stops"), ("exclude", "include"))]


SHARE = st.dictionaries(NAME, st.one_of(TREE, FLAT, FAMILY), min_size=1, max_size=5)
"""Trees within the path length a walk by path can open (the deep chains are the scan's tests)."""


def patterns_of(paths: list[str], draw) -> list[str]:
    """Include or exclude patterns as the planner and a person write them: a path as it is,
    with a trailing slash, cut short and starred."""
    out = []
    for path in draw(st.lists(st.sampled_from(paths), max_size=6)) if paths else []:
        style = draw(st.sampled_from(("exact", "slash", "star", "cut-star")))
        if style == "slash":
            path += "/"
        elif style == "star":
            path += "*"
        elif style == "cut-star":
            path = path[:draw(st.integers(1, len(path)))] + "*"
        out.append(path)
    return out


@settings(max_examples=examples(60), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(spec=SHARE, data=st.data())
def test_the_walk_selects_what_the_rules_select_path_by_path(spec, data):
    with tempfile.TemporaryDirectory() as root:
        build(root, spec)
        every = [path for path, _, _ in entries(root)]
        includes = [p for p in patterns_of(every, data.draw) if "*" not in p[:-1]]  # what DataSync accepts
        excludes = patterns_of(every, data.draw) if data.draw(st.booleans()) else []
        rules_in = [{"FilterType": "SIMPLE_PATTERN", "Value": "|".join(includes)}] if includes else None
        rules_out = [{"FilterType": "SIMPLE_PATTERN", "Value": "|".join(excludes)}] if excludes else None
        for reading in READINGS:
            filters = FilterSet.from_rules(rules_in, rules_out, reading)
            walked = {e.rel for e in plan(root, filters)}
            assert walked == {path for path in every if filters.selects(path)}, (reading, includes, excludes)
            assert all(os.path.lexists(root + rel) for rel in walked)
