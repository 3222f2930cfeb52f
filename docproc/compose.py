"""The composition root: turns validated Settings into running components.

Stages never read Settings; this module translates them into explicit
arguments, once, for ``docproc scan`` and ``docproc run`` alike.
"""

from __future__ import annotations

from collections.abc import Callable

from docproc.config import Settings
from docproc.errors import ConfigError
from docproc.extract import ExtractorPool
from docproc.providers.base import Provider
from docproc.providers.local import LocalProvider


def make_pool(settings: Settings, log_setup: Callable[[], object] | None = None) -> ExtractorPool:
    extract = settings.extract
    return ExtractorPool(
        workers=extract.workers,
        limits=extract.limits,
        text_dir=settings.text_dir,
        recycle_after=extract.recycle_after,
        memory_limit_mb=extract.memory_limit_mb or None,
        log_setup=log_setup,
    )


def make_provider(settings: Settings, name: str | None = None) -> Provider:
    """The configured provider, or ``name`` when given (``--provider``)."""
    chosen = name or settings.task.provider
    if chosen == "local":
        return LocalProvider(settings.provider_dir / "local")
    raise ConfigError("task.provider", f"unknown provider {chosen!r} (known: local)")
