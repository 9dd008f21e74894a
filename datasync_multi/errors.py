"""The exception types for problems the user can fix."""


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
