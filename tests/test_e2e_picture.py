"""--html against the local DataSync emulator: the page the watcher writes at each check, opened
in headless Chromium, shows every agent of the run and every execution it started, each bar
in its state's colour, the stalled and drained agents marked, and bytes over time."""

from __future__ import annotations

import os
import time

from browser import chromium, layout, screenshot, start_tags
from datasync_multi.picture import COLOURS, BarState
from sites import SLOW, chunks, make_site, wait_transferring

SIZE = (1250, 1000)


def executions(site) -> dict[str, dict]:
    """What the emulator says of each execution this run started: its agent and its status."""
    return {e["arn"]: e for e in site.emu.state()["executions"]}


def test_the_page_shows_every_agent_and_every_execution_in_headless_chromium(tmp_path):
    chromium()  # before the run: skipped (or failed, where required) at once without it
    with make_site(tmp_path, offline_error_delay=120) as site:  # the lost agent's execution stays running
        lost, drained, busy = site.emu.agent_arns()
        site.emu.set_agent(lost, bytes_per_second=SLOW)
        assert site.schedule("--chunks_per_agent", "3", "--per_file_cost", "0").returncode == 0
        wait_transferring(site, lost)
        site.emu.set_agent(lost, status="OFFLINE", bytes_per_second=0)  # stalled: the threshold is 600 s
        checks = 3
        for check in range(checks):
            site.emu.wait_for(lambda st: all(e["status"] in ("SUCCESS", "ERROR") for e in st["executions"]
                                             if e["agent"] != lost), timeout=60)
            last = time.time()
            r = site.watch("--once", "--html", "run.html", *(("--drain", drained) if check == 0 else ()))
            assert r.returncode == 0, (r.stdout, r.stderr)
        ran = executions(site)
        started_last = {a["execution"] for c in chunks(site) for a in c["attempts"] if a["decided"] >= last}
        page = os.path.join(site.work, "run.html")
        boxes = layout(page, ".lane, .bar, .bar > .fill", SIZE)
        image = screenshot(page, SIZE, str(tmp_path / "run.png"))

    lanes = {e.attrs["data-agent"]: e for e in boxes if e.attrs.get("class") == "lane"}
    assert sorted(lanes) == sorted([lost, drained, busy])
    assert (lanes[lost].attrs["data-status"], lanes[lost].attrs["data-marks"]) == ("OFFLINE", "stalled")
    assert lanes[drained].attrs["data-marks"] == "drained"
    bars = [(bar, fill) for bar, fill in zip(boxes, boxes[1:], strict=False)
            if bar.attrs.get("class") == "bar" and fill.attrs.get("class") == "fill"]
    assert sorted(bar.attrs["data-execution"] for bar, _ in bars) == sorted(site.arns()) == sorted(ran)
    assert len(site.arns()) > 3 and started_last  # the busy agent took chunks at later checks
    for bar, fill in bars:
        execution = ran[bar.attrs["data-execution"]]
        lane = lanes[execution["agent"]]
        if execution["arn"] in started_last:  # the last check started it and has not described it yet
            state = BarState.STARTING
        else:  # every other execution had ended when the last check looked, but the lost agent's
            state = BarState.STALLED if execution["agent"] == lost else BarState.DONE
        assert bar.attrs["data-agent"] == execution["agent"] and bar.attrs["data-state"] == state
        assert lane.box[1] <= fill.box[1] and fill.box[1] + fill.box[3] <= lane.box[1] + lane.box[3]  # in its row
        assert image.share_of(COLOURS[state], fill.box) > 0.5, (execution, fill.box)
    for agent, lane in lanes.items():  # the agent's name is drawn at the left of its row
        left, top, _, height = lane.box
        ink = sum(1 for y in range(int(top), int(top + height)) for x in range(int(left), int(left) + 200)
                  if max(image.pixel(x, y)) < 100)
        assert ink > 50, agent
    assert image.colours() > 20  # not blank: text, bars, lines
    done = next(attrs for tag, attrs in start_tags(open(page).read()) if attrs.get("class") == "done")
    assert len(done["points"].split()) == checks  # bytes moved at each check


def test_a_static_run_that_fails_over_shows_the_failure_and_the_retry(tmp_path):
    with make_site(tmp_path) as site:
        lost = site.emu.agent_arns()[0]
        site.emu.set_agent(lost, bytes_per_second=SLOW)
        assert site.schedule("--per_file_cost", "0").returncode == 0
        wait_transferring(site, lost)
        site.emu.set_agent(lost, status="OFFLINE", bytes_per_second=0)
        r = site.watch("--timeout_sec", "0.2", "--offline_threshold_sec", "0", "--html", "run.html", timeout=240)
        assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
        ran = executions(site)
        with open(os.path.join(site.work, "run.html")) as fh:
            tags = start_tags(fh.read())
        with open(os.path.join(site.work, "arn_file.txt.ledger.json.progress.jsonl")) as fh:
            samples = fh.read().splitlines()

    lanes = [attrs["data-agent"] for _, attrs in tags if attrs.get("class") == "lane"]
    assert sorted(lanes) == sorted(a for a in {e["agent"] for e in ran.values()} | {lost})
    bars = {attrs["data-execution"]: attrs for _, attrs in tags if attrs.get("class") == "bar"}
    assert sorted(bars) == sorted(site.arns()) == sorted(ran) and len(bars) == 4  # three scopes and a retry
    states = {arn: (bars[arn]["data-agent"], bars[arn]["data-state"]) for arn in bars}
    assert states == {arn: (e["agent"], BarState.FAILED if e["agent"] == lost else BarState.DONE)
                      for arn, e in ran.items()}
    assert len(samples) >= 2 and '"done"' in samples[-1]  # one per check
