"""Providers: the seam between docproc and whoever writes summaries.

``base`` holds the :class:`~docproc.providers.base.Provider` protocol and the
custom_id codec; ``local`` is the embedded offline provider, built on the
stdlib-only extractive summariser in ``summarize``.
"""
