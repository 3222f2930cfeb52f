"""Sources turn a watched place (a local folder or an S3 prefix) into intake batches.

:mod:`~docproc.sources.base` holds the :class:`Source` protocol; the local
folder source, :mod:`~docproc.sources.local`, composes the watchdog observer
(:mod:`~docproc.sources.observer`, the only module that imports watchdog), the
walk and entry classification (:mod:`~docproc.sources.walk`), the unmount guard
(:mod:`~docproc.sources.mountguard`) and the pure decision units in
:mod:`~docproc.sources.filters`, :mod:`~docproc.sources.stability` and
:mod:`~docproc.sources.mounts`. The S3 source, :mod:`~docproc.sources.s3`,
lists a prefix and fetches changed objects through :mod:`docproc.aws` (the
only module that imports boto3), with optional SQS hints from
:mod:`~docproc.sources.notifications`.
"""
