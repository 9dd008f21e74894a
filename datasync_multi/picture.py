"""The picture of a run: one self-contained HTML page drawn from plain values.

Inline SVG and CSS, no script and nothing fetched, so the page opens offline, from a
copy, on a laptop far from the VM, and a test can draw it without a server. Top: the
run at a glance (the check's summary line, bytes against the plan, the ETA). Then the
timeline: one row per agent, each execution (or chunk start) a bar from when it was asked
for to when it ended (or now), coloured by where it stands; the part spent queued is
drawn in the queued colour. Then bytes moved over time against the plan, on the same time
axis, with the straight line to the ETA. Every name is escaped: task names come from users.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .scan import human_bytes


class BarState:
    """Where one execution stands, as the picture colours it."""

    STARTING = "starting"
    """A start decided and saved, its execution not seen yet."""
    QUEUED = "queued"
    RUNNING = "running"
    STALLED = "stalled"
    """Still running as far as DataSync says, on an OFFLINE agent: not moving."""
    CANCELLING = "cancelling"
    DONE = "done"
    FAILED = "failed"
    TAKEN_BACK = "taken back"
    """Cancelled before it read anything (queued on a lost agent); its work went back unfailed."""
    UNKNOWN = "unknown"


COLOURS = {
    BarState.STARTING: "#f0e442", BarState.QUEUED: "#56b4e9", BarState.RUNNING: "#0072b2",
    BarState.STALLED: "#cc79a7", BarState.CANCELLING: "#e69f00", BarState.DONE: "#009e73",
    BarState.FAILED: "#d55e00", BarState.TAKEN_BACK: "#999999", BarState.UNKNOWN: "#444444",
}
"""Okabe and Ito's palette, told apart with any colour vision; solid, so a pixel says its state."""


@dataclass(frozen=True)
class Bar:
    """One execution, or one start of a chunk, on its agent's row."""

    label: str
    """The task or chunk it runs (a user's name: escaped when drawn)."""
    execution: str
    """Its ARN; empty for a start whose execution is not seen yet."""
    state: str
    status: str
    """DataSync's word for it, or '' if not described."""
    start: float
    """When it was asked for (epoch seconds)."""
    launch: float | None = None
    """When it left the queue; None while queued."""
    end: float | None = None
    """When it ended; None while it runs."""
    bytes_done: int = 0
    bytes_planned: int = 0


@dataclass(frozen=True)
class Lane:
    """One agent of the run and what it ran."""

    agent: str
    status: str
    """ListAgents' status, or 'not listed'."""
    bars: tuple[Bar, ...] = ()
    drained: bool = False
    barred: str | None = None
    """Why DataSync refused it for the run, once it has."""

    @property
    def stalled(self) -> bool:
        return any(b.state == BarState.STALLED for b in self.bars)


@dataclass(frozen=True)
class Sample:
    """Bytes moved and bytes planned, as one check saw them."""

    time: float
    done: int
    planned: int


@dataclass(frozen=True)
class Scene:
    """Everything the page shows: what one check saw, and the samples of the checks before."""

    title: str
    now: float
    lanes: tuple[Lane, ...]
    history: tuple[Sample, ...]
    bytes_done: int
    bytes_total: int
    eta: float | None
    """Seconds until the last of the work should end, if known."""
    finished: bool
    summary: str
    """The check's one summary line."""
    refresh: float | None = None
    """Seconds after which the browser reloads the page; None once the run has ended."""


