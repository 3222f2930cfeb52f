"""Sources turn a watched place (a local folder, later an S3 prefix) into intake batches.

:mod:`~docproc.sources.base` holds the :class:`Source` protocol; the local
folder source lives in :mod:`~docproc.sources.local` (the only module that
imports watchdog), built from the pure decision units in
:mod:`~docproc.sources.filters`, :mod:`~docproc.sources.stability` and
:mod:`~docproc.sources.mounts`.
"""
