"""What both scripts share at the edge: flags in both spellings, logging, exit codes."""

from __future__ import annotations

import argparse
import copy
import logging
import os
import re
import sys
from collections.abc import Callable

from .datasync import AWSError, describe_error
from .errors import (
    EXIT_AWS,
    EXIT_INTERRUPTED,
    EXIT_RECORD,
    EXIT_SETUP,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    RecordError,
    SetupError,
    UserError,
)

FILE_ONLY = {"file_only": True}
"""``extra=`` for a log record that goes to the log file only: what the script also prints."""
CHECKOUT_MARKER = "datasync_multi_agents_scheduler.py"
"""A top-level script that only a checkout has beside the package."""


def default_log_dir(package_dir: str = os.path.dirname(os.path.abspath(__file__))) -> str:
    """Where the logs go without --log_dir: ``log/`` beside the scripts when the package runs
    from a checkout (as the wrappers and cron lines always had it), else ``log/`` under the
    current directory, beside the arn file and plan an installed command writes there
    (never inside site-packages)."""
    checkout = os.path.dirname(package_dir)
    if os.path.isfile(os.path.join(checkout, CHECKOUT_MARKER)):
        return os.path.join(checkout, "log")
    return os.path.join(os.getcwd(), "log")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help as the tools our users know print it: a usage line of the required flags and
    ``[options]``, each flag once (its dashed spelling is accepted, not listed), each flag's
    default, and the epilog's layout kept (the exit codes)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not any(action.default is none for none in (None, False, argparse.SUPPRESS)) and action.default != [] \
                and "default" not in text:
            text += " (default: %(default)s)"
        return text

    def _format_usage(self, usage, actions, groups, prefix):
        if usage is None:  # the parser gave none: its required flags, then the rest as [options]
            required = [f"{a.option_strings[0]} {self._format_args(a, self._get_default_metavar_for_optional(a))}"
                        for a in actions if a.required and a.option_strings]
            usage = " ".join(["%(prog)s", *required, "[options]"])
        return super()._format_usage(usage, actions, groups, prefix)

    def _format_action_invocation(self, action):
        if len(action.option_strings) < 2:
            return super()._format_action_invocation(action)
        shown = copy.copy(action)
        shown.option_strings = [s for s in action.option_strings if not is_dashed_twin(s, action.option_strings)]
        return super()._format_action_invocation(shown)


def is_dashed_twin(flag: str, flags: list[str]) -> bool:
    """``--max-depth`` beside ``--max_depth``: the spelling accepted but not listed."""
    return "-" in flag[2:] and "--" + flag[2:].replace("-", "_") in flags


def arn_list(values: list[str] | None) -> list[str] | None:
    """A flag of ARNs as given (``nargs="+"``, ``action="extend"``): each word may hold several,
    separated by commas and/or spaces (``a,b``, ``"a b"``, ``a b``, ``--agent_arns a
    --agent_arns b``). None when the flag was not given."""
    if values is None:
        return None
    return [arn for value in values for arn in re.split(r"[,\s]+", value) if arn]


class Parser(argparse.ArgumentParser):
    """argparse that accepts ``--snake_case`` and ``--dashed-case`` for every long flag (and
    lists the first), shows defaults and exit codes in --help, and reports a usage error on
    one line with exit code 2."""

    DASHES = "Each flag is also accepted with dashes for underscores (--log-dir for --log_dir)."

    def __init__(self, description: str = "", **kwargs):
        super().__init__(formatter_class=HelpFormatter, description=f"{description}\n\n{self.DASHES}".strip(),
                         **kwargs)

    def add_flag(self, name: str, **kwargs) -> None:
        flags = [name] if "_" not in name else [name, name.replace("_", "-")]
        self.add_argument(*flags, **kwargs)

    def add_aws_and_log_flags(self, log_file: str) -> None:
        """The flags both commands share: where AWS is, where the log goes, how much it says."""
        self.add_flag("--region", help="AWS region (default: the standard chain)")
        self.add_flag("--profile", help="AWS profile (default: the standard chain)")
        self.add_flag("--endpoint_url", help="DataSync endpoint, e.g. the local emulator (AWS_ENDPOINT_URL also works)")
        self.add_flag("--log_dir", help=f"directory of {log_file} (default: log/ beside the scripts in a checkout, "
                                        "else log/ in the current directory)")
        self.add_flag("--verbose", action="store_true", help="debug logging")

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class LogFile(logging.FileHandler):
    """The log file. A write to it that fails (a full disk) is said once, on one line, rather
    than as a traceback for every record; the command carries on, on the console."""

    failing = False

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handleError(record)  # a log call's own bug: its traceback is the point
        elif not self.failing:
            self.failing = True
            print(f"{os.path.basename(sys.argv[0])}: warning: cannot write the log {self.baseFilename} "
                  f"({exc.strerror or exc}); the console still gets each line", file=sys.stderr)


