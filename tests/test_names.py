"""The name histogram: exact counts, disjoint keys that cover every name, bounded memory."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from datasync_multi.names import BUCKET, NameCount, histogram, refine
from profiles import examples

NAMES = st.lists(st.text(alphabet="ab1.|é\U0001f600\U0010ffff", min_size=1, max_size=7), min_size=1, max_size=400,
                unique=True)


def owner(counts: list[NameCount], name: str) -> list[str]:
    """The keys a name falls under: its own exact key, or a bucket whose stem it extends."""
    return [c.key for c in counts if (c.key == name) or (c.is_bucket and name.startswith(c.stem)
                                                          and len(name) > len(c.stem))]


@settings(max_examples=examples(200))
@given(names=NAMES, budget=st.sampled_from([2, 3, 8, 64, 4096]), data=st.data())
def test_every_name_falls_under_exactly_one_key_and_counts_are_exact(names, budget, data):
    sizes = {n: data.draw(st.integers(0, 1000), label=n) for n in names}
    counts = histogram(((n, sizes[n]) for n in names), budget)
    assert [c.key for c in counts] == sorted(c.key for c in counts)
    for name in names:
        assert len(owner(counts, name)) == 1, (name, counts)
    for c in counts:
        members = [n for n in names if owner([c], n)]
        assert (c.files, c.bytes) == (len(members), sum(sizes[n] for n in members))
    distinct_first = len({n[0] for n in names})
    assert len(counts) <= max(budget, 2 * distinct_first)  # at the floor: a name and a bucket per first character

    refined = refine(counts, lambda: iter((n, sizes[n]) for n in names), lambda c: c.files / 3, budget)
    for name in names:
        assert len(owner(refined, name)) == 1, (name, refined)
    assert sum(c.files for c in refined) == len(names) and sum(c.bytes for c in refined) == sum(sizes.values())


def test_a_flat_directory_of_sequential_names_resolves_to_even_buckets():
    names = [(f"msg{i:07d}", 1) for i in range(200_000)]
    counts = histogram(iter(names), budget=1024)
    assert len(counts) <= 1024 and max(c.files for c in counts) <= 2_000
    finer = refine(counts, lambda: iter(names), lambda c: c.files / 100, budget=1024)
    assert max(c.files for c in finer) <= 100 and sum(c.files for c in finer) == 200_000
    assert len(finer) <= 200_000 // 100 * 4 * 2  # bounded by the cut, not by the names


def test_bucket_keys_sort_between_a_name_and_its_extensions():
    assert "ab" < "ab" + BUCKET < "ab " < "aba"
