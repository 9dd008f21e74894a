"""Entry point: python -m emulator --port 0 --agents 3 --export H:/EXP=DIR --s3-root DIR, or
python -m emulator --quickstart [DIR] for a session by hand (``quickstart``)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from . import model, quickstart, runner
from .filters import EXECUTION_FILTERS, Reading
from .resources import State
from .server import make_server, seconds

USAGE = """%(prog)s --quickstart [DIR] [options]
       %(prog)s --s3-root DIR [--export HOST:/EXPORT=LOCALDIR ...] [options]"""


class HelpFormatter(argparse.HelpFormatter):
    """Each option's default in its help, unless the help already says it or there is none."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not any(action.default is none for none in (None, False, argparse.SUPPRESS)) and action.default != [] \
                and "default" not in text:
            text += " (default: %(default)s)"
        return text


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m emulator", usage=USAGE, formatter_class=HelpFormatter,
                                 description="Local AWS DataSync emulator (NFS -> S3). The first line on stdout is "
                                             "its URL; SIGTERM or Ctrl-C stops it.")
    ap.add_argument("--quickstart", nargs="?", const="emulator-run", metavar="DIR",
                    help="for a session by hand: make DIR anew (default emulator-run) with a sample share and a "
                         "bucket, serve them, create a destination location and print the lines to paste into "
                         "another shell")
    ap.add_argument("--host", default="127.0.0.1", help="bind address")
    ap.add_argument("--port", type=int, default=0, help="TCP port, 0 = pick a free one")
    ap.add_argument("--agents", type=int, default=3, metavar="N", help="number of emulated Basic mode agents")
    ap.add_argument("--enhanced-agents", type=int, default=0, metavar="N",
                    help="number of emulated Enhanced mode agents, numbered after the Basic ones")
    ap.add_argument("--export", action="append", default=[], metavar="HOST:/EXPORT=LOCALDIR",
                    help="map an NFS export to a local directory (repeatable)")
    ap.add_argument("--s3-root", metavar="DIR",
                    help="local directory standing in for S3; bucket B is <s3-root>/B (required without --quickstart)")
    ap.add_argument("--region", default="us-east-1", help="the region in the ARNs the emulator makes")
    ap.add_argument("--phase-delay", type=float, default=0.05, metavar="SECONDS",
                    help="minimum seconds spent in each execution phase")
    ap.add_argument("--offline-error-delay", type=float, default=1.0, metavar="SECONDS",
                    help="seconds a running execution survives its agent being OFFLINE")
    ap.add_argument("--match", choices=("component", "prefix"), default="component",
                    help="open filter rule: does /dir also select /dir2 (prefix) or not (component)")
    ap.add_argument("--star", choices=("crosses", "stops"), default="crosses",
                    help="open filter rule: does a '*' cross '/'")
    ap.add_argument("--precedence", choices=("exclude", "include"), default="exclude",
                    help="open filter rule: which wins for a path matching an include and an exclude")
    ap.add_argument("--task-create-delay", type=float, default=0.1, metavar="SECONDS",
                    help="seconds a new task stays CREATING (while DataSync mounts the export)")
    ap.add_argument("--basic-item-quota", type=int, default=50_000_000, metavar="N",
                    help="items one Basic mode execution may select (Enhanced mode has no quota)")
    ap.add_argument("--launch-delay", type=float, default=0.0, metavar="SECONDS",
                    help="per-execution start overhead: extra seconds each execution spends in LAUNCHING")
    ap.add_argument("--file-delay", type=float, default=0.0, metavar="SECONDS",
                    help="per-file overhead: seconds each entry transferred costs in TRANSFERRING")
    ap.add_argument("--execution-filters", choices=EXECUTION_FILTERS, default="replace",
                    help="open rule: StartTaskExecution's Includes/Excludes replace the task's, or merge "
                         "with the task's as it is when the execution launches")
    ap.add_argument("--agent-bytes-per-second", metavar="N[,N...]",
                    help="bandwidth of each agent in order, bytes per second (0 = unlimited); "
                         "agents not given are unlimited (default: all unlimited)")
    ap.add_argument("--verbose", action="store_true", help="log HTTP requests to stderr")
    return ap.parse_args(argv)


