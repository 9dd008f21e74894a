"""The one exception type for problems the user can fix."""


class UserError(Exception):
    """Bad input or environment: the scripts print the message on one line and exit 2."""
