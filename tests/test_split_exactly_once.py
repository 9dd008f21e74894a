"""Every file, symlink and empty directory in scope is selected by exactly one task, under
every reading of DataSync's open filter rules, and each task carries what the plan says:
what its filters select within DataSync's path limit (past it, DataSync cannot transfer a
path, so no task claims it; it is still selected once, should DataSync count more leniently)."""

from __future__ import annotations

import itertools
import os
import random
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arns import AGENTS
from datasync_multi.errors import UserError
from datasync_multi.filters import MAX_FILTER_BYTES, READINGS, filter_value, is_nameable, value_bytes
from datasync_multi.manifest import read_manifest
from datasync_multi.plan import UNEVEN, make_plan
from datasync_multi.scan import scan
from profiles import examples
from trees import FILE, HEAVY, NAME, TOP, TOP_CODE_POINT, Selection, build, entries, selection_faults, within_limit


def named_scopes(plan) -> dict:
    """What each execution carries, by name: the tasks of a static plan, the chunks of a dynamic one."""
    if plan.dynamic:
        assert all(not t.units for t in plan.tasks)  # a dynamic plan's tasks carry nothing of their own
        return {f"chunk {c.index}": c for c in plan.chunks}
    return {t.name: t for t in plan.tasks}


def check_plan(plan, mount: str, roots: list[str]) -> None:
    """Exactly once under every reading; includes only; what each task (or chunk) claims is
    what its filters select within DataSync's path limit; what DataSync lists for it is what
    it moves."""
    everything = entries(mount)
    scopes = named_scopes(plan)
    tasks = [(name, list(t.includes)) for name, t in scopes.items()]
    bare = {w.partition(" is an empty directory")[0] for w in plan.warnings if " is an empty directory" in w}
    for reading in READINGS:
        faults = selection_faults(tasks, everything, roots, reading)
        # The one case no include can carry under a string-prefix reading: an empty listed
        # directory a sibling's name extends. The plan must say so.
        faults = [f for f in faults if not any(repr(b) in f and "selected by []" in f for b in bare)
                  or reading.matching != "prefix"]
        assert not faults, faults[:10]
    for t in scopes.values():
        for pattern in t.includes:
            assert "*" not in pattern[:-1], pattern
            assert all(is_nameable(n) for n in pattern.rstrip("*").strip("/").split("/") if n), pattern
    selected = {name: [0, 0] for name in scopes}
    selection = Selection(tasks, READINGS[0])
    for path, kind, size in everything:
        if kind in ("file", "link") and within_limit(path):
            for owner in selection.owners(path):
                selected[owner][0] += 1
                selected[owner][1] += size
    assert {name: [t.files, t.bytes] for name, t in scopes.items()} == selected
    assert plan.total_files == len(files_in_scope(everything, roots))
    far = files_in_scope(everything, roots, within=False)
    if far:
        assert any(w.startswith(f"{len(far):,} file(s)") and "past DataSync's 4,096-byte path limit" in w
                   for w in plan.warnings), plan.warnings


def files_in_scope(everything, roots: list[str], within: bool = True) -> list[tuple[str, str, int]]:
    """The files and links under the roots, within DataSync's path limit or past it."""
    return [e for e in everything if e[1] in ("file", "link") and within_limit(e[0]) == within
            and any(r == "" or e[0].startswith(r + "/") for r in roots)]


@settings(max_examples=examples(120), suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=TOP, data=st.data())
def test_every_entry_in_scope_is_selected_by_exactly_one_task_under_every_reading(spec, data):
    with tempfile.TemporaryDirectory() as mount:
        build(mount, spec)
        tops = sorted(n for n, (kind, _) in spec.items() if kind in ("dir", "flat", "deep") and is_nameable(n))
        if tops and data.draw(st.booleans(), label="subset"):
            chosen = data.draw(st.lists(st.sampled_from(tops), min_size=1, unique=True), label="manifest")
        else:
            chosen = ["/"]
        with open(f"{mount}.manifest", "w", encoding="utf-8") as fh:
            fh.write("# generated\n\n" + "\n".join("/" + c.lstrip("/") for c in chosen) + "\n")
        manifest = read_manifest(f"{mount}.manifest", mount)
        tree = scan(mount, manifest.entries, workers=data.draw(st.sampled_from([1, 4]), label="workers"))
        limit = data.draw(st.sampled_from([60, MAX_FILTER_BYTES]), label="limit")
        agents = data.draw(st.sampled_from([1, 2, 3, 5, 8, 32]), label="agents")
        chunks_per_agent = data.draw(st.sampled_from([1, 1, 4]), label="chunks_per_agent")
        try:
            plan = make_plan(tree, AGENTS[:agents], task_name="T_", chunks_per_agent=chunks_per_agent,
                             per_file_cost=data.draw(st.sampled_from([0, 1, 1000]), label="per_file_cost"),
                             max_depth=data.draw(st.sampled_from([None, 0, 1, 3]), label="max_depth"),
                             filter_limit=limit)
        except UserError:
            roots_bytes = sum(value_bytes(r) + 3 for r in manifest.entries)
            assert roots_bytes > limit  # only when the entries alone overflow one filter
            return
        roots = ["/" + r if r else "" for r in manifest.entries]
        check_plan(plan, mount, roots)
        for t in named_scopes(plan).values():
            assert value_bytes(filter_value(t.includes)) <= limit
        # a plan well above the bound says so, and why
        assert plan.balance <= 1 + UNEVEN or any("x the lower bound" in w for w in plan.warnings), plan.warnings
        far = files_in_scope(entries(mount), roots, within=False)
        assert (tree.past_limit.files, tree.past_limit.bytes) == (len(far), sum(size for _, _, size in far))


