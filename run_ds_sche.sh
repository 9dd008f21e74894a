#!/bin/bash
# Sample wrapper: split the share under /fsx across every online agent and start the tasks.
# Replace the server, export, mount, ARNs and region with yours. Add --dry_run to see the plan first.
cd "$(dirname "$0")" || exit 2
# Python: the project's .venv when there is one (make demo or make test makes it; needs Python 3.10+), else python3
PYTHON=python3
[ -x .venv/bin/python ] && PYTHON=.venv/bin/python
exec "$PYTHON" datasync_multi_agents_scheduler.py \
  --task_name="Distributed_Tasks_" \
  --nfs_server_name="198.51.100.10" \
  --sub_dir="/vol1" \
  --mount_path_dir="/fsx" \
  --dest_loc="arn:aws:datasync:ap-northeast-2:111122223333:location/loc-042c919ab6996b437" \
  --cloudwatch_arn="arn:aws:logs:ap-northeast-2:111122223333:log-group:/aws/datasync:*" \
  --source_file="source_file.manifest" \
  "$@"
