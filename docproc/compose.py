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
from docproc.errors import ConfigError, ObjectStoreError
from docproc.extract import ExtractorPool
from docproc.models import ObjectState, S3WatchSpec, TaskSpec, object_key
from docproc.providers.anthropic import AnthropicProvider
from docproc.providers.base import Provider, ProviderLimits
from docproc.providers.bedrock import bedrock_provider
from docproc.providers.local import LocalProvider
from docproc.providers.messages import Structured
from docproc.providers.staging import FileLimits
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
    if chosen == "bedrock":
        return make_bedrock(settings)
    if chosen == "vertex":
        return make_vertex(settings)
    known = ", ".join(PROVIDERS)
    raise ConfigError("task.provider", f"unknown provider {chosen!r} (known: {known})")


def make_bedrock(settings: Settings) -> Provider:
    """The ``bedrock`` provider: its S3 staging, control-plane and runtime clients.

    Each client gets its own endpoint when ``[bedrock]`` names one; otherwise
    boto3 finds it (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL_BEDROCK``,
    ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, else AWS in ``region``).

    Raises:
        ConfigError: ``[bedrock]`` is missing, or its profile does not exist.
    """
    from docproc import aws  # boto3 costs ~0.3 s at start-up: only AWS users pay it
    from docproc.aws.bedrock import BedrockJobs, BedrockRuntime
    from docproc.aws.staging import S3Staging

    b = settings.bedrock
    if b is None:
        raise ConfigError("bedrock", "the bedrock provider needs a [bedrock] table")
    bucket, prefix = object_key(b.staging)
    try:
        s3 = aws.Session(aws.Endpoint(b.s3_endpoint_url, b.region, b.profile))
        # No blind retries of a create: after an unknown outcome the dispatcher looks
        # the job up by name first, then sends the same token again.
        control = aws.Session(aws.Endpoint(b.endpoint_url, b.region, b.profile), attempts=0)
        # No retries by botocore for live calls: a call that timed out may have been
        # answered (and billed); LiveBatches retries, and says so in the log.
        runtime = aws.Session(aws.Endpoint(b.runtime_endpoint_url, b.region, b.profile),
                              read_timeout=b.live_timeout, attempts=0)  # fmt: skip
    except ObjectStoreError as exc:
        raise ConfigError("bedrock.profile", exc.reason) from None
    limits = ProviderLimits(
        max_requests=b.max_records, max_bytes=b.max_job_bytes,
        max_in_flight=b.max_concurrent_jobs, min_requests=b.min_records,
        live_below_minimum=b.below_minimum == "live",
    )  # fmt: skip
    return bedrock_provider(
        store=S3Staging(aws.Bucket(bucket, s3), prefix), control=BedrockJobs(control),
        calls=BedrockRuntime(runtime), model=settings.task.model, role_arn=b.role_arn,
        spool_dir=settings.provider_dir / "bedrock", limits=limits,
        files=FileLimits(b.max_file_records, b.max_file_bytes), timeout_hours=b.timeout_hours,
        invocation_type=b.invocation_type, live_concurrency=b.live_concurrency,
        keep_staging=b.keep_staging,
    )  # fmt: skip


def make_vertex(settings: Settings) -> Provider:
    """The ``vertex`` provider: its Cloud Storage staging and its Vertex AI jobs client.

    Credentials are looked for at the first call, not here: none found (or
    refused) pauses submission with the reason, like a refused API key.

    Raises:
        ConfigError: ``[vertex]`` is missing.
    """
    # google-auth and the REST clients: imported only when Vertex is configured.
    from docproc.gcp.auth import AdcTokens, FileTokens
    from docproc.gcp.http import GoogleHttp
    from docproc.gcp.storage import GcsStaging
    from docproc.gcp.vertex import VertexJobs
    from docproc.providers.vertex import vertex_provider

    v = settings.vertex
    if v is None:
        raise ConfigError("vertex", "the vertex provider needs a [vertex] table")
    tokens = FileTokens(v.access_token_file) if v.access_token_file else AdcTokens()
    http = GoogleHttp(tokens, timeout=v.timeout)
    # STORAGE_EMULATOR_HOST: Google's clients send no credentials there, nor does docproc.
    storage_http = GoogleHttp(None, timeout=v.timeout) if v.storage_anonymous else http
    store = GcsStaging(storage_http, v.storage_endpoint, v.bucket, v.prefix,
                       spool_dir=settings.provider_dir / "vertex")  # fmt: skip
    jobs = VertexJobs(http, endpoint=v.api_endpoint, project=v.project, location=v.location)
    limits = ProviderLimits(max_requests=v.max_records, max_bytes=v.max_job_bytes,
                            max_in_flight=v.max_concurrent_jobs)  # fmt: skip
    structured: Structured = "json" if v.structured == "json" else "tool"
    return vertex_provider(store=store, control=jobs, model=settings.task.model, limits=limits,
                           structured=structured, keep_staging=v.keep_staging,
                           on_close=(http.close, storage_http.close))  # fmt: skip


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
