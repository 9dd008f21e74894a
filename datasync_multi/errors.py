"""The exception types for problems the user can fix, and the exit codes the commands give."""

EXIT_OK, EXIT_AWS, EXIT_USAGE, EXIT_SETUP = 0, 1, 2, 3
EXIT_EXHAUSTED = 3
"""The watcher: a scope or chunk failed and will not be retried (the word is recorded and final)."""
EXIT_NO_HEALTHY_AGENT = 4
"""The watcher: work waits and no ONLINE agent may take it (the next check tries again)."""
EXIT_OVERSIZED = 5
"""The watcher: an execution selects well more than the plan gives its scope or chunk."""
EXIT_NOT_CONFIRMED = 6
"""The watcher's --cleanup: what it would remove was listed, and nothing was removed (no "yes")."""
EXIT_UNEXPECTED = 70
"""sysexits' EX_SOFTWARE: an exception nothing expected (a bug); its traceback is in the log."""
EXIT_RECORD = 74
"""sysexits' EX_IOERR: a record (arn file, plan, ledger) could not be written; it is as it was."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT), as a shell reports a command it interrupted: 128 + the signal's number."""


class UserError(Exception):
    """Bad input or environment: the scripts print the message on one line and exit 2."""


class SetupError(Exception):
    """DataSync could not get a task ready (the export does not mount, the task's mode does
    not fit its agent, or it stayed CREATING too long): one line, and the scheduler exits 3
    before it starts anything."""


class RecordError(Exception):
    """A record (the arn file, the plan, the ledger) could not be written, most often for a
    full disk: the file is left as it was, so the run can go on once the cause is fixed. One
    line and exit 74; the watcher's loop logs it and checks again."""


class AgentRefused(SetupError):
    """DataSync refused a location or task on one agent (its mode does not fit, or the agent
    cannot serve that export): the watcher bars that agent for the run."""
