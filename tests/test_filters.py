import pytest

from datasync_multi.filters import is_nameable, pattern_for, pattern_matches, selects, split_value, filter_value


@pytest.mark.parametrize("pattern,path,expected", [
    ("/dir", "/dir", True), ("/dir", "/dir/x/y", True), ("/dir/", "/dir/x", True),
    ("/dir", "/dir2", False), ("/dir", "/di", False), ("/*", "/anything/at/all", True),
    ("/a b", "/a b/c", True), ("/a", "/a|b", False),
])
def test_pattern_matches_component_by_component(pattern, path, expected):
    assert pattern_matches(pattern, path) is expected


def test_star_only_at_the_end():
    with pytest.raises(ValueError):
        pattern_matches("*/tmp", "/a/tmp")


def test_exclude_wins_and_no_include_means_everything():
    assert selects("/a/b", ["/a"], []) and not selects("/a/b", ["/a"], ["/a/b"])
    assert selects("/x", [], []) and not selects("/x", [], ["/x"])


@pytest.mark.parametrize("name,ok", [("plain", True), (".hidden", True), ("with space", True), ("日本", True),
                                     ("a|b", False), ("st*r", False), ("back\\slash", False),
                                     ("line\nbreak", False), ("bad\udcff", False), ("", False)])
def test_names_a_pattern_can_carry(name, ok):
    assert is_nameable(name) is ok


def test_patterns_round_trip_through_a_filter_value():
    pats = [pattern_for(""), pattern_for("a/b"), pattern_for("c")]
    assert pats == ["/*", "/a/b", "/c"] and split_value(filter_value(pats)) == pats
