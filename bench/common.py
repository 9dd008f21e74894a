"""What the benchmark scripts share: tables, RESULTS.md, tool installs, timing."""

from __future__ import annotations

import datetime
import os
import shlex
import shutil
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
RESULTS = os.path.join(BENCH, "RESULTS.md")


def table(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} CPUs ({cpu or 'unknown model'}), {mem:.0f} GiB RAM, "
            f"Python {sys.version.split()[0]}")


def command_line() -> str:
    return "python3 " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])


def append_results(title: str, body: str) -> None:
    """Print a section and append it, with the command, date and machine, to RESULTS.md."""
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    section = (f"## {title}\n\n`{command_line()}` — {stamp} — {machine()}\n\n{body.rstrip()}\n\n")
    print(section)
    new = not os.path.exists(RESULTS)
    with open(RESULTS, "a", encoding="utf-8") as fh:
        if new:
            fh.write("# Benchmark results\n\nEach script appends its section; the newest run of a "
                     "question is the last section with its title. See README.md for what each measures.\n\n")
        fh.write(section)


def ensure_tool(binary: str, package: str) -> str | None:
    """The tool's path, installing its Debian package when missing; None if that fails."""
    found = shutil.which(binary) or (binary if os.path.isabs(binary) and os.access(binary, os.X_OK) else None)
    if found:
        return found
    print(f"{binary} missing: apt-get install -y {package}", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", package]
    if os.geteuid() != 0:
        cmd = ["sudo", *cmd]
    ok = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode == 0
    if not ok:  # the package lists may be stale or empty
        subprocess.run(cmd[:-4] + ["update", "-qq"] if cmd[0] == "sudo" else ["apt-get", "update", "-qq"],
                       env=env, stdout=subprocess.DEVNULL)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL)
    found = shutil.which(binary) or (binary if os.path.isabs(binary) and os.access(binary, os.X_OK) else None)
    if not found:
        print(f"could not install {package}; install it by hand: apt-get update && apt-get install -y {package}",
              file=sys.stderr)
    return found


def timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return time.perf_counter() - t0, r


def agent_arns(n: int) -> list[str]:
    return [f"arn:aws:datasync:us-east-1:111122223333:agent/agent-{i:017x}" for i in range(1, n + 1)]
