"""The repository's markdown documents link only to what exists: every relative link names a
file (or directory) of the checkout, and every ``#anchor`` a heading of the page it points at."""

from __future__ import annotations

import functools
import re
import subprocess
import unicodedata
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
"""An inline link ``[text](target)``; its text may span lines and hold one level of brackets.
Images are not links."""
FENCE = re.compile(r"^\s*(```|~~~)")
SKIP = {".venv", "bench/work", "demo-run", "log", "build"}
"""Where no document of ours lives, for a copy that is not a git checkout."""


def documents() -> list[Path]:
    """The markdown files git knows of (tracked, or new and not ignored); outside a git
    checkout, every one but those under SKIP or a hidden directory."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        return sorted(ROOT / p for p in out.splitlines() if (ROOT / p).is_file())
    except (OSError, subprocess.CalledProcessError):
        return sorted(p for p in ROOT.rglob("*.md")
                      if not any(part.startswith(".") or "/".join(p.relative_to(ROOT).parts[:i + 1]) in SKIP
                                 for i, part in enumerate(p.relative_to(ROOT).parts[:-1])))


def prose(text: str) -> list[str]:
    """The file's lines with fenced code blocks and inline code spans blanked (so the line
    numbers stay the file's)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else re.sub(r"`[^`]*`", lambda m: " " * len(m.group()), line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading.strip()).lower()
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


@functools.cache
def anchors(path: Path) -> frozenset[str]:
    """The anchors of a markdown file's headings (a repeated heading gets -1, -2...)."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not heading:
            continue
        base = slug(heading.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


def broken_links(doc: Path) -> list[str]:
    """Each relative link of ``doc`` whose file or heading does not exist, as file:line: target."""
    broken = []
    text = "\n".join(prose(doc.read_text(encoding="utf-8")))
    for link in LINK.finditer(text):
        target = link.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # http:, https:, mailto: ...
        where_in_doc = f"{doc.relative_to(ROOT)}:{text.count(chr(10), 0, link.start()) + 1}: {target}"
        path, _, anchor = unquote(target).partition("#")
        where = (doc.parent / path).resolve() if path else doc
        if not where.exists() or ROOT not in (where, *where.parents):
            broken.append(f"{where_in_doc} (no such file)")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            broken.append(f"{where_in_doc} (no such heading)")
    return broken


def test_the_documents_are_found():
    names = {str(p.relative_to(ROOT)) for p in documents()}
    assert {"README.md", "CONTRIBUTING.md", "docs/design.md", "docs/datasync-facts.md", "bench/README.md"} <= names


def test_every_relative_link_in_the_documents_resolves():
    assert [b for doc in documents() for b in broken_links(doc)] == []


def test_anchors_follow_github():
    assert slug("Paths past DataSync's limit") == "paths-past-datasyncs-limit"
    assert slug("Dynamic dispatch: the next chunk to whichever agent frees first") == \
        "dynamic-dispatch-the-next-chunk-to-whichever-agent-frees-first"
    assert slug("§2 Filters") == "2-filters"
    assert slug("The `--once` flag") == "the---once-flag"
