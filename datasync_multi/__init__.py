"""Shared code of the DataSync multi-agent scheduler and its HA watcher.

The pure core (``manifest``, ``scan``, ``plan``, ``filters``) knows nothing of AWS;
``datasync`` is the one module that calls boto3; ``state`` owns the files that must
survive crashes (the arn file and the watcher's ledger).
"""