def agent_rates(text: str, agents: int) -> list[int]:
    """``--agent-bytes-per-second``: one limit per agent in order, 0 for none, at most one per
    agent. Raises ValueError with the one line to print."""
    pieces = [piece.strip() for piece in text.split(",")]
    if not all(piece.isdecimal() for piece in pieces):
        raise ValueError(f"bad --agent-bytes-per-second {text!r}: want whole numbers >= 0 "
                         f"separated by commas, one per agent (0 = unlimited)")
    if len(pieces) > agents:
        raise ValueError(f"bad --agent-bytes-per-second {text!r}: {len(pieces)} values for {agents} agents")
    return [int(piece) for piece in pieces]


def check(args) -> tuple[dict[str, str], list[int] | None]:
    """The options the parser cannot check: the exports (local directory by NFS export) and
    each agent's bandwidth. Raises ValueError with the one line to print."""
    for flag, value in (("--launch-delay", args.launch_delay), ("--file-delay", args.file_delay)):
        try:
            seconds(value)
        except ValueError:
            raise ValueError(f"bad {flag} {value!r}: want seconds >= 0") from None
    rates = None
    if args.agent_bytes_per_second is not None:
        rates = agent_rates(args.agent_bytes_per_second, args.agents + args.enhanced_agents)
    if args.quickstart is not None and (args.s3_root or args.export):
        raise ValueError("--quickstart makes its own share and S3 directory: leave out --s3-root and --export")
    if args.quickstart is None and not args.s3_root:
        raise ValueError("--s3-root DIR is required (or --quickstart for a session by hand)")
    exports = {}
    for spec in args.export:
        left, sep, local = spec.rpartition("=")
        if not sep or not left or not local:
            raise ValueError(f"bad --export {spec!r}: want HOST:/EXPORT=LOCALDIR")
        exports[left] = local
    if args.s3_root and not os.path.isdir(args.s3_root):
        raise ValueError(f"--s3-root {args.s3_root!r} is not a directory")
    return exports, rates


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        exports, rates = check(args)
        if args.quickstart is not None:
            share, args.s3_root = quickstart.prepare(args.quickstart)
            exports = {f"{quickstart.SERVER}:{quickstart.EXPORT}": share}
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    model.service_model()  # load once before serving
    state = State(region=args.region, agents=args.agents, exports=exports,
                  s3_root=args.s3_root, phase_delay=args.phase_delay,
                  offline_error_delay=args.offline_error_delay, enhanced_agents=args.enhanced_agents,
                  task_create_delay=args.task_create_delay, item_quota=args.basic_item_quota,
                  reading=Reading(args.match, args.star, args.precedence), launch_delay=args.launch_delay,
                  file_delay=args.file_delay, execution_filters=args.execution_filters,
                  agent_bytes_per_second=rates)
    srv = make_server(state, args.host, args.port, verbose=args.verbose)
    host, port = srv.server_address[:2]
    assert isinstance(host, str)  # a bound AF_INET socket names its host as text; the type allows bytes
    url = f"http://{host}:{port}"
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                          name="http", daemon=True)
    th.start()
    sys.stdout.write(url + "\n")
    sys.stdout.flush()
    if args.quickstart is not None:
        dest = quickstart.create_destination(url, args.region)
        lines = quickstart.lines_to_paste(url, args.region, args.quickstart, exports[next(iter(exports))], dest,
                                          args.agents + args.enhanced_agents)
        print("\n".join(lines), flush=True)
    else:
        print("\n".join(quickstart.startup_hint(url, args.region, state.s3_root)), file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        pass
    srv.shutdown()
    th.join(5)
    runner.stop(state)
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