@settings(max_examples=examples(60), suppress_health_check=[HealthCheck.too_slow])
@given(names=st.dictionaries(NAME, st.one_of(FILE, HEAVY, HEAVY, st.just(("dir", {}))), min_size=2, max_size=12),
       bottom=st.integers(4080, 4096), agents=st.sampled_from([2, 3, 5]))
def test_a_directory_at_the_path_limit_cut_by_name_still_selects_what_lies_past_it_once(names, bottom, agents):
    """All the weight in one directory ``bottom`` bytes deep, whose longer names lie past
    DataSync's limit: cut by name, its groups cover those names too."""
    with tempfile.TemporaryDirectory() as mount:
        build(mount, {"deep": ("deep", (bottom, names))})
        plan = make_plan(scan(mount, ("",)), AGENTS[:agents], task_name="T_", per_file_cost=0)
        check_plan(plan, mount, [""])


def test_the_check_catches_a_pattern_that_reaches_a_sibling_held_elsewhere(tmp_path):
    """A plan with '/u1' beside a separately held '/u10/' is exactly-once only if DataSync
    matches by path component; under the string-prefix reading /u10 travels twice."""
    for name in ("u1", "u10"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_bytes(b"x")
    tasks = [("A", ["/u1"]), ("B", ["/u10/"])]
    everything = entries(str(tmp_path))
    readings = {r for r in READINGS if selection_faults(tasks, everything, [""], r)}
    assert readings == {r for r in READINGS if r.matching == "prefix"}


@pytest.mark.parametrize("agents", [3, 5, 8])
@pytest.mark.parametrize("seed", [1, 2])
def test_names_that_prefix_each_other_are_cut_exactly_once(tmp_path, agents, seed):
    """Every name over {a, b} up to length 4, as a directory or a file: 'ab' is a prefix of
    'aba', and a few are heavy enough to want a unit of their own."""
    rng = random.Random(seed)
    names = ["".join(p) for n in range(1, 5) for p in itertools.product("ab", repeat=n)]
    for name in names:
        size = 20_000 if rng.random() < 0.1 else rng.randint(0, 300)
        if rng.random() < 0.3:
            (tmp_path / "wide" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "wide" / name).write_bytes(b"x" * size)
        else:
            (tmp_path / "wide" / name).mkdir(parents=True)
            (tmp_path / "wide" / name / "f").write_bytes(b"x" * size)
    tree = scan(str(tmp_path), ("wide",))
    plan = make_plan(tree, AGENTS[:agents], task_name="T_", per_file_cost=0)
    assert any(u.kind == "group" for t in plan.tasks for u in t.units)
    check_plan(plan, str(tmp_path), ["/wide"])


def test_a_file_named_by_a_needed_prefix_is_reported_with_its_name(tmp_path):
    """'u1' is a file and 'u10' a heavy directory: no include can take u10 without u1 under
    the string-prefix reading, so they travel together and the plan says why."""
    (tmp_path / "u1").write_bytes(b"x")
    (tmp_path / "u10").mkdir()
    for i in range(4):
        (tmp_path / "u10" / f"f{i}").write_bytes(b"x" * 10_000)
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "f").write_bytes(b"x" * 10_000)
    plan = make_plan(scan(str(tmp_path), ("",)), AGENTS[:4], task_name="T_", per_file_cost=0)
    assert ["/u1*"] in [list(t.includes) for t in plan.tasks]
    assert any("'u1' is a file" in w for w in plan.warnings), plan.warnings
    check_plan(plan, str(tmp_path), [""])


def test_an_unnameable_first_character_keeps_the_directory_whole_and_says_so(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "|pipe").write_bytes(b"x")
    for name in ("a", "b", "c", "e"):
        (tmp_path / "d" / name).mkdir()
        (tmp_path / "d" / name / "f").write_bytes(b"x" * 10_000)
    plan = make_plan(scan(str(tmp_path), ("d",)), AGENTS[:4], task_name="T_", per_file_cost=0)
    assert [list(t.includes) for t in plan.tasks] == [["/d/"]]
    assert any("'|pipe' starts with a character no filter can carry" in w for w in plan.warnings), plan.warnings


