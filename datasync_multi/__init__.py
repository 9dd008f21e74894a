"""Shared code of the DataSync multi-agent scheduler and its HA watcher.

The core (``manifest``, ``scan``, ``names``, ``split``, ``pack``, ``plan``, ``filters``,
``assign``, ``decisions``, ``dispatch_rules``) imports no AWS library: ``manifest`` and
``scan`` read the mount (``split`` too, through the scan's ``Tree``, for a directory it
cuts by name), the rest are pure functions. ``datasync`` is the one module that imports boto3;
it turns DataSync's answers into the plain records of ``records`` and names its calls.
``statuses`` names DataSync's statuses. ``files`` writes what must survive a crash
(appended lines, atomic replaces, locks); ``ledger`` holds the run's record and what
the watcher and the dispatcher decided, changed only through named transitions.
``watch`` and ``dispatch`` are the two checks; the commands are ``scheduler_command``
and ``watcher_command``.
"""
