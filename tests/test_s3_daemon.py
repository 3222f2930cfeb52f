"""The daemon end to end with an S3 prefix (moto's HTTP server) and a local folder side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.clitools import docproc
from tests.daemonrun import DaemonProcess, write_config
from tests.s3server import Moto

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("aws_env")]
TEXT = (
    "The harbour authority approved the new tide schedule on Monday. "
    "Ferries will leave twenty minutes earlier during the spring tides. "
    "Fishermen asked for a second ramp near the northern pier. "
    "The council will publish the final timetable next week."
)


def keys_in(s3: Any, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def test_daemon_with_a_bucket_and_a_folder_side_by_side(tmp_path: Path, moto: Moto) -> None:
    s3 = moto.client()
    bucket = moto.bucket(s3)
    sources = ["docs/harbour.txt", "docs/ünï cödé/tides+ramps.md", "docs/deep/a//b.txt"]
    for key in sources:
        s3.put_object(Bucket=bucket, Key=key, Body=f"{TEXT} ({key})".encode())
    s3.put_object(Bucket=bucket, Key="docs/notes.txt.summary.md", Body=b"a person's file")
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "local.txt").write_text(TEXT)
    extra = f"""
[[watch]]
s3 = "s3://{bucket}/docs"
endpoint_url = "{moto.url}"
region = "us-east-1"
interval = 1
[[watch]]
s3 = "s3://no-such-bucket-zz/x/"
endpoint_url = "{moto.url}"
"""
    daemon = DaemonProcess(write_config(tmp_path, [folder], extra))
    try:
        daemon.wait_ready()
        wanted = {k + s for k in sources for s in (".summary.md", ".docproc.json")}
        daemon.until(lambda: wanted <= keys_in(s3, bucket), 90)
        daemon.until(lambda: (folder / "local.txt.docproc.json").exists(), 60)
        sidecar = json.loads(s3.get_object(Bucket=bucket, Key=sources[1] + ".docproc.json")
                             ["Body"].read())  # fmt: skip
        assert sidecar["source"]["path"] == f"s3://{bucket}/{sources[1]}"
        head = s3.head_object(Bucket=bucket, Key=sources[1] + ".docproc.json")
        assert head["Metadata"]["docproc-source-sha256"] == sidecar["source"]["sha256"]
        assert head["Metadata"]["docproc-source-etag"]
        # Its own sidecars are never taken as sources; a person's object is left alone.
        assert s3.get_object(Bucket=bucket, Key="docs/notes.txt.summary.md")["Body"].read() == (
            b"a person's file"
        )

        s3.delete_object(Bucket=bucket, Key=sources[0])
        daemon.until(lambda: daemon.states().get("harbour.txt") == "deleted", 30)
    finally:
        assert daemon.stop() == 0

    state = tmp_path / "state"
    files = docproc("ledger", "files", "--json", state=state)
    rows = {row["path"]: row["state"] for row in json.loads(files.stdout)}
    assert rows[f"s3://{bucket}/{sources[1]}"] == "written"
    assert rows[f"s3://{bucket}/{sources[0]}"] == "deleted"
    assert rows[str(folder / "local.txt")] == "written"
    assert not any(path.endswith((".summary.md", ".docproc.json")) for path in rows)
    status = json.loads(docproc("status", "--json", state=state).stdout)
    roots = {root["uri"]: root for root in status["roots"]}
    assert roots[f"s3://{bucket}/docs/"]["status"] == "ok"
    assert roots[f"s3://{bucket}/docs/"]["kind"] == "s3"
    assert "bucket does not exist" in roots["s3://no-such-bucket-zz/x/"]["status"]
    assert roots[f"file://{folder}"]["status"] == "ok"
    shown = docproc("ledger", "show", f"s3://{bucket}/{sources[1]}", state=state)
    assert shown.returncode == 0, shown.stderr
    assert "file.discovered" in shown.stdout
