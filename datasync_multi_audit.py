#!/usr/bin/env python3
"""Compare the share with the migration's destination, as a whole: what is missing (and
which task or chunk should have carried it), extra, or different.

A thin wrapper beside the other two scripts: the command lives in
``datasync_multi.audit_command``, started through ``datasync_multi.entry`` (installed as
``datasync-multi-audit``).
"""

import sys

from datasync_multi.entry import audit

if __name__ == "__main__":
    sys.exit(audit())
