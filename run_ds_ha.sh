#!/bin/bash
# Sample wrapper: watch the executions the scheduler recorded and move a failed or
# stranded share to a healthy agent. In a terminal it loops; from cron, add --once:
#   */5 * * * * /path/to/run_ds_ha.sh --once >> /path/to/log/cron.out 2>&1
cd "$(dirname "$0")" || exit 2
# Python: the project's .venv when there is one (make demo or make test makes it; needs Python 3.10+), else python3
PYTHON=python3
[ -x .venv/bin/python ] && PYTHON=.venv/bin/python
exec "$PYTHON" datasync_agent_ha.py --arn_file="arn_file.txt" --timeout_sec="300" "$@"