def test_a_name_with_an_unnameable_character_travels_in_the_group_before_it(tmp_path):
    for name in ("ab|c", "ab*", "abz", "b", "c"):
        (tmp_path / name).write_bytes(b"x" * 1000)
    plan = make_plan(scan(str(tmp_path), ("",)), AGENTS[:5], task_name="T_", per_file_cost=0)
    patterns = sorted(p for t in plan.tasks for p in t.includes)
    assert "/ab*" in patterns and "/b*" in patterns and "/c*" in patterns
    check_plan(plan, str(tmp_path), [""])


def test_an_empty_listed_directory_is_named_exactly_when_no_sibling_extends_it(tmp_path):
    (tmp_path / "p" / "empty").mkdir(parents=True)
    (tmp_path / "p" / "lonely").mkdir()
    (tmp_path / "p" / "lonely2").mkdir()
    with open(tmp_path / "m", "w") as fh:
        fh.write("/p/empty\n/p/lonely\n")
    manifest = read_manifest(str(tmp_path / "m"), str(tmp_path))
    plan = make_plan(scan(str(tmp_path), manifest.entries), AGENTS[:2], task_name="T_")
    assert sorted(p for t in plan.tasks for p in t.includes) == ["/p/empty", "/p/lonely/"]
    assert any("/p/lonely is an empty directory" in w for w in plan.warnings)


def test_many_zero_cost_entries_spread_over_the_agents(tmp_path):
    for i in range(300):
        os.mkdir(tmp_path / f"empty{i:03d}")
    with open(tmp_path / "m", "w") as fh:
        fh.write("".join(f"/empty{i:03d}\n" for i in range(300)))
    manifest = read_manifest(str(tmp_path / "m"), str(tmp_path))
    plan = make_plan(scan(str(tmp_path), manifest.entries), AGENTS[:30], task_name="T_", per_file_cost=0)
    assert len(plan.tasks) == 30 and {len(t.units) for t in plan.tasks} == {10}


def test_entries_too_long_for_one_filter_spread_or_fail_with_one_clear_error(tmp_path):
    long = "d" * 200
    for i in range(600):
        os.mkdir(tmp_path / f"{long}{i:03d}")
    with open(tmp_path / "m", "w") as fh:
        fh.write("".join(f"/{long}{i:03d}\n" for i in range(600)))
    manifest = read_manifest(str(tmp_path / "m"), str(tmp_path))
    tree = scan(str(tmp_path), manifest.entries)
    plan = make_plan(tree, AGENTS[:2], task_name="T_", per_file_cost=0)
    assert all(t.include_bytes <= MAX_FILTER_BYTES for t in plan.tasks) and len(plan.tasks) == 2
    with pytest.raises(UserError, match="list fewer, higher directories"):
        make_plan(tree, AGENTS[:1], task_name="T_", per_file_cost=0)


def test_names_that_branch_on_the_last_code_point_are_cut_exactly_once(tmp_path):
    """U+10FFFF has no code point above it to end its branch of names at: the share plans."""
    for name in ("a", TOP_CODE_POINT):
        (tmp_path / name).write_bytes(b"x" * 1_000_000)
    plan = make_plan(scan(str(tmp_path), ("",)), AGENTS[:2], task_name="T_")
    assert sorted(t.includes for t in plan.tasks) == [("/a*",), ("/" + TOP_CODE_POINT + "*",)]
    assert plan.balance == 1.0
    check_plan(plan, str(tmp_path), [""])


def test_a_plan_that_loses_balance_to_prefixes_blocked_by_short_names_names_them(tmp_path):
    """Files a..e beside a0..a98, ..., e0..e98: under a string-prefix reading any pattern that
    selects the file 'a' also selects 'a0', so each letter is one unit and five units on four
    agents end 1.6x the bound. The plan says so, naming the units and why."""
    for letter in "abcde":
        for name in [letter, *(f"{letter}{i}" for i in range(99))]:
            (tmp_path / name).write_bytes(b"x" * 1024)
    plan = make_plan(scan(str(tmp_path), ("",)), AGENTS[:4], task_name="T_")
    check_plan(plan, str(tmp_path), [""])
    assert round(plan.balance, 2) == 1.6
    [warning] = [w for w in plan.warnings if "x the lower bound" in w]
    assert warning.startswith("the heaviest task is 1.60x the lower bound: 5 unit(s) could not be cut further")
    for letter in "abcde":
        assert f"/{letter}* (0.80x an even share): the entry '{letter}' is a file" in warning


def test_an_empty_listed_directory_named_by_a_blank_is_named_in_the_warning_whole(tmp_path):
    """The directory ' ' is empty and ' *' extends its name: the warning names '/ ', blank and all."""
    (tmp_path / " ").mkdir()
    (tmp_path / " *").mkdir()
    with open(tmp_path / "m", "w") as fh:
        fh.write("/ \n")
    plan = make_plan(scan(str(tmp_path), read_manifest(str(tmp_path / "m"), str(tmp_path)).entries), AGENTS[:1],
                     task_name="T_", per_file_cost=0)
    assert [w for w in plan.warnings if w.startswith("/  is an empty directory")], plan.warnings
    check_plan(plan, str(tmp_path), ["/ "])
