"""The daemon's life: start-up -> tick loop -> graceful shutdown.

Signal handlers only set flags. SIGTERM or SIGINT: finish the state change
in hand and exit 0 within seconds (batches in flight stay at the provider and
in the ledger; the next start picks them up); a second one exits at once.
SIGHUP: reload the configuration (watched folders added or removed,
thresholds) without losing queued work; a bad file is logged and ignored.

Under systemd (``Type=notify``) the loop reports through :mod:`docproc.notify`:
READY=1 once recovery is done and the first reconcile walk is queued; a
STATUS= line every few seconds (from :meth:`Pipeline.snapshot`, the same
value ``/metrics`` serves); WATCHDOG=1 from the loop itself, so a loop that
stops turning gets the service restarted, and so does one that is *stuck*
(a tick failing again for the same cause, see :class:`TickFailures`: the
pings stop, and STATUS=, ``/metrics`` and ``docproc status`` say why);
RELOADING=1 then READY=1 around a reload; STOPPING=1 and EXTEND_TIMEOUT_USEC while shutting down.

``once``: take what is there, flush batches without waiting for thresholds,
apply every result, write every sidecar, and exit when nothing is left.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import FrameType

import structlog

from docproc import logconfig
from docproc.adopt import Adopter
from docproc.compose import make_pool, make_provider, make_s3_root, task_for
from docproc.config import Settings, ledger_password, load, secrets_held, service_env
from docproc.dispatch import Dispatcher
from docproc.errors import (
    ConfigError,
    LedgerRestartNeeded,
    LedgerUnwritable,
    ObjectStoreError,
    SourceError,
)
from docproc.health import LedgerOutage, Snapshot, TickFailures, status_line
from docproc.intake import Intake
from docproc.ledger.connection import open_ledger
from docproc.ledger.dispatch import DispatchLedger
from docproc.ledger.imports import ImportLedger
from docproc.ledger.intake import IntakeLedger
from docproc.ledger.publishing import PublishLedger
from docproc.ledger.queries import Queries
from docproc.ledger.requests import RequestLedger
from docproc.ledger.uris import file_uri
from docproc.metrics import MetricsServer
from docproc.models import S3WatchSpec, WatchSpec
from docproc.notify import Notifier
from docproc.operations import Operations
from docproc.pipeline import Pipeline
from docproc.providers.base import Provider
from docproc.publish import Publisher
from docproc.sources.local import LocalSource
from docproc.storage import SpaceGuard, check_state_dir, free_bytes
from docproc.textstore import TextStore
from docproc.writerlock import WriterLock

log = structlog.get_logger()
TICK_WAIT_S = 0.5
MAX_FAILED_TICKS = 30
STATUS_EVERY_S = 5.0  # how often STATUS= and /metrics are refreshed
STOP_GRACE_S = 30.0  # asked of systemd (EXTEND_TIMEOUT_USEC) while shutdown drains
# A commit of unknown outcome landed, or another process became the ledger's writer:
# what this process holds is stale, so it ends (systemd restarts it; Restart=on-failure).
EXIT_LEDGER_LOST = 3


@dataclass(frozen=True)
class Options:
    """How ``docproc run`` was asked to run."""

    config: Path | None = None
    state_dir: Path | None = None
    provider: str | None = None
    once: bool = False
    log_level: str | None = None  # overrides [log] level


class Daemon:
    """Owns the ledger connection and every component, on the main thread."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.stopping = False
        self.reload_requested = False
        self._watches: dict[Path, tuple[int, WatchSpec]] = {}
        self._s3_watches: dict[str, tuple[int, S3WatchSpec]] = {}
        env = service_env()
        self._journal_stream = env.journal_stream
        self.notifier = Notifier(env.notify_socket, env.watchdog_usec)
        self.metrics: MetricsServer | None = None
        self._status, self._next_status = "starting", 0.0
        self.failures = TickFailures()
        self.outage = LedgerOutage()  # the ledger refusing writes: a known state, backed off
        self._snapshot = Snapshot()
        self._stuck_recorded = False  # the ledger says stuck (this run or the one before)

    def run(self) -> int:
        """Run until stopped (or, with ``once``, until the work is done); the exit code.

        Raises:
            StorageError: the state directory is missing, read-only or full (before any work).
            LedgerBusy: another ``run`` or ``scan`` writes this ledger (before any work).
        """
        settings = self._load()
        check_state_dir(settings.state_dir, create_parents=settings.state_dir_default)
        with WriterLock.acquire(settings.state_dir, "docproc run"):
            return self._run(settings)

    def _run(self, settings: Settings) -> int:
        level = self.options.log_level or settings.log.level
        fmt = logconfig.for_daemon(
            level,
            settings.log.format,
            journal_stream=self._journal_stream,
            redact=secrets_held(),
        )
        self._log_setup = partial(logconfig.for_daemon, level, fmt)
        # Before anything is logged: a provider that cannot be made (unknown, no key) is
        # a configuration error, not a daemon that started and stopped.
        provider = make_provider(settings, self.options.provider)
        previous = self._install_signals()
        try:
            self._start(settings, provider)
            self._report(time.monotonic(), send=False)
            self.notifier.ready(self._status)
            return self._loop()
        except LedgerRestartNeeded as exc:  # what is in hand no longer matches the ledger
            log.error("daemon.ledger_restart_needed", reason=str(exc),
                      detail="exiting; restarted, it resumes from the ledger")  # fmt: skip
            return EXIT_LEDGER_LOST
        finally:
            self._shutdown()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # -- signals ------------------------------------------------------------

    def _install_signals(self) -> dict[int, signal.Handlers | int | None]:
        previous = {}
        for signum, handler in (
            (signal.SIGTERM, self._on_stop),
            (signal.SIGINT, self._on_stop),
            (signal.SIGHUP, self._on_reload),
        ):
            previous[signum] = signal.signal(signum, handler)
        return previous  # type: ignore[return-value]

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            os._exit(1)  # second signal: no more waiting
        self.stopping = True

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested = True

    # -- start-up -----------------------------------------------------------

    def _load(self) -> Settings:
        return load(self.options.config, state_dir=self.options.state_dir)

    def _start(self, settings: Settings, provider: Provider) -> None:
        self.settings = self.settings_at_start = settings
        self.space = SpaceGuard(settings.state_dir, settings.storage.min_free_mb)
        # One connection; each stage is handed only its part of the ledger.
        self.ledger = open_ledger(settings.ledger_location, actor="daemon",
                                  password=ledger_password(), claim="docproc run")  # fmt: skip
        intake_part = IntakeLedger.on(self.ledger)
        self.roots = intake_part.files
        work = DispatchLedger.on(self.ledger, prices=settings.prices,
                                 retry_base=settings.retry_backoff)  # fmt: skip
        store = TextStore(settings.text_dir)
        self.intake = Intake(
            intake_part,
            make_pool(settings, log_setup=self._log_setup),
            max_attempts=settings.extract.max_attempts,
        )
        recovered = self.intake.recover()
        task = task_for(settings, self.options.provider)
        dispatcher = Dispatcher(
            work, provider, store, task=task, limits=settings.batch,
            poll_interval=settings.poll_interval, max_attempts=settings.max_attempts,
            prices=settings.prices, budget=settings.budget,
        )  # fmt: skip
        publisher = Publisher(PublishLedger.on(self.ledger), task_id=dispatcher.task_id,
                              settings=settings.sidecars)  # fmt: skip
        swept = publisher.recover() + store.sweep()
        adopter = Adopter(ImportLedger(self.ledger), settings=settings.sidecars)
        operations = Operations(RequestLedger(self.ledger), work, dispatcher)
        self.pipeline = Pipeline(self.intake, dispatcher, publisher, adopter, operations,
                                 queries=Queries(self.ledger))  # fmt: skip
        self._stuck_recorded = work.conditions.stuck_reason() is not None
        for spec in settings.watches:
            self._add_watch(spec)
        for s3_spec in settings.s3_watches:
            self._add_s3_watch(s3_spec)
        self._start_metrics(settings)
        log.info("daemon.ready", state_dir=str(settings.state_dir), provider=provider.name,
                 roots=len(self._watches) + len(self._s3_watches), recovered_extractions=recovered,
                 open_batches=dispatcher.in_flight, temp_files_removed=swept)  # fmt: skip

    def _start_metrics(self, settings: Settings) -> None:
        if settings.metrics.listen is None:
            return
        host, port = settings.metrics.listen
        try:
            self.metrics = MetricsServer(host, port)
        except OSError as exc:
            raise ConfigError("metrics.listen", f"cannot listen on {host}:{port}: {exc}") from None
        log.info("metrics.listening", address=f"{host}:{self.metrics.address[1]}")

    def _add_watch(self, spec: WatchSpec) -> None:
        source = LocalSource(spec, rescan_interval=self.settings.rescan_interval)
        try:
            source.start()
        except SourceError as exc:
            log.error("source.unavailable", root=str(spec.path), error=str(exc))
            return
        root_id = self.roots.ensure_root(file_uri(spec.path), kind="local", mode=source.mode.value)
        self.intake.add_source(root_id, source)
        self._watches[spec.path] = (root_id, spec)

    def _add_s3_watch(self, spec: S3WatchSpec) -> None:
        mode = "sqs+list" if spec.sqs_queue_url else "list"
        root_id = self.roots.ensure_root(spec.uri, kind="s3", mode=mode)
        try:
            source, sink = make_s3_root(
                spec, self.settings, fetch_dir=self.settings.fetch_dir / str(root_id),
                known_all=functools.partial(self.roots.known_objects, root_id),
                known_one=functools.partial(self.roots.known_object, root_id),
            )  # fmt: skip
            source.start()
        except (ObjectStoreError, OSError) as exc:
            log.error("source.unavailable", root=spec.uri, error=str(exc))
            self.roots.root_status(root_id, str(exc))
            return
        self.intake.add_source(root_id, source)
        self.pipeline.publisher.add_object_root(spec.uri, sink)
        if self.pipeline.adopter is not None:
            self.pipeline.adopter.add_object_root(spec.uri, sink)
        self._s3_watches[spec.uri] = (root_id, spec)

    def _remove_s3_watch(self, uri: str) -> None:
        root_id, _ = self._s3_watches.pop(uri)
        self.pipeline.publisher.remove_object_root(uri)
        if self.pipeline.adopter is not None:
            self.pipeline.adopter.remove_object_root(uri)
        source = self.intake.remove_source(root_id)
        if source is not None:
            source.close()

    def _remove_watch(self, path: Path) -> None:
        root_id, _ = self._watches.pop(path)
        source = self.intake.remove_source(root_id)
        if source is not None:
            source.close()

    # -- the loop -----------------------------------------------------------

    def _loop(self) -> int:
        while not self.stopping:
            self._ping()
            self._check_space()
            try:
                if self.reload_requested:
                    self._reload()
                self.pipeline.tick(time.monotonic(), wait=self._tick_wait(),
                                   flush_all=self.options.once)  # fmt: skip
                if self.failures.succeeded(time.monotonic()) or self._stuck_recorded:
                    self._recovered()
                if self.outage.over():
                    self._next_status = 0.0
                self._report(time.monotonic())
            except LedgerUnwritable as exc:  # a known state, not a failure: wait for the disk
                self._pause(self._unwritable(exc))
            except Exception as exc:  # the loop's boundary: log, back off, carry on
                log.exception("daemon.tick_failed", consecutive=self.failures.consecutive + 1)
                if self.failures.failed(exc, time.monotonic()):
                    self._became_stuck()
                if self.failures.consecutive >= MAX_FAILED_TICKS or (
                    self.options.once and self.failures.stuck
                ):
                    return 1
                self._pause(min(5.0, 0.2 * self.failures.consecutive))
            if self.options.once and self.pipeline.idle():
                log.info("daemon.once_done")
                break
        return 0

    def _ping(self) -> None:
        """The only watchdog ping. A loop that stalls, or turns without getting anywhere
        (stuck: the same failure tick after tick), stops feeding it: systemd restarts us.
        A ledger the disk refuses is not stuck: the loop knows why it waits (STATUS= says)."""
        if self.failures.stuck is None:
            self.notifier.watchdog(time.monotonic())

    def _became_stuck(self) -> None:
        reason = self.failures.stuck
        log.error("daemon.stuck", reason=reason)
        self._record_stuck(reason)
        self._next_status = 0.0
        self._report(time.monotonic())

    def _recovered(self) -> None:
        log.info("daemon.recovered")
        self._record_stuck(None)
        self._next_status = 0.0

    def _record_stuck(self, reason: str | None) -> None:
        """Tell ``docproc status`` through the ledger, if the ledger is not the trouble."""
        try:
            self.pipeline.dispatcher.work.conditions.daemon_stuck(reason)
        except (Exception, LedgerUnwritable):  # STATUS= and /metrics still say it
            log.warning("daemon.stuck_not_recorded", exc_info=True)
            return
        self._stuck_recorded = reason is not None

    def _unwritable(self, exc: LedgerUnwritable) -> float:
        """The ledger refused a write (nothing was lost): say why; how long to wait.

        The watchdog is still fed (the loop turns and knows why it waits), and
        STATUS= starts with the reason until a tick goes through again.
        """
        delay = self.outage.refused(str(exc))
        self._next_status = 0.0
        self._report(time.monotonic())
        return delay

    def _check_space(self) -> None:
        """Below ``[storage] min_free_mb`` no new work is taken; above it again, it is."""
        if self.pipeline.intake.hold_new_work(self.space.shortage()):
            self._next_status = 0.0

    def _tick_wait(self) -> float:
        """The longest a tick may block: short enough for every watchdog ping."""
        interval = self.notifier.watchdog_interval
        return TICK_WAIT_S if interval is None else min(TICK_WAIT_S, interval / 2)

    def _pause(self, seconds: float) -> None:
        """Back off after a failed tick, still pinging the watchdog (the loop is alive)."""
        deadline = time.monotonic() + seconds
        while not self.stopping and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, self._tick_wait()))
            self._ping()

    def _report(self, now: float, *, send: bool = True) -> None:
        """Every STATUS_EVERY_S: one snapshot, to systemd's STATUS= and to /metrics."""
        if now < self._next_status:
            return
        self._next_status = now + STATUS_EVERY_S
        try:
            self._snapshot = self.pipeline.snapshot()
        except LedgerUnwritable as exc:  # not even read (its server is away): the last
            if self.outage.reason is None:  # figures, and STATUS= and /metrics lead with why
                self.outage.refused(str(exc))
        except Exception:
            if self.failures.stuck is None:
                raise
            log.warning("daemon.snapshot_failed", exc_info=True)  # the last one, marked stuck
        snapshot = replace(
            self._snapshot, stuck=self.failures.stuck, ledger_unwritable=self.outage.reason,
            state_free_bytes=free_bytes(self.space.path),
        )  # fmt: skip
        if self.metrics is not None:
            self.metrics.publish(snapshot)
        line = status_line(snapshot)
        if line != self._status:
            self._status = line
            if send:
                self.notifier.status(line)

    def _reload(self) -> None:
        self.reload_requested = False
        self.notifier.reloading()
        try:
            self._apply_reload()
        finally:
            self._next_status = 0.0
            self.notifier.ready(self._status)

    def _apply_reload(self) -> None:
        try:
            new = self._load()
        except ConfigError as exc:
            log.error("daemon.reload_failed", error=str(exc))
            return
        wanted = {spec.path: spec for spec in new.watches}
        for path, (_, spec) in list(self._watches.items()):
            if wanted.get(path) != spec:
                self._remove_watch(path)
        self.settings = new
        for path, spec in wanted.items():
            if path not in self._watches:
                self._add_watch(spec)
        self._reload_s3(new)
        self.pipeline.dispatcher.configure(new.batch, new.poll_interval, new.budget)
        self.pipeline.roots_changed()
        if new.task != self.pipeline.dispatcher.task:
            log.warning("daemon.task_changed", detail="a new [task] takes effect at restart")
        if new.metrics != self.settings_at_start.metrics:
            log.warning("daemon.metrics_changed", detail="a new [metrics] takes effect at restart")
        log.info("daemon.reloaded", roots=len(self._watches) + len(self._s3_watches))

    def _reload_s3(self, new: Settings) -> None:
        wanted = {spec.uri: spec for spec in new.s3_watches}
        for uri, (_, spec) in list(self._s3_watches.items()):
            if wanted.get(uri) != spec:
                self._remove_s3_watch(uri)
        for uri, spec in wanted.items():
            if uri not in self._s3_watches:
                self._add_s3_watch(spec)

    def _shutdown(self) -> None:
        self.notifier.stopping()
        log.info("daemon.stopping")
        self.notifier.extend_timeout(STOP_GRACE_S)  # workers and the provider thread drain
        if self.metrics is not None:
            self.metrics.close()
        if hasattr(self, "pipeline"):
            self.pipeline.close()
        elif hasattr(self, "intake"):
            self.intake.close()
        if hasattr(self, "ledger"):
            self.ledger.close()
        log.info("daemon.stopped")
