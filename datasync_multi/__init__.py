"""Shared code of the DataSync multi-agent scheduler, its HA watcher and the audit.

The core (``manifest``, ``scan``, ``names``, ``split``, ``pack``, ``plan``, ``filters``,
``live``, ``ordered``, ``audit``, ``assign``, ``decisions``, ``dispatch_rules``) imports no
AWS library: ``manifest``, ``scan`` and ``ordered`` read the mount (``split`` and ``live``
too, through the scan's ``Tree``, for a directory they cut by name), the rest are pure
functions. ``datasync`` is the one module that imports boto3; it turns DataSync's answers
into the plain records of ``records`` and names its calls. ``statuses`` names DataSync's
statuses. ``files`` writes what must survive a crash (appended lines, atomic replaces,
locks); ``ledger`` holds the run's record and what the watcher and the dispatcher decided,
changed only through named transitions; ``journal`` is a live run's journal. ``watch`` and
``dispatch`` are the two checks; the commands are ``scheduler_command``,
``watcher_command`` and ``audit_command``.
"""
