import pytest

from datasync_multi.filters import COMPONENT, READINGS, filter_value, is_nameable, pattern_matches, selects, split_value

PREFIX = next(r for r in READINGS if r.matching == "prefix")


@pytest.mark.parametrize("pattern,path,component,prefix", [
    ("/dir", "/dir", True, True), ("/dir", "/dir/x/y", True, True), ("/dir/", "/dir/x", True, True),
    ("/dir", "/dir2", False, True), ("/dir/", "/dir2", False, False), ("/dir/", "/dir", True, False),
    ("/dir", "/di", False, False), ("/*", "/anything/at/all", True, True), ("/a b", "/a b/c", True, True),
    ("/d/ab*", "/d/abc/x", True, True), ("/d/ab*", "/d/a", False, False), ("/d/ab*", "/d/ab", True, True),
])
def test_pattern_matches_under_each_reading_of_a_bare_path(pattern, path, component, prefix):
    assert pattern_matches(pattern, path, COMPONENT) is component
    assert pattern_matches(pattern, path, PREFIX) is prefix


def test_star_only_at_the_end():
    with pytest.raises(ValueError):
        pattern_matches("*/tmp", "/a/tmp")


def test_precedence_decides_a_path_matching_both_and_no_include_means_everything():
    for reading in READINGS:
        assert selects("/x", [], [], reading) and not selects("/x", [], ["/x"], reading)
        assert selects("/a/b", ["/a"], ["/a/b"], reading) is (reading.precedence == "include")


@pytest.mark.parametrize("name,ok", [("plain", True), (".hidden", True), ("with space", True), ("日本", True),
                                     ("ends in space ", True), ("dot.", True),
                                     ("a|b", False), ("st*r", False), ("back\\slash", False),
                                     ("line\nbreak", False), ("bad\udcff", False), ("", False)])
def test_names_a_pattern_can_carry(name, ok):
    assert is_nameable(name) is ok


def test_patterns_round_trip_through_a_filter_value():
    pats = ["/*", "/a/b/", "/c*"]
    assert split_value(filter_value(pats)) == pats
