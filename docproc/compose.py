"""The composition root: turns validated Settings into running components.

Stages never read Settings; this module translates them into explicit
arguments, once, for ``docproc scan`` and ``docproc run`` alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from docproc.config import (
    ANTHROPIC_KEY,
    DEFAULT_MODELS,
    PROVIDERS,
    Settings,
    anthropic_key,
    secret,
)
from docproc.errors import ConfigError
from docproc.extract import ExtractorPool
from docproc.models import ObjectState, S3WatchSpec, TaskSpec, object_key
from docproc.providers.anthropic import AnthropicProvider
from docproc.providers.base import Provider
from docproc.providers.local import LocalProvider
from docproc.sidecar_objects import ObjectSidecars
from docproc.sources.notifications import NotificationListener
from docproc.sources.s3 import S3Source


def make_pool(
    settings: Settings,
    log_setup: Callable[[], object] | None = None,
    start_method: str = "forkserver",
    batch_sync: bool = False,
) -> ExtractorPool:
    extract = settings.extract
    return ExtractorPool(
        start_method=start_method,
        batch_sync=batch_sync,
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
    if chosen == "anthropic":
        return AnthropicProvider(
            anthropic_key(),
            base_url=settings.anthropic.base_url,
            spool_dir=settings.provider_dir / "anthropic",
            timeout=settings.anthropic.timeout,
        )
    known = ", ".join(PROVIDERS)
    raise ConfigError("task.provider", f"unknown provider {chosen!r} (known: {known})")


def make_request_builder(settings: Settings, name: str | None = None) -> Provider:
    """A provider that only builds requests (for estimates): it needs no key. Its
    calls to the service fail (a refused key); ``make_provider`` is for those."""
    if (name or settings.task.provider) == "anthropic" and secret(ANTHROPIC_KEY) is None:
        return AnthropicProvider(
            "", base_url=settings.anthropic.base_url,
            spool_dir=settings.provider_dir / "anthropic", timeout=settings.anthropic.timeout,
        )  # fmt: skip
    return make_provider(settings, name)


def task_for(settings: Settings, provider: str | None = None, model: str | None = None) -> TaskSpec:
    """The configured task, moved to another provider (``--provider``; its default
    model) and/or another model (``--model``)."""
    task = settings.task
    if provider and provider != task.provider:
        task = replace(task, provider=provider, model=DEFAULT_MODELS.get(provider, ""))
    if model:
        task = replace(task, model=model)
    return task


def make_s3_root(
    spec: S3WatchSpec,
    settings: Settings,
    *,
    fetch_dir: Path,
    known_all: Callable[[], Mapping[str, ObjectState]],
    known_one: Callable[[str], ObjectState | None],
) -> tuple[S3Source, ObjectSidecars]:
    """The source and the sidecar writer of one S3 watch, sharing one boto3 session.

    Raises:
        ObjectStoreError: the session cannot be made (e.g. an unknown profile).
    """
    from docproc import aws  # boto3 costs ~0.3 s at start-up: only S3 watches pay it

    session = aws.Session(aws.Endpoint(spec.endpoint_url, spec.region, spec.profile))
    bucket = aws.Bucket(spec.bucket, session)
    listener = None
    if spec.sqs_queue_url:
        queue = aws.Queue(spec.sqs_queue_url, session)
        listener = NotificationListener(queue, spec.bucket, spec.prefix,
                                        wait_seconds=spec.sqs_wait_seconds)  # fmt: skip
    source = S3Source(
        spec, bucket, fetch_dir=fetch_dir, known_all=known_all, known_one=known_one,
        max_bytes=settings.extract.limits.max_file_bytes, listener=listener,
    )  # fmt: skip
    out = bucket
    if spec.output_prefix and object_key(spec.output_prefix)[0] != spec.bucket:
        out = aws.Bucket(object_key(spec.output_prefix)[0], session)
    sink = ObjectSidecars(out, prefix=spec.prefix, settings=settings.sidecars,
                          output_prefix=spec.output_prefix)  # fmt: skip
    return source, sink
