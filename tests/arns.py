"""Made-up ARNs that several test modules share."""

AGENTS = [f"arn:aws:datasync:us-east-1:111122223333:agent/agent-{i:017x}" for i in range(1, 33)]
"""32 agents; a module that wants fewer takes the first few."""
EXEC = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0/execution/exec-0123456789abcdef0"
