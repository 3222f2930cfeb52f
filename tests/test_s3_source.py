"""The S3 source against moto's real HTTP server: listing, fetching, hints and faults."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docproc import aws
from docproc.ledger.connection import open_ledger
from docproc.ledger.intake import Seen
from docproc.models import Extraction, IntakeBatch, S3WatchSpec, object_uri
from docproc.sources.notifications import NotificationListener, keys_from_message
from docproc.sources.s3 import S3Source
from tests.parts import count, extractions, files, queries
from tests.s3server import REGION, Fault, FaultProxy, Moto

pytestmark = pytest.mark.usefixtures("aws_env")


class Harness:
    """An S3Source whose findings are recorded in a real ledger, as the intake would."""

    def __init__(self, tmp_path: Path, url: str, bucket: str, **options: Any) -> None:
        self.ledger = open_ledger(tmp_path / "ledger.db")
        listener_url = options.pop("queue_url", None)
        self.spec = S3WatchSpec(bucket=bucket, prefix=options.pop("prefix", "docs/"),
                                endpoint_url=url, interval=options.pop("interval", 3600.0),
                                **options)  # fmt: skip
        self.root_id = files(self.ledger).ensure_root(self.spec.uri, kind="s3", mode="list")
        self.session = aws.Session(aws.Endpoint(url, REGION), attempts=1)
        listener = None
        if listener_url:
            listener = NotificationListener(aws.Queue(listener_url, self.session), bucket,
                                            self.spec.prefix, wait_seconds=1)  # fmt: skip
        self.source = S3Source(
            self.spec, aws.Bucket(bucket, self.session), fetch_dir=tmp_path / "fetch",
            known_all=functools.partial(files(self.ledger).known_objects, self.root_id),
            known_one=functools.partial(files(self.ledger).known_object, self.root_id),
            max_bytes=1000, listener=listener, backoff=(0.2, 1.0),
        )  # fmt: skip
        self.source.start()
        self.now = 0.0

    def poll(self, advance: float = 0.0) -> IntakeBatch:
        self.now += advance
        batch = self.source.poll(self.now, {})
        seen = [Seen(self.root_id, c.path, c.size, c.mtime_ns,
                     hashlib.sha256(c.path.read_bytes()).hexdigest(), uri=c.uri, etag=c.etag)
                for c in batch.ready]  # fmt: skip
        files(self.ledger).record_versions(seen)
        extractions(self.ledger).record_extractions(
            [Extraction(s.sha256, "text", s.sha256, 1) for s in seen]
        )
        for where in batch.gone:
            files(self.ledger).record_gone(where)
        for where, reason in batch.problems:
            files(self.ledger).record_problem(self.root_id, where, reason)
        return batch

    def drain(self, advance: float = 0.0, polls: int = 200) -> dict[str, list[Any]]:
        """Poll until the listing is done and nothing is queued; everything reported."""
        found: dict[str, list[Any]] = {"ready": [], "gone": [], "problems": []}
        for i in range(polls):
            batch = self.poll(advance if i == 0 else 0.0)
            found["ready"] += [c.uri for c in batch.ready]
            found["gone"] += list(batch.gone)
            found["problems"] += list(batch.problems)
            if not self.source.pending and self.source.status == "ok":
                return found
        raise AssertionError(f"still pending after {polls} polls: {self.source.status}")

    def gets(self) -> int:
        return self.session.requests["GetObject"]

    def close(self) -> None:
        self.source.close()
        self.ledger.close()


@pytest.fixture
def s3(moto: Moto) -> Any:
    return moto.client()


@pytest.fixture
def harness(tmp_path: Path, moto: Moto, s3: Any) -> Iterator[Harness]:
    h = Harness(tmp_path, moto.url, moto.bucket(s3))
    yield h
    h.close()


def test_paginated_listing_fetches_each_key_once_and_an_unchanged_listing_gets_nothing(
    harness: Harness, moto: Moto
) -> None:
    keys = {f"docs/batch/{i:05d}.txt": f"document {i}".encode() for i in range(2600)}
    moto.seed(harness.spec.bucket, {**keys, "docs/": b"", "outside/x.txt": b"not watched"})
    first = harness.drain()
    assert sorted(first["ready"]) == sorted(object_uri(harness.spec.bucket, k) for k in keys)
    assert harness.session.requests["ListObjectsV2"] == 3  # 1000 keys a page
    assert harness.gets() == 2600
    assert len(files(harness.ledger).known_objects(harness.root_id)) == 2600

    again = harness.drain(advance=3600.0)
    assert again == {"ready": [], "gone": [], "problems": []}
    assert harness.gets() == 2600  # not one GET for 2,600 unchanged keys
    assert harness.session.requests["ListObjectsV2"] == 6
    assert harness.source.last_scan_at is not None


def test_changed_new_and_deleted_objects(harness: Harness, s3: Any, moto: Moto) -> None:
    bucket = harness.spec.bucket
    moto.seed(bucket, {"docs/a.txt": b"alpha", "docs/b.txt": b"beta", "docs/c.txt": b"gamma"})
    harness.drain()
    s3.put_object(Bucket=bucket, Key="docs/a.txt", Body=b"alpha, edited")
    s3.delete_object(Bucket=bucket, Key="docs/b.txt")
    s3.put_object(Bucket=bucket, Key="docs/ünï cödé/d e+f.txt", Body=b"delta")
    gets = harness.gets()
    found = harness.drain(advance=3600.0)
    assert sorted(found["ready"]) == sorted(
        [object_uri(bucket, "docs/a.txt"), object_uri(bucket, "docs/ünï cödé/d e+f.txt")]
    )
    assert found["gone"] == [object_uri(bucket, "docs/b.txt")]
    assert harness.gets() == gets + 2
    rows = {r["path"]: r["state"] for r in queries(harness.ledger).files()}
    assert rows[f"s3://{bucket}/docs/b.txt"] == "deleted"
    assert rows[f"s3://{bucket}/docs/ünï cödé/d e+f.txt"] == "extracted"
    # The same bytes uploaded again (a new ETag is possible): fetched, no new version.
    s3.put_object(Bucket=bucket, Key="docs/c.txt", Body=b"gamma", Metadata={"touched": "1"})
    versions = count(harness.ledger, "versions")
    harness.drain(advance=3600.0)
    assert count(harness.ledger, "versions") == versions


def test_size_is_checked_before_download_and_own_sidecars_are_ignored(
    harness: Harness, moto: Moto
) -> None:
    moto.seed(harness.spec.bucket, {
        "docs/big.pdf": b"x" * 5000,  # over max_bytes (1000)
        "docs/ok.txt": b"fine",
        "docs/ok.txt.summary.md": b"docproc's own", "docs/ok.txt.docproc.json": b"{}",
        "docs/.hidden.txt": b"dot", "docs/folder/": b"", "docs/~$lock.docx": b"junk",
    })  # fmt: skip
    found = harness.drain()
    assert found["ready"] == [object_uri(harness.spec.bucket, "docs/ok.txt")]
    assert [uri for uri, _ in found["problems"]] == [
        object_uri(harness.spec.bucket, "docs/big.pdf")
    ]
    assert "over the limit" in found["problems"][0][1]
    assert harness.gets() == 1
    again = harness.drain(advance=3600.0)
    assert again["problems"] == []  # reported once until the object changes


def test_a_restart_fetches_unsettled_objects_once_more(tmp_path: Path, moto: Moto, s3: Any) -> None:
    bucket = moto.bucket(s3)
    moto.seed(bucket, {"docs/a.txt": b"alpha"})
    h = Harness(tmp_path, moto.url, bucket)
    batch = h.source.poll(0.0, {})
    (candidate,) = batch.ready
    sha = hashlib.sha256(candidate.path.read_bytes()).hexdigest()
    seen = Seen(h.root_id, candidate.path, candidate.size, candidate.mtime_ns, sha,
                uri=candidate.uri, etag=candidate.etag)  # fmt: skip
    files(h.ledger).record_versions([seen])  # recorded, then "crashed" before extraction
    assert not h.source.poll(3600.0, {}).ready  # this process has the copy: not again
    h.close()
    again = Harness(tmp_path, moto.url, bucket)
    try:
        assert [c.uri for c in again.source.poll(0.0, {}).ready] == [candidate.uri]
    finally:
        again.close()


# -- faults -------------------------------------------------------------------


@pytest.fixture
def proxy(moto: Moto) -> Iterator[FaultProxy]:
    relay = FaultProxy(moto.url)
    yield relay
    relay.close()


def listing(method: str, path: str, headers: dict[str, str]) -> bool:
    return method == "GET" and "list-type=2" in path


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault(listing, status=403, code="AccessDenied"), "access denied"),
        (Fault(listing, status=503, code="SlowDown"), "throttled"),
        (Fault(listing, drop=True), "cannot list"),
    ],
    ids=["denied", "slowdown", "dropped"],
)
def test_a_fault_shows_in_status_backs_off_and_clears(
    tmp_path: Path, moto: Moto, s3: Any, proxy: FaultProxy, fault: Fault, words: str
) -> None:
    bucket = moto.bucket(s3)
    moto.seed(bucket, {"docs/a.txt": b"alpha"})
    h = Harness(tmp_path, proxy.url, bucket)
    try:
        proxy.add(fault)
        assert h.poll().ready == ()
        assert words in h.source.status and "next try in 0.2 s" in h.source.status
        lists = proxy.seen["GET"]
        assert h.poll().ready == ()  # backing off: no request at all
        assert proxy.seen["GET"] == lists
        h.poll(advance=0.3)
        assert "next try in 0.4 s" in h.source.status  # the pause doubles
        proxy.clear()
        found = h.drain(advance=0.5)
        assert found["ready"] == [object_uri(bucket, "docs/a.txt")]
        assert h.source.status == "ok"
    finally:
        h.close()


def test_one_slowdown_is_retried_by_botocore_without_a_fault(
    tmp_path: Path, moto: Moto, s3: Any, proxy: FaultProxy
) -> None:
    bucket = moto.bucket(s3)
    moto.seed(bucket, {"docs/a.txt": b"alpha"})
    h = Harness(tmp_path, proxy.url, bucket)
    h.session = aws.Session(aws.Endpoint(proxy.url, REGION))  # standard mode: three attempts
    h.source.bucket = aws.Bucket(bucket, h.session)
    try:
        proxy.add(Fault(lambda m, p, h: m == "GET" and "/docs/a.txt" in p, times=1))
        found = h.drain()
        assert found["ready"] == [object_uri(bucket, "docs/a.txt")]
        assert h.session.requests["GetObject"] == 2
    finally:
        h.close()


def test_a_missing_bucket_and_a_throttled_get(
    tmp_path: Path, moto: Moto, s3: Any, proxy: FaultProxy
) -> None:
    missing = Harness(tmp_path / "m", moto.url, "no-such-bucket-here")
    try:
        missing.poll()
        assert missing.source.status.startswith("cannot list s3://no-such-bucket-here/docs/")
        assert "bucket does not exist" in missing.source.status
    finally:
        missing.close()
    bucket = moto.bucket(s3)
    moto.seed(bucket, {"docs/a.txt": b"alpha", "docs/b.txt": b"beta"})
    h = Harness(tmp_path / "t", proxy.url, bucket)
    try:
        proxy.add(Fault(lambda m, p, h: m == "GET" and p.endswith("/docs/b.txt")))
        batch = h.poll()
        assert [c.uri for c in batch.ready] == [object_uri(bucket, "docs/a.txt")]
        assert "throttled" in h.source.status
        assert h.source.pending == 1  # b.txt waits for the next try
        proxy.clear()
        assert h.drain(advance=0.3)["ready"] == [object_uri(bucket, "docs/b.txt")]
    finally:
        h.close()


# -- notifications ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "keys"),
    [
        ('{"Records":[{"s3":{"bucket":{"name":"b"},"object":{"key":"docs/a+b%2Bc%C3%BC.txt"}}}]}',
         ["docs/a b+cü.txt"]),
        ('{"Records":[{"s3":{"bucket":{"name":"other"},"object":{"key":"docs/x"}}}]}', []),
        ('{"Records":[{"s3":{"bucket":{"name":"b"},"object":{"key":"elsewhere/x"}}}]}', []),
        (json.dumps({"Message": json.dumps({"Records": [
            {"s3": {"bucket": {"name": "b"}, "object": {"key": "docs/sns"}}}]})}), ["docs/sns"]),
        ('{"Event":"s3:TestEvent","Bucket":"b"}', []),
        ("not json", None),
        ('{"Records": "nope"}', None),
    ],
    ids=["decoded", "other-bucket", "other-prefix", "sns", "test-event", "garbage", "bad-records"],
)  # fmt: skip
def test_keys_from_message(body: str, keys: list[str] | None) -> None:
    assert keys_from_message(body, "b", "docs/") == keys


def test_sqs_notifications_bring_new_keys_before_the_next_listing(
    tmp_path: Path, moto: Moto, s3: Any
) -> None:
    bucket = moto.bucket(s3)
    sqs = moto.client("sqs")
    queue_url = sqs.create_queue(QueueName=bucket)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    events = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    target = {"QueueArn": arn["Attributes"]["QueueArn"], "Events": events}
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [target]}
    )
    h = Harness(tmp_path, moto.url, bucket, queue_url=queue_url)
    try:
        assert h.drain()["ready"] == []  # the first listing: nothing yet
        s3.put_object(Bucket=bucket, Key="docs/new file+1.txt", Body=b"fresh")
        s3.put_object(Bucket=bucket, Key="outside/ignored.txt", Body=b"not ours")
        found = _poll_until(h, lambda b: bool(b.ready))
        assert [c.uri for c in found.ready] == [object_uri(bucket, "docs/new file+1.txt")]
        assert h.session.requests["ListObjectsV2"] == 1  # no listing: the hint did it
        s3.delete_object(Bucket=bucket, Key="docs/new file+1.txt")
        gone = _poll_until(h, lambda b: bool(b.gone))
        assert gone.gone == (object_uri(bucket, "docs/new file+1.txt"),)
        left = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        assert left["ApproximateNumberOfMessages"] == "0"  # handled messages are deleted
    finally:
        h.close()


def _poll_until(h: Harness, done: Any, seconds: float = 20.0) -> IntakeBatch:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        batch = h.poll()
        if done(batch):
            return batch
        time.sleep(0.1)
    raise AssertionError("no notification arrived")
