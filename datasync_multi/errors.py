"""The exception types for problems the user can fix."""


class UserError(Exception):
    """Bad input or environment: the scripts print the message on one line and exit 2."""


class SetupError(Exception):
    """DataSync could not get a task ready (the export does not mount, the task's mode does
    not fit its agent, or it stayed CREATING too long): one line, and the scheduler exits 3
    before it starts anything."""
