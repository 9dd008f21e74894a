#!/bin/bash
# Sample wrapper: watch the executions the scheduler recorded and move a failed or
# stranded share to a healthy agent. In a terminal it loops; from cron, add --once:
#   */5 * * * * /path/to/run_ds_ha.sh --once >> /path/to/log/cron.out 2>&1
cd "$(dirname "$0")" || exit 2
exec python3 datasync_agent_ha.py --arn_file="arn_file.txt" --timeout_sec="300" "$@"
