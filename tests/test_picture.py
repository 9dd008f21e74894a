"""The picture of a run, drawn from plain values without a server or a browser: every name
escaped, bars that overlap in time on tracks of their own, each start coloured by where it
stands, the progress file bounded, and a page that cannot be written never stopping the
watcher. (Chromium renders it in test_e2e_picture.)"""

from __future__ import annotations

import json
import logging

from hypothesis import example, given, settings
from hypothesis import strategies as st

from browser import start_tags
from datasync_multi.ledger import Ledger
from datasync_multi.page import Page, progress_file, read_samples, record_sample
from datasync_multi.picture import Axis, Bar, BarState, Lane, Sample, Scene, pack, render
from datasync_multi.records import Execution
from datasync_multi.report import CheckResult
from datasync_multi.timeline import bar_state
from profiles import examples

NOW = 1_800_000_000.0
TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "div", "b", "span", "i", "svg", "g",
        "rect", "line", "text", "polyline", "footer"}
"""Every tag the page is made of: a name that smuggled in one more was not escaped."""


def parsed(page: str) -> tuple[set[str], list[dict], list[dict]]:
    """The page's tags, its lanes' attributes and its bars', as an HTML parser reads them."""
    tags = start_tags(page)
    return ({tag for tag, _ in tags}, [attrs for tag, attrs in tags if attrs.get("class") == "lane"],
            [attrs for tag, attrs in tags if attrs.get("class") == "bar"])


def scene(lanes, title="run", summary="scopes: 1 done", history=()) -> Scene:
    return Scene(title, NOW, tuple(lanes), tuple(history), 10, 20, 30.0, False, summary, refresh=60)


names = st.text(st.sampled_from("<>&\"'=/ ") | st.characters(), min_size=1, max_size=30)
"""Any text, HTML's own characters often: names come from users."""


@settings(max_examples=examples(100))
@example(agents=['"><script>alert(1)</script>'], label="</text><b>", title="</title><i>")
@given(agents=st.lists(names, min_size=1, max_size=4, unique=True), label=names, title=names)
def test_every_name_is_escaped_and_reads_back_as_given(agents, label, title):
    lanes = [Lane(agent, "ONLINE", (Bar(label, f"{agent}/execution/{i}", BarState.RUNNING, "TRANSFERRING",
                                        NOW - 100 + i),)) for i, agent in enumerate(agents)]
    tags, lanes_read, bars_read = parsed(render(scene(lanes, title=title, summary=label)))
    assert tags <= TAGS
    assert [lane["data-agent"] for lane in lanes_read] == agents
    assert [bar["data-execution"] for bar in bars_read] == [f"{a}/execution/{i}" for i, a in enumerate(agents)]


def test_an_agents_marks_say_stalled_drained_and_barred():
    stalled = Bar("chunk 1", "e1", BarState.STALLED, "TRANSFERRING", NOW - 50)
    lanes = [Lane("a/agent-1", "OFFLINE", (stalled,)), Lane("a/agent-2", "ONLINE", drained=True),
             Lane("a/agent-3", "ONLINE", barred="its task mode does not fit")]
    _, lanes_read, _ = parsed(render(scene(lanes)))
    assert [(lane["data-status"], lane["data-marks"]) for lane in lanes_read] == [
        ("OFFLINE", "stalled"), ("ONLINE", "drained"), ("ONLINE", "barred")]


def test_bars_that_overlap_in_time_go_on_tracks_of_their_own():
    axis = Axis(NOW - 100, NOW, 0, 1000)
    bars = [Bar("a", "e1", BarState.DONE, "SUCCESS", NOW - 100, end=NOW - 60),
            Bar("b", "e2", BarState.RUNNING, "TRANSFERRING", NOW - 70),  # queued behind a, still running
            Bar("c", "e3", BarState.DONE, "SUCCESS", NOW - 50, end=NOW - 40)]  # after a ended
    assert pack(bars, axis, NOW) == [0, 1, 0]


def described(status: str) -> Execution:
    return Execution(status=status)


def test_each_start_is_coloured_by_where_it_stands():
    cases = [((None, True, False, "ONLINE"), BarState.STARTING),
             ((described("QUEUED"), True, False, "ONLINE"), BarState.QUEUED),
             ((described("TRANSFERRING"), True, False, "ONLINE"), BarState.RUNNING),
             ((described("TRANSFERRING"), True, False, "OFFLINE"), BarState.STALLED),
             ((described("TRANSFERRING"), False, False, "OFFLINE"), BarState.CANCELLING),  # taken back, not ended
             ((described("CANCELLING"), False, True, "OFFLINE"), BarState.CANCELLING),
             ((described("ERROR"), False, True, "OFFLINE"), BarState.TAKEN_BACK),
             ((described("ERROR"), False, False, "ONLINE"), BarState.FAILED),
             ((described("SUCCESS"), True, False, "OFFLINE"), BarState.DONE),
             ((described("SOMETHING_NEW"), True, False, "ONLINE"), BarState.UNKNOWN)]
    assert [bar_state(*given_) for given_, _ in cases] == [want for _, want in cases]


def test_the_progress_file_stays_small_and_keeps_the_start_and_the_recent_checks(tmp_path):
    path, keep, checks = str(tmp_path / "ledger.json.progress.jsonl"), 40, 400
    for i in range(checks):
        samples = record_sample(path, Sample(NOW + i, i, checks), keep=keep)
        assert len(samples) <= keep
    assert samples == read_samples(path)
    times = [s.time for s in samples]
    assert times == sorted(times) and times[0] == NOW
    assert times[-keep // 4:] == [NOW + i for i in range(checks - keep // 4, checks)]


def test_a_line_that_is_not_a_sample_is_skipped(tmp_path):
    path = tmp_path / "progress.jsonl"
    path.write_text('{"t": 18000\n' + json.dumps({"t": NOW, "done": 1, "planned": 2}) + "\n")
    assert record_sample(str(path), Sample(NOW + 1, 2, 2)) == [Sample(NOW, 1, 2), Sample(NOW + 1, 2, 2)]


def test_a_page_that_cannot_be_written_is_said_once_and_written_again_when_it_can(tmp_path, caplog):
    ledger = Ledger(str(tmp_path / "arn_file.txt.ledger.json"))
    page = Page(str(tmp_path / "gone" / "run.html"), refresh=2)
    with caplog.at_level(logging.INFO, logger="ha"):
        for check in range(3):
            page.write(ledger, {}, {}, CheckResult(), NOW + check)
        assert [r.levelname for r in caplog.records] == ["WARNING"]
        assert "could not write the page" in caplog.records[0].getMessage()
        (tmp_path / "gone").mkdir()
        page.write(ledger, {}, {}, CheckResult(), NOW + 3)
    assert "is written again" in caplog.records[-1].getMessage()
    assert "<svg" in (tmp_path / "gone" / "run.html").read_text()
    assert len(read_samples(progress_file(ledger.path))) == 4  # each check's sample, the page or not
