"""A page as a person sees it: Debian's Chromium, headless, renders it; ``layout`` gives where
each element of interest landed (the DOM after rendering, each element's box written into
it), ``screenshot`` the pixels, decoded with the standard library (``decode_png``).

Chromium is a system package (``apt-get install chromium``), not a Python one. Without it a
test that needs it is skipped on a developer's machine, with how to install it, and fails
where ``CHROMIUM_REQUIRED`` is set: ``.ci/run`` installs Chromium and sets it.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--force-device-scale-factor=1")
"""Headless on a machine with no screen, no network beyond the page, one CSS pixel per pixel."""

MEASURE = """<script>
for (const element of document.querySelectorAll('%s')) {
  const box = element.getBoundingClientRect();
  element.setAttribute('data-box', [box.left, box.top, box.width, box.height].join(' '));
}
</script>"""
"""Appended to a copy of the page: writes each matched element's box (CSS pixels) into the DOM."""


def chromium() -> str:
    """The browser's path; skips (fails where CHROMIUM_REQUIRED is set) when it is not installed."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    why = "Chromium is not installed: apt-get install chromium (Debian's package) to run this test"
    if os.environ.get("CHROMIUM_REQUIRED"):
        pytest.fail(why + "; CHROMIUM_REQUIRED is set (.ci/run installs it)")
    pytest.skip(why)


def _run(page: str, size: tuple[int, int], *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile each time: nothing carried over
        r = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                            *args, "file://" + os.path.abspath(page)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@dataclass(frozen=True)
class Element:
    tag: str
    attrs: dict[str, str]
    box: tuple[float, float, float, float]
    """left, top, width, height in CSS pixels."""


def layout(page: str, selector: str, size: tuple[int, int]) -> list[Element]:
    """The elements matching the CSS selector, each with where it landed, as Chromium laid
    the page out at this window size (a copy of the page with ``MEASURE`` appended)."""
    with open(page, encoding="utf-8") as fh:
        text = fh.read()
    measured = page + ".measured.html"
    with open(measured, "w", encoding="utf-8") as fh:
        fh.write(text.replace("</body>", MEASURE % selector + "</body>"))
    return [Element(tag, attrs, tuple(float(n) for n in attrs["data-box"].split()))  # type: ignore[arg-type]
            for tag, attrs in start_tags(_run(measured, size, "--dump-dom").stdout) if "data-box" in attrs]


def start_tags(page: str) -> list[tuple[str, dict[str, str]]]:
    """Each element of the page in document order, with its attributes, as an HTML parser reads them."""
    found: list[tuple[str, dict[str, str]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, {k: v or "" for k, v in attrs}))

        handle_startendtag = handle_starttag

    Collect().feed(page)
    return found


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    rows: list[bytes]
    """RGB, three bytes a pixel."""

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        row = self.rows[y]
        return row[3 * x], row[3 * x + 1], row[3 * x + 2]

    def share_of(self, colour: str, box: tuple[float, float, float, float]) -> float:
        """The share of the box's inner pixels (one pixel in from its edges, where
        anti-aliasing blends) that are exactly this colour ('#rrggbb')."""
        want = tuple(bytes.fromhex(colour.lstrip("#")))
        left, top, width, height = box
        xs = range(int(left) + 1, int(left + width) - 1)
        ys = range(int(top) + 1, int(top + height) - 1)
        total = len(xs) * len(ys)
        return sum(1 for y in ys for x in xs if self.pixel(x, y) == want) / total if total else 0.0

    def colours(self) -> int:
        return len({row[i:i + 3] for row in self.rows for i in range(0, len(row), 3)})


def screenshot(page: str, size: tuple[int, int], png: str) -> Image:
    """The page as Chromium shows it in a window of this size, saved to ``png`` and decoded."""
    _run(page, size, f"--screenshot={os.path.abspath(png)}")
    with open(png, "rb") as fh:
        return decode_png(fh.read())


def decode_png(data: bytes) -> Image:
    """An 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes), as RGB rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, (depth, colour_type, interlace)
    step = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * step
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), previous, step)
        rows.append(bytes(line) if step == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
        previous = line
    return Image(width, height, rows)


def _unfilter(kind: int, line: bytearray, up: bytearray, step: int) -> bytearray:
    """Undo one scanline's PNG filter (None, Sub, Up, Average, Paeth), in place."""
    if kind == 1:
        for i in range(step, len(line)):
            line[i] = (line[i] + line[i - step]) & 0xFF
    elif kind == 2:
        line[:] = bytes((a + b) & 0xFF for a, b in zip(line, up, strict=True))
    elif kind == 3:
        for i in range(len(line)):
            line[i] = (line[i] + ((line[i - step] if i >= step else 0) + up[i]) // 2) & 0xFF
    elif kind == 4:
        for i in range(len(line)):
            left = line[i - step] if i >= step else 0
            corner = up[i - step] if i >= step else 0
            guess = left + up[i] - corner
            pa, pb, pc = abs(guess - left), abs(guess - up[i]), abs(guess - corner)
            line[i] = (line[i] + (left if pa <= pb and pa <= pc else up[i] if pb <= pc else corner)) & 0xFF
    return line
