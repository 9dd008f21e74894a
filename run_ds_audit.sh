#!/bin/bash
# Sample wrapper: once the watcher has ended (after the final pass), compare the share with
# the destination as a whole. Fill in the mount and the destination location as in
# run_ds_sche.sh; the report lands in audit_report.jsonl.
cd "$(dirname "$0")" || exit 2
# Python: the project's .venv when there is one (make demo or make test makes it; needs Python 3.10+), else python3
PYTHON=python3
[ -x .venv/bin/python ] && PYTHON=.venv/bin/python
exec "$PYTHON" datasync_multi_audit.py --mount_path_dir="/fsx" \
    --dest_loc="arn:aws:datasync:us-east-1:111122223333:location/loc-0123456789abcdef0" \
    --source_file="source_file.manifest" --arn_file="arn_file.txt" "$@"
