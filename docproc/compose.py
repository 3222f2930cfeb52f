"""The composition root: turns validated Settings into running components.

Stages never read Settings; this module translates them into explicit
arguments, once, for ``docproc scan`` and ``docproc run`` alike.
"""

from __future__ import annotations

from docproc.config import PROVIDERS, Settings, anthropic_key
from docproc.errors import ConfigError
from docproc.extract import ExtractorPool
from docproc.providers.anthropic import AnthropicProvider
from docproc.providers.base import Provider
from docproc.providers.local import LocalProvider


def make_pool(settings: Settings) -> ExtractorPool:
    extract = settings.extract
    return ExtractorPool(
        workers=extract.workers,
        limits=extract.limits,
        text_dir=settings.text_dir,
        recycle_after=extract.recycle_after,
        memory_limit_mb=extract.memory_limit_mb or None,
    )


def make_provider(settings: Settings, name: str | None = None) -> Provider:
    """The configured provider, or ``name`` when given (``--provider``)."""
    chosen = name or settings.task.provider
    if chosen == "local":
        return LocalProvider(settings.provider_dir / "local")
    if chosen == "anthropic":
        return AnthropicProvider(
            anthropic_key(),
            base_url=settings.anthropic.base_url,
            spool_dir=settings.provider_dir / "anthropic",
            timeout=settings.anthropic.timeout,
        )
    known = ", ".join(PROVIDERS)
    raise ConfigError("task.provider", f"unknown provider {chosen!r} (known: {known})")
