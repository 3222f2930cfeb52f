"""The single-table sections: task, batch, extract, costs, budget, sidecars, log, metrics."""

from __future__ import annotations

import string
from pathlib import Path

from docproc.config.environment import env
from docproc.config.settings import (
    DEFAULT_ANTHROPIC_URL,
    AnthropicSettings,
    ExtractSettings,
    LogSettings,
    MetricsSettings,
)
from docproc.config.table import Table, check_folder, check_url
from docproc.costs import DEFAULT_PRICES, Budget, ModelPrice, PriceTable
from docproc.errors import ConfigError
from docproc.models import BatchLimits, ExtractLimits, OcrOptions, SidecarSettings, TaskSpec
from docproc.providers.messages import PROMPT_FIELDS

PROVIDERS = ("local", "anthropic", "bedrock", "vertex")
OCR_MODES = ("auto", "off")
DEFAULT_MODELS = {
    "local": "local-extractive-1",
    "anthropic": "claude-sonnet-4-5",
    "vertex": "claude-sonnet-4-5@20250929",
}
DEFAULT_PROMPT = (
    "Summarise the document below for someone deciding whether to read it. "
    "Then pick the passages that matter most, quoting them exactly as written."
)


def task(t: Table, extract: ExtractSettings) -> tuple[TaskSpec, int, float]:
    provider = t.get("provider", str, "local")
    if provider not in PROVIDERS:
        raise ConfigError(
            t.key("provider"), f"must be one of {', '.join(PROVIDERS)} (got {provider!r})"
        )
    spec = TaskSpec(
        provider=provider,
        model=t.get("model", str, DEFAULT_MODELS.get(provider, "")),
        prompt=t.get("prompt", str, DEFAULT_PROMPT),
        max_tokens=t.integer("max_tokens", 1024),
        summary_sentences=t.integer("summary_sentences", 3),
        max_highlights=t.integer("max_highlights", 10, minimum=3),
        extractor=f"max_chars={extract.limits.max_chars}",
        max_input_chars=t.integer("max_input_chars", 400_000, minimum=1000),
    )
    _check_prompt(t.key("prompt"), spec.prompt)
    max_attempts = t.integer("max_attempts", 3)
    backoff = t.number("retry_backoff", 60.0, minimum=0.1)
    t.finish()
    if not spec.model:
        raise ConfigError(t.key("model"), f"is required for provider {provider!r}")
    return spec, max_attempts, backoff


