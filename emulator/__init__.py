"""Local AWS DataSync emulator (NFS -> S3 with real local copies), and S3's read calls
(ListObjectsV2, HeadObject, GetObject) over the copies.

Run it with ``python3 -m emulator``; see README.md.  Tests and demos use
:class:`emulator.harness.Emulator`.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
