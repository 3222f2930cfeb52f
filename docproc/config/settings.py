"""The validated settings, frozen: what the rest of docproc is handed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from docproc.config.bedrock import BedrockSettings
from docproc.config.vertex import VertexSettings
from docproc.costs import Budget, PriceTable
from docproc.models import (
    BatchLimits,
    ExtractLimits,
    S3WatchSpec,
    SidecarSettings,
    TaskSpec,
    WatchSpec,
)

DEFAULT_ANTHROPIC_URL = "https://api.anthropic.com"


@dataclass(frozen=True, slots=True)
class ExtractSettings:
    """How extraction workers run, and the per-document limits they enforce."""

    workers: int = 2
    recycle_after: int = 1000
    memory_limit_mb: int = 2048
    max_attempts: int = 5
    limits: ExtractLimits = field(default_factory=ExtractLimits)


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "info"
    format: str = "auto"  # auto: console on a terminal, JSON lines otherwise


@dataclass(frozen=True, slots=True)
class AnthropicSettings:
    """Where and how the Message Batches API is reached (the key is a secret, not here)."""

    base_url: str = DEFAULT_ANTHROPIC_URL
    timeout: float = 600.0


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """The optional Prometheus endpoint; ``listen`` is None when it is off."""

    listen: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """How much room the state directory keeps (``[storage]``).

    ``min_free_mb`` None: 64 MB, or 5 % of a smaller filesystem (see
    :class:`docproc.storage.SpaceGuard`).
    """

    min_free_mb: int | None = None


@dataclass(frozen=True, slots=True)
class ServiceEnv:
    """What systemd told this process through its environment (all empty elsewhere).

    ``watchdog_usec`` is None when the watchdog is off or meant for another
    process (``WATCHDOG_PID`` names a different pid).
    """

    notify_socket: str | None = None
    watchdog_usec: int | None = None
    journal_stream: str = ""  # "device:inode" of the journal's stream, when logging to it


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything docproc was configured with, validated."""

    state_dir: Path
    watches: tuple[WatchSpec, ...]
    s3_watches: tuple[S3WatchSpec, ...] = ()
    rescan_interval: float = 300.0
    settle_seconds: float = 5.0
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    task: TaskSpec = field(default_factory=TaskSpec)
    batch: BatchLimits = field(default_factory=BatchLimits)
    poll_interval: float = 1.0  # how often submitted batches are polled
    max_attempts: int = 3  # per job, before it is quarantined
    retry_backoff: float = 60.0  # seconds before a job's first retry; doubles each time
    sidecars: SidecarSettings = field(default_factory=SidecarSettings)
    log: LogSettings = field(default_factory=LogSettings)
    anthropic: AnthropicSettings = field(default_factory=AnthropicSettings)
    prices: PriceTable = field(default_factory=PriceTable)
    budget: Budget = field(default_factory=Budget)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    bedrock: BedrockSettings | None = None  # [bedrock], when configured
    vertex: VertexSettings | None = None  # [vertex], when configured
    storage: StorageSettings = field(default_factory=StorageSettings)
    ledger_url: str | None = None  # [ledger] url: PostgreSQL; None: SQLite in state_dir
    source: Path | None = None  # the file these settings came from, if any
    state_dir_default: bool = False  # the built-in location (its parents may be created)

    @property
    def ledger_path(self) -> Path:
        """The SQLite ledger's file (also the source of ``ledger copy``)."""
        return self.state_dir / "ledger.db"

    @property
    def ledger_location(self) -> Path | str:
        """Where the ledger is: the PostgreSQL URL if one is set, else the SQLite file."""
        return self.ledger_url or self.ledger_path

    @property
    def text_dir(self) -> Path:
        return self.state_dir / "text"

    @property
    def fetch_dir(self) -> Path:
        """Where S3 sources copy object bytes for extraction."""
        return self.state_dir / "fetch"

    def watch_for(self, path: Path) -> WatchSpec:
        """The configured watch for ``path``, or one with the intake defaults."""
        for spec in self.watches:
            if spec.path == path:
                return spec
        return WatchSpec(
            path=path, settle_seconds=self.settle_seconds, ignore_suffixes=self.sidecars.suffixes
        )

    @property
    def provider_dir(self) -> Path:
        """Where the ``local`` provider keeps its submitted batches."""
        return self.state_dir / "provider"
