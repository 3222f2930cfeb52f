"""Sidecar objects against moto's real HTTP server: planning, no-clobber writes, retries."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from docproc import aws
from docproc.errors import SidecarConflict, SidecarError
from docproc.models import SidecarSettings, object_uri
from docproc.sidecar_objects import ObjectSidecars
from tests.s3server import REGION, Fault, FaultProxy, Moto

pytestmark = pytest.mark.usefixtures("aws_env")
META = {"docproc-source-sha256": "ab" * 32, "docproc-source-etag": "0123"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def s3(moto: Moto) -> Any:
    return moto.client()


@pytest.fixture
def session(moto: Moto) -> Iterator[aws.Session]:
    opened = aws.Session(aws.Endpoint(moto.url, REGION))
    yield opened
    opened.close()


def sink(session: aws.Session, bucket: str, output: str | None = None) -> ObjectSidecars:
    return ObjectSidecars(aws.Bucket(bucket, session), prefix="docs/",
                          settings=SidecarSettings(), output_prefix=output)  # fmt: skip


def write(writer: ObjectSidecars, key: str, data: bytes, expected: set[str]) -> str:
    return writer.write(key, data, expected=expected, metadata=META, content_type="text/markdown")


def test_plan_next_to_the_key_or_under_an_output_prefix(session: aws.Session) -> None:
    beside = sink(session, "bkt")
    assert beside.plan("docs/a/ünï cödé.pdf") == (
        "docs/a/ünï cödé.pdf.summary.md",
        "docs/a/ünï cödé.pdf.docproc.json",
    )
    mirrored = sink(session, "bkt", object_uri("out", "sum/"))
    assert mirrored.plan("docs/a//b.pdf").json == "sum/a//b.pdf.docproc.json"
    for bad in ("docs/../etc/x.pdf", "docs/a/./b.pdf", "other/x.pdf", "docs/"):
        with pytest.raises(SidecarError):
            beside.plan(bad)
    near_limit = "docs/" + "x" * 1010  # fits S3's 1,024 bytes; its sidecars would not
    with pytest.raises(SidecarError, match="too long"):
        beside.plan(near_limit)


def test_new_write_metadata_idempotent_retry_and_replacing_our_own(
    session: aws.Session, moto: Moto, s3: Any
) -> None:
    bucket = moto.bucket(s3)
    writer = sink(session, bucket)
    key = "docs/a.pdf.summary.md"
    assert write(writer, key, b"first", set()) == sha(b"first")
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["Metadata"] == {**META, "docproc-sha256": sha(b"first")}
    assert head["ContentType"] == "text/markdown"
    puts = session.requests["PutObject"]
    write(writer, key, b"first", {sha(b"first")})  # a retry after a crash: nothing to do
    assert session.requests["PutObject"] == puts
    write(writer, key, b"second", {sha(b"first")})  # ours: replaced, If-Match on its ETag
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"second"


def test_an_object_docproc_did_not_write_is_never_replaced(
    session: aws.Session, moto: Moto, s3: Any
) -> None:
    bucket = moto.bucket(s3)
    writer = sink(session, bucket)
    key = "docs/a.pdf.docproc.json"
    s3.put_object(Bucket=bucket, Key=key, Body=b"a person's notes")
    with pytest.raises(SidecarConflict, match="did not write"):
        write(writer, key, b"ours", set())  # If-None-Match: * refused it
    with pytest.raises(SidecarConflict):
        write(writer, key, b"ours", {sha(b"something we wrote once")})
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"a person's notes"
    s3.put_object(Bucket=bucket, Key=key, Body=b"ours")  # exactly our bytes: done, no PUT
    assert write(writer, key, b"ours", set()) == sha(b"ours")


def test_a_change_between_read_and_put_is_caught_by_if_match(moto: Moto, s3: Any) -> None:
    bucket = moto.bucket(s3)
    key = "docs/a.pdf.summary.md"
    s3.put_object(Bucket=bucket, Key=key, Body=b"ours")
    proxy = FaultProxy(moto.url)
    session = aws.Session(aws.Endpoint(proxy.url, REGION))
    try:
        # Someone replaces the object right after docproc read it: its If-Match PUT fails.
        def sneak(method: str, path: str, headers: dict[str, str]) -> bool:
            if method == "PUT" and "if-match" in headers:
                s3.put_object(Bucket=bucket, Key=key, Body=b"a person's edit")
            return False

        proxy.add(Fault(sneak))
        with pytest.raises(SidecarConflict):
            write(sink(session, bucket), key, b"new", {sha(b"ours")})
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"a person's edit"
    finally:
        session.close()
        proxy.close()


def test_stores_without_conditional_writes_fall_back_to_check_then_put(moto: Moto, s3: Any) -> None:
    bucket = moto.bucket(s3)
    proxy = FaultProxy(moto.url)
    session = aws.Session(aws.Endpoint(proxy.url, REGION))
    try:

        def conditional_put(method: str, path: str, headers: dict[str, str]) -> bool:
            return method == "PUT" and ("if-none-match" in headers or "if-match" in headers)

        conditional = Fault(conditional_put, status=501, code="NotImplemented")
        proxy.add(conditional)
        writer = sink(session, bucket)
        write(writer, "docs/a.pdf.summary.md", b"ours", set())
        body = s3.get_object(Bucket=bucket, Key="docs/a.pdf.summary.md")["Body"].read()
        assert body == b"ours"
        s3.put_object(Bucket=bucket, Key="docs/b.pdf.summary.md", Body=b"theirs")
        with pytest.raises(SidecarConflict):
            write(writer, "docs/b.pdf.summary.md", b"ours", set())
    finally:
        session.close()
        proxy.close()


def test_remove_if_ours(session: aws.Session, moto: Moto, s3: Any) -> None:
    bucket = moto.bucket(s3)
    writer = sink(session, bucket)
    s3.put_object(Bucket=bucket, Key="docs/a.md", Body=b"ours")
    s3.put_object(Bucket=bucket, Key="docs/b.md", Body=b"edited by a person")
    assert writer.remove_if_ours("docs/a.md", {sha(b"ours")})
    assert not writer.remove_if_ours("docs/b.md", {sha(b"ours")})
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["docs/b.md"]
