"""What a task's mode (BASIC or ENHANCED) implies, as the emulator reads the user guide.

Enhanced mode moves NFS to S3 through an Enhanced mode agent, has no item quota, takes no
bandwidth limit, verifies only what it transferred and logs to ``/aws/datasync``. The mode
is fixed at creation (UpdateTask has no TaskMode), and a task uses only the agents of its
location that have its mode. How the real service reports a breach of these rules is a
guess: here, InvalidRequestException at the call that breaks them.
"""

from __future__ import annotations

ENHANCED_LOG_GROUP = "/aws/datasync"


def option_problem(mode: str, options: dict, log_group: str | None = None) -> str | None:
    """Why these options (or this log group) cannot be given to a task of this mode, if so."""
    if mode != "ENHANCED":
        return None
    if options.get("BytesPerSecond", -1) != -1:
        return "BytesPerSecond does not apply to Enhanced mode tasks; leave it unset (or -1)"
    if options.get("VerifyMode") == "POINT_IN_TIME_CONSISTENT":
        return "VerifyMode POINT_IN_TIME_CONSISTENT is not supported in Enhanced mode"
    if log_group and log_group.split(":log-group:", 1)[-1].removesuffix(":*") != ENHANCED_LOG_GROUP:
        return f"Enhanced mode tasks log to the log group {ENHANCED_LOG_GROUP}, not {log_group}"
    return None


def pair_problem(mode: str, source_type: str, dest_type: str) -> str | None:
    """Why this location pair cannot be moved in this mode, if so (the emulator moves NFS to S3)."""
    if mode == "ENHANCED" and (source_type, dest_type) != ("NFS", "S3"):
        return f"Enhanced mode does not support a transfer from {source_type} to {dest_type} here"
    return None


def usable_agents(mode: str, agents: list[tuple[str, str]]) -> list[str]:
    """The ARNs, in order, of the (arn, mode) agents a task of this mode may use."""
    return [arn for arn, agent_mode in agents if agent_mode == mode]