WIDTH = 1200
LABEL_WIDTH = 250
RIGHT_MARGIN = 30
TRACK_HEIGHT = 26
BAR_HEIGHT = 18
LANE_PADDING = 6
AXIS_HEIGHT = 44
MIN_BAR_WIDTH = 4
MIN_SPAN = 10.0
"""Seconds the time axis covers at least, so a run's first check is not one pixel wide."""
CHART_HEIGHT = 190
NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800)

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
.summary { margin: 4px 0; }
.glance { display: flex; gap: 32px; margin: 8px 0 12px; }
.glance div { font-size: 13px; color: #555; }
.glance b { display: block; font-size: 20px; color: #222; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 14px; height: 10px; margin-right: 4px; vertical-align: -1px; }
h2 { font-size: 15px; margin: 18px 0 4px; }
svg text { font: 12px system-ui, sans-serif; fill: #222; }
svg .tick { fill: #666; }
svg .badge { font-size: 11px; font-weight: bold; }
svg .inside { fill: #fff; font-size: 11px; pointer-events: none; }
footer { margin-top: 12px; font-size: 12px; color: #666; }
"""


def render(scene: Scene) -> str:
    """The whole page."""
    t0, t1 = time_span(scene)
    axis = Axis(t0, t1, LABEL_WIDTH, WIDTH - RIGHT_MARGIN)
    refresh = f'<meta http-equiv="refresh" content="{scene.refresh:.0f}">' if scene.refresh else ""
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">', refresh,
        f"<title>{_esc(scene.title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<h1>{_esc(scene.title)}</h1>", f'<p class="summary">{_esc(scene.summary)}</p>', _glance(scene),
        "<h2>Agents and their executions</h2>", _legend(), timeline(scene, axis),
        "<h2>Bytes moved against the plan</h2>", bytes_chart(scene, axis),
        f"<footer>Written by the watcher at {_clock(scene.now, seconds=True)} UTC; times are UTC. "
        + ("The run has ended." if scene.finished else
           f"This page reloads every {scene.refresh:.0f} s." if scene.refresh else "") + "</footer>",
        "</body>", "</html>", ""])


def time_span(scene: Scene) -> tuple[float, float]:
    """The time axis: from the first start or sample (``MIN_SPAN`` at least) to now, stretched
    to the ETA when that is no further ahead than the run has lasted, so the past keeps at
    least half of the width (the glance at the top gives a distant ETA)."""
    starts = [b.start for lane in scene.lanes for b in lane.bars] + [s.time for s in scene.history]
    t0 = min([*starts, scene.now - MIN_SPAN])
    ends = [b.end for lane in scene.lanes for b in lane.bars if b.end is not None]
    t1 = max([scene.now, *ends])
    if scene.eta is not None and not scene.finished:
        t1 = max(t1, scene.now + min(scene.eta, scene.now - t0))
    return t0, t1 + (t1 - t0) * 0.02


@dataclass(frozen=True)
class Axis:
    """Time to x, shared by the timeline and the chart so the two line up."""

    t0: float
    t1: float
    x0: float
    x1: float

    def x(self, t: float) -> float:
        return self.x0 + (self.x1 - self.x0) * (t - self.t0) / (self.t1 - self.t0)

    def ticks(self) -> list[tuple[float, str]]:
        """Round times across the axis, about eight of them, labelled as a clock."""
        step = next((s for s in NICE_STEPS if (self.t1 - self.t0) / s <= 8), NICE_STEPS[-1])
        first = math.ceil(self.t0 / step) * step
        count = int((self.t1 - first) // step) + 1
        return [(self.x(first + i * step), _clock(first + i * step, seconds=step < 60)) for i in range(count)]

    def grid(self, top: float, bottom: float, labels: bool) -> list[str]:
        out = []
        for x, label in self.ticks():
            out.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#eee"/>')
            if labels:
                out.append(f'<text class="tick" x="{x:.1f}" y="{top - 24:.1f}" text-anchor="middle">{label}</text>')
        return out


def timeline(scene: Scene, axis: Axis) -> str:
    """One row per agent: its name and marks on the left, its bars on the right."""
    parts, y = [], float(AXIS_HEIGHT)
    for index, lane in enumerate(scene.lanes):
        tracks = pack(lane.bars, axis, scene.now)
        height = max(1, len(set(tracks))) * TRACK_HEIGHT + 2 * LANE_PADDING
        parts.append(_lane(lane, index, tracks, axis, y, height, scene.now))
        y += height
    if not scene.lanes:
        parts.append(f'<text x="{LABEL_WIDTH}" y="{y + 20:.0f}">No agent has run anything of this run yet.</text>')
        y += 30
    grid = axis.grid(AXIS_HEIGHT, y, labels=True)
    return _svg(y + 4, [*grid, *parts, *_now_and_finish(scene, axis, AXIS_HEIGHT, y)], "timeline")


def pack(bars: Sequence[Bar], axis: Axis, now: float) -> list[int]:
    """The track of each bar within its row: bars that would overlap on screen (a chunk
    queued behind another, a retry started while the failed run was cancelling) go on
    tracks below one another."""
    ends: list[float] = []
    tracks = []
    for bar in bars:
        x0, x1 = _bar_x(bar, axis, now)
        track = next((i for i, end in enumerate(ends) if end + 2 <= x0), len(ends))
        if track == len(ends):
            ends.append(x1)
        ends[track] = x1
        tracks.append(track)
    return tracks


def _lane(lane: Lane, index: int, tracks: list[int], axis: Axis, y: float, height: float, now: float) -> str:
    background = "#fdecea" if lane.status != "ONLINE" or lane.barred else "#f7f7f7" if index % 2 else "#fff"
    marks = _marks(lane)
    out = [f'<g class="lane" data-agent="{_esc(lane.agent)}" data-status="{_esc(lane.status)}" '
           f'data-marks="{_esc(" ".join(m for m, _ in marks[1:]))}">',
           f"<title>{_esc(lane.agent)}: {_esc(lane.status)}"
           + (f"; barred: {_esc(lane.barred)}" if lane.barred else "") + "</title>",
           f'<rect x="0" y="{y:.1f}" width="{WIDTH}" height="{height:.1f}" fill="{background}" fill-opacity="0.7"/>',
           f'<text x="8" y="{y + 18:.1f}" font-weight="bold">{_esc(lane.agent.rsplit("/", 1)[-1])}</text>']
    x = 8.0
    for word, colour in marks:
        out.append(f'<text class="badge" x="{x:.1f}" y="{y + 34:.1f}" fill="{colour}">{_esc(word)}</text>')
        x += 7.5 * len(word) + 10
    for bar, track in zip(lane.bars, tracks, strict=True):
        out.append(_bar(bar, lane.agent, axis, y + LANE_PADDING + track * TRACK_HEIGHT, now))
    out.append("</g>")
    return "\n".join(out)


def _marks(lane: Lane) -> list[tuple[str, str]]:
    """The words under an agent's name, each in its colour: its status, and stalled, drained, barred."""
    marks = [(lane.status, "#2e7d32" if lane.status == "ONLINE" else "#c62828")]
    if lane.stalled:
        marks.append(("stalled", COLOURS[BarState.STALLED]))
    if lane.drained:
        marks.append(("drained", "#666"))
    if lane.barred:
        marks.append(("barred", "#c62828"))
    return marks


def _bar_x(bar: Bar, axis: Axis, now: float) -> tuple[float, float]:
    x0 = axis.x(bar.start)
    return x0, max(axis.x(bar.end if bar.end is not None else now), x0 + MIN_BAR_WIDTH)


def _bar(bar: Bar, agent: str, axis: Axis, y: float, now: float) -> str:
    """The bar: its queued part in the queued colour, the rest in its state's colour (the
    ``fill`` rect); a tooltip with everything known of it."""
    x0, x1 = _bar_x(bar, axis, now)
    queued_until = None if bar.state == BarState.QUEUED else bar.launch
    split = x0 if queued_until is None else min(max(axis.x(queued_until), x0), x1 - MIN_BAR_WIDTH)
    out = [f'<g class="bar" data-execution="{_esc(bar.execution)}" data-state="{_esc(bar.state)}" '
           f'data-agent="{_esc(agent)}">', f"<title>{_esc(_tooltip(bar))}</title>"]
    if split > x0:
        out.append(f'<rect class="queued" x="{x0:.1f}" y="{y:.1f}" width="{split - x0:.1f}" '
                   f'height="{BAR_HEIGHT}" fill="{COLOURS[BarState.QUEUED]}"/>')
    out.append(f'<rect class="fill" x="{split:.1f}" y="{y:.1f}" width="{x1 - split:.1f}" height="{BAR_HEIGHT}" '
               f'fill="{COLOURS[bar.state]}"' + (' stroke="#222" stroke-dasharray="3 2"' if bar.state ==
                                                 BarState.STARTING else "") + "/>")
    if x1 - x0 > 7 * len(bar.label) + 8:
        out.append(f'<text class="inside" x="{x0 + 4:.1f}" y="{y + 13:.1f}">{_esc(bar.label)}</text>')
    out.append("</g>")
    return "\n".join(out)


def _tooltip(bar: Bar) -> str:
    lines = [bar.label, bar.execution or "(not started yet)",
             f"{bar.status or 'not described'}: {bar.state}",
             f"{human_bytes(bar.bytes_done)} moved" + (f" of {human_bytes(bar.bytes_planned)} planned"
                                                       if bar.bytes_planned else ""),
             f"asked for at {_clock(bar.start, seconds=True)}"]
    if bar.launch is not None:
        lines.append(f"launched at {_clock(bar.launch, seconds=True)}")
    if bar.end is not None:
        lines.append(f"ended at {_clock(bar.end, seconds=True)}")
    return "\n".join(lines)


def _now_and_finish(scene: Scene, axis: Axis, top: float, bottom: float) -> list[str]:
    """The line at now, and the dashed one at the ETA when it is on the axis (the glance at the
    top says it either way); their labels above the plot, now's to the left of its line."""
    x = axis.x(scene.now)
    out = [f'<line class="now" x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#222"/>',
           f'<text x="{x - 3:.1f}" y="{top - 5:.1f}" text-anchor="end">now</text>']
    if scene.eta is None or scene.finished or scene.now + scene.eta > axis.t1:
        return out
    xf = axis.x(scene.now + scene.eta)
    return out + [f'<line class="finish" x1="{xf:.1f}" y1="{top:.1f}" x2="{xf:.1f}" y2="{bottom:.1f}" '
                  'stroke="#222" stroke-dasharray="4 3"/>',
                  f'<text x="{xf + 3:.1f}" y="{top - 5:.1f}">finish</text>']


def bytes_chart(scene: Scene, axis: Axis) -> str:
    """Bytes moved at each check (solid; dotted from the first start, when nothing had moved,
    to the first check that sampled), the plan's total (dashed), and the line to the ETA."""
    top, bottom = 24.0, CHART_HEIGHT - 20.0
    samples = [*scene.history, Sample(scene.now, scene.bytes_done, scene.bytes_total)]
    first_start = min((b.start for lane in scene.lanes for b in lane.bars), default=samples[0].time)
    highest = max([1, *(s.planned for s in samples), *(s.done for s in samples)])

    def y(value: float) -> float:
        return bottom - (bottom - top) * value / highest

    def line(name: str, values: Iterable[tuple[float, float]], stroke: str, style: str) -> str:
        points = " ".join(f"{axis.x(t):.1f},{y(v):.1f}" for t, v in values)
        return f'<polyline class="{name}" points="{points}" fill="none" stroke="{stroke}" {style}/>'

    moved = COLOURS[BarState.RUNNING]
    out = axis.grid(top, bottom, labels=False)
    out += [f'<line x1="{axis.x0}" y1="{bottom}" x2="{axis.x1}" y2="{bottom}" stroke="#999"/>',
            f'<text class="tick" x="{axis.x0 - 6}" y="{bottom + 4:.1f}" text-anchor="end">0</text>',
            f'<text class="tick" x="{axis.x0 - 6}" y="{y(scene.bytes_total) + 4:.1f}" text-anchor="end">'
            f"plan: {human_bytes(scene.bytes_total)}</text>",
            line("planned", [(first_start, samples[0].planned), *((s.time, s.planned) for s in samples)], "#666",
                 'stroke-dasharray="6 4"'),
            line("done", ((s.time, s.done) for s in samples), moved, 'stroke-width="2"')]
    if first_start < samples[0].time:
        out.append(line("unsampled", [(first_start, 0), (samples[0].time, samples[0].done)], moved,
                        'stroke-dasharray="1 3"'))
    if scene.eta is not None and not scene.finished:
        finish = min(scene.now + scene.eta, axis.t1)
        reached = scene.bytes_done + (scene.bytes_total - scene.bytes_done) * (finish - scene.now) / (scene.eta or 1)
        out.append(line("projection", [(scene.now, scene.bytes_done), (finish, reached)], moved,
                        'stroke-dasharray="3 3"'))
    out += _now_and_finish(scene, axis, top, bottom)
    return _svg(CHART_HEIGHT, out, "bytes")


def _glance(scene: Scene) -> str:
    share = 100 * scene.bytes_done / scene.bytes_total if scene.bytes_total else 100.0
    if scene.finished:
        finish = "every one has ended"
    elif scene.eta is None:
        finish = "not known yet"
    else:
        finish = f"≈ {_clock(scene.now + scene.eta, seconds=scene.eta < 600)} UTC"
    stalled = sum(1 for lane in scene.lanes if lane.stalled)
    cells = [("moved", f"{human_bytes(scene.bytes_done)} of {human_bytes(scene.bytes_total)} ({share:.1f}%)"),
             ("finish", finish), ("agents", f"{len(scene.lanes)}" + (f", {stalled} stalled" if stalled else "")),
             ("executions", str(sum(1 for lane in scene.lanes for b in lane.bars if b.execution)))]
    return '<div class="glance">' + "".join(f"<div>{name}<b>{_esc(value)}</b></div>" for name, value in cells) + \
        "</div>"


def _legend() -> str:
    return '<p class="legend">' + "".join(f'<span><i style="background:{colour}"></i>{state}</span>'
                                          for state, colour in COLOURS.items()) + "</p>"


def _svg(height: float, parts: list[str], name: str) -> str:
    return (f'<svg class="{name}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
            f'viewBox="0 0 {WIDTH} {height:.0f}">\n' + "\n".join(parts) + "\n</svg>")


def _clock(t: float, seconds: bool = False) -> str:
    return time.strftime("%H:%M:%S" if seconds else "%H:%M", time.gmtime(t))


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)