def setup_logging(log_file: str, log_dir: str | None, verbose: bool = False) -> str:
    """Log to stderr and to ``log_dir/log_file``; return the log file's path."""
    log_dir = log_dir or default_log_dir()
    path = os.path.join(log_dir, log_file)
    try:
        os.makedirs(log_dir, exist_ok=True)
        to_file = LogFile(path, encoding="utf-8", errors="backslashreplace")
    except OSError as exc:
        raise UserError(f"cannot write the log {path!r}: {exc.strerror}") from None
    fmt = logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.addFilter(lambda record: not getattr(record, "file_only", False))
    for handler in (to_stderr, to_file):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


def run(main: Callable[[list[str] | None], int], argv: list[str] | None, log_file: str) -> int:
    """Run a script's main and turn how it ended into its exit code, each non-zero one with
    one line on stderr and no traceback there: a user error is exit 2, an AWS error that
    survived botocore's retries exit 1, a task DataSync could not get ready exit 3, a record
    that could not be written exit 74, Ctrl-C exit 130. The log file (``log_file``) keeps the
    lines of exits 1, 3, 74 and 130 too (130's once logging is set up); a user error's is on
    stderr only. Anything unexpected is exit 70: its line names the exception and where its
    traceback went, the log file (set up in the default log directory if the error came
    before logging was), or nowhere when no log can be written, which the line then says."""
    prog = os.path.basename(sys.argv[0])
    try:
        return main(argv)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SetupError as exc:
        logging.getLogger(prog).error("%s", exc, extra=FILE_ONLY)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_SETUP
    except RecordError as exc:
        logging.getLogger(prog).error("%s", exc, extra=FILE_ONLY)
        print(f"{prog}: error: {exc} and rerun", file=sys.stderr)
        return EXIT_RECORD
    except AWSError as exc:
        logging.getLogger(prog).error("AWS call failed: %s", describe_error(exc), extra=FILE_ONLY)
        print(f"{prog}: AWS error: {describe_error(exc)}", file=sys.stderr)
        return EXIT_AWS
    except KeyboardInterrupt:  # Ctrl-C: what was recorded stays recorded; a rerun goes on from it
        if any(isinstance(h, LogFile) for h in logging.getLogger().handlers):
            logging.getLogger(prog).warning("interrupted", extra=FILE_ONLY)
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, or a failure nobody foresaw: one line here, the traceback in the log
        what = " ".join(f"{type(exc).__name__}: {exc}".split())
        print(f"{prog}: unexpected error: {what}; {keep_traceback(prog, log_file)}", file=sys.stderr)
        return EXIT_UNEXPECTED


def keep_traceback(prog: str, log_file: str) -> str:
    """Write the traceback of the exception being handled to the log (``log_file`` in the
    default log directory if it failed before logging was set up); say where it is, or that
    there is no log to keep it in."""
    if not any(isinstance(h, LogFile) for h in logging.getLogger().handlers):
        try:
            setup_logging(log_file, None)
        except UserError as exc:
            return f"there is no log to keep its traceback in ({exc})"
    path = next(h.baseFilename for h in logging.getLogger().handlers if isinstance(h, LogFile))
    logging.getLogger(prog).error("unexpected error", exc_info=True, extra=FILE_ONLY)
    return f"the traceback is in {path}"
