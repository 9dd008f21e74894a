"""Shared code of the DataSync multi-agent scheduler and its HA watcher.

The pure core (``manifest``, ``scan``, ``names``, ``split``, ``pack``, ``plan``,
``filters``, ``decisions``) knows nothing of AWS; ``datasync`` is the one module that
calls boto3, and ``states`` names DataSync's statuses; ``state`` owns the files that
must survive crashes (the arn file, and the ledger: the run's record, its retries and
chunks, as typed records). The two commands are
``scheduler_command`` and ``watcher_command``.
"""