def _check_prompt(key: str, prompt: str) -> None:
    """A prompt template may use {summary_sentences} and {max_highlights}; '{{' is a brace."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None}
    except ValueError as exc:
        raise ConfigError(key, f"is not a valid template: {exc} (write {{{{ for a brace)") from None
    unknown = fields - PROMPT_FIELDS
    if unknown:
        known = ", ".join("{" + name + "}" for name in sorted(PROMPT_FIELDS))
        raise ConfigError(key, f"unknown placeholder {sorted(unknown)[0]!r} (known: {known})")


def anthropic(t: Table) -> AnthropicSettings:
    default = env("ANTHROPIC_BASE_URL") or DEFAULT_ANTHROPIC_URL
    base_url = t.get("base_url", str, default)
    check_url(t.key("base_url"), base_url)
    settings = AnthropicSettings(base_url, timeout=t.number("timeout", 600.0, minimum=1.0))
    t.finish()
    return settings


def prices(t: Table) -> PriceTable:
    models = t.table("models")
    prices = dict(DEFAULT_PRICES)
    for name in list(models.data):
        entry = models.table(name)
        known = DEFAULT_PRICES.get(name)
        prices[name] = ModelPrice(
            entry.number("input", 0.0),
            entry.number("output", 0.0),
            entry.integer("cache_min_tokens", known.cache_min_tokens if known else 1024),
        )
        entry.finish()
    table = PriceTable(
        prices=prices,
        batch_discount=t.number("batch_discount", 0.5),
        cache_write=t.number("cache_write_multiplier", 2.0),
        cache_read=t.number("cache_read_multiplier", 0.1),
    )
    t.finish()
    return table


def budget(t: Table) -> Budget:
    budget = Budget(t.number("daily_usd", 0.0), t.number("monthly_usd", 0.0))
    t.finish()
    return budget


def batch(t: Table, default_wait: float) -> BatchLimits:
    hard = BatchLimits()
    limits = BatchLimits(
        max_requests=t.integer("max_requests", 10_000),
        max_bytes=t.integer("max_mb", 200) * 1_000_000,
        max_wait=t.number("max_wait", default_wait),
        max_in_flight=t.integer("max_in_flight", 4),
    )
    t.finish()
    if limits.max_requests > hard.hard_max_requests:
        raise ConfigError(t.key("max_requests"), f"must be at most {hard.hard_max_requests}")
    if limits.max_bytes > hard.hard_max_bytes:
        raise ConfigError(t.key("max_mb"), f"must be at most {hard.hard_max_bytes // 1_000_000}")
    return limits


def sidecars(t: Table, base: Path) -> SidecarSettings:
    output = t.get("output_dir", str, "")
    settings = SidecarSettings(
        summary_suffix=t.get("summary_suffix", str, ".summary.md"),
        json_suffix=t.get("json_suffix", str, ".docproc.json"),
        output_dir=check_folder(t.key("output_dir"), base / output) if output else None,
        delete_with_source=t.get("delete_with_source", bool, False),
    )
    t.finish()
    for key, suffix in (
        ("summary_suffix", settings.summary_suffix),
        ("json_suffix", settings.json_suffix),
    ):
        if not suffix.startswith(".") or "/" in suffix or len(suffix) < 2:
            raise ConfigError(
                t.key(key), f"must start with '.' and name no folder (got {suffix!r})"
            )
    if settings.summary_suffix == settings.json_suffix:
        raise ConfigError(t.key("json_suffix"), "must differ from summary_suffix")
    return settings


def extract(t: Table) -> ExtractSettings:
    limits = ExtractLimits(
        max_file_bytes=t.integer("max_file_mb", 100) * 1024 * 1024,
        max_chars=t.integer("max_chars", 2_000_000),
        max_expansion_ratio=t.number("max_expansion_ratio", 100.0, minimum=1.0),
        max_archive_bytes=t.integer("max_archive_mb", 512) * 1024 * 1024,
        timeout_seconds=t.number("timeout_seconds", 120.0, minimum=1.0),
        max_image_pixels=int(t.number("max_image_megapixels", 100.0, minimum=0.01) * 1_000_000),
        max_pages=t.integer("max_pages", 5000),
        max_archive_members=t.integer("max_archive_members", 10_000),
        max_nesting=t.integer("max_nesting", 3),
        ocr=_ocr(t),
    )
    settings = ExtractSettings(
        workers=t.integer("workers", 2),
        recycle_after=t.integer("recycle_after", 1000),
        memory_limit_mb=t.integer("memory_limit_mb", 2048, minimum=0),
        max_attempts=t.integer("max_attempts", 5),
        limits=limits,
    )
    t.finish()
    return settings


def _ocr(t: Table) -> OcrOptions:
    mode = t.get("ocr", str, "auto")
    if mode not in OCR_MODES:
        raise ConfigError(t.key("ocr"), f"must be one of {', '.join(OCR_MODES)} (got {mode!r})")
    languages = t.strings("ocr_languages") if "ocr_languages" in t.data else ("eng",)
    for language in languages:
        if not language or not language.replace("_", "").isalnum():
            raise ConfigError(
                t.key("ocr_languages"), f"must be Tesseract language codes (got {language!r})"
            )
    if not languages:
        raise ConfigError(t.key("ocr_languages"), "must name at least one language, e.g. eng")
    return OcrOptions(
        mode=mode,
        languages=languages,
        timeout_seconds=t.number("ocr_timeout_seconds", 60.0, minimum=1.0),
        max_pages=t.integer("ocr_max_pages", 100),
    )


def log(t: Table) -> LogSettings:
    level = t.get("level", str, "info").lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise ConfigError(t.key("level"), f"must be debug, info, warning or error (got {level!r})")
    fmt = t.get("format", str, "auto")
    if fmt not in {"auto", "json", "console"}:
        raise ConfigError(t.key("format"), f"must be auto, json or console (got {fmt!r})")
    t.finish()
    return LogSettings(level, fmt)


def metrics(t: Table) -> MetricsSettings:
    listen = t.get("listen", str, "")
    t.finish()
    if not listen:
        return MetricsSettings()
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:9464
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        example = "e.g. 127.0.0.1:9464"
        raise ConfigError(t.key("listen"), f"must be HOST:PORT, {example} (got {listen!r})")
    return MetricsSettings((host, int(port)))
