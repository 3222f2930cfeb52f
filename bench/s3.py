"""S3 benchmark: change detection over unchanged keys, and new-object throughput.

Usage::

    .venv/bin/python bench/s3.py [--keys 100000] [--objects 300] [--out DIR]

Both parts talk HTTP to moto's server (``ThreadedMotoServer`` in this process,
on 127.0.0.1, its access log in a file); docproc runs in child processes, so
their time and peak RSS are their own.

1. **Change detection.** ``--keys`` small objects are put straight into moto's
   store; a child process records each (key, ETag, size) in a fresh ledger as
   extracted (setup, not timed). A second child then opens the ledger, runs one
   full listing with :class:`docproc.sources.s3.S3Source` and reports: wall
   seconds and its own CPU seconds, requests by operation (counted by botocore
   event hooks), how many keys it would fetch, and its peak RSS (VmHWM). For
   scale, the same pages are first listed bare (no comparison): most of the
   wall time is moto's, which walks the whole bucket for every page.
2. **New-object throughput.** ``docproc run`` (local provider) watches an empty
   prefix (``interval = 1``); ``--objects`` text objects are uploaded by 8
   threads; the clock runs from the first upload until every source has both
   sidecar objects. Figures: objects/s and the daemon's peak RSS.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.s3server import AWS_ENV, Moto

TEXT = (
    "The harbour authority approved the new tide schedule on Monday. "
    "Ferries will leave twenty minutes earlier during the spring tides. "
    "Fishermen asked for a second ramp near the northern pier. "
)


def seed_ledger(ledger_path: str, url: str, bucket: str) -> None:
    """Child: record every listed key as known and extracted (arranging the unchanged state)."""
    from docproc import aws
    from docproc.ledger.connection import open_ledger
    from docproc.ledger.intake import IntakeLedger, Seen
    from docproc.models import Extraction, S3WatchSpec, object_uri

    spec = S3WatchSpec(bucket=bucket, prefix="docs/", endpoint_url=url)
    ledger = open_ledger(Path(ledger_path))
    intake = IntakeLedger.on(ledger)
    root_id = intake.files.ensure_root(spec.uri, kind="s3", mode="list")
    session = aws.Session(aws.Endpoint(url, "us-east-1"))
    listed, token = [], None
    while True:
        page, token = aws.Bucket(bucket, session).list_page("docs/", token)
        listed += page
        if token is None:
            break
    for start in range(0, len(listed), 5000):
        chunk = listed[start : start + 5000]
        seen = [Seen(root_id, Path("/nonexistent"), e.size, e.last_modified_ns,
                     hashlib.sha256(e.key.encode()).hexdigest(),
                     uri=object_uri(bucket, e.key), etag=e.etag) for e in chunk]  # fmt: skip
        intake.files.record_versions(seen)
        intake.extractions.record_extractions(
            [Extraction(s.sha256, "text", s.sha256, 1) for s in seen]
        )
    session.close()
    ledger.close()


def detect(ledger_path: str, url: str, bucket: str) -> None:
    """Child: one full listing against the ledger; prints its figures as JSON."""
    from docproc import aws
    from docproc.ledger.connection import open_ledger
    from docproc.ledger.intake import FileLedger
    from docproc.ledger.queries import Queries
    from docproc.models import S3WatchSpec
    from docproc.sources.s3 import S3Source

    ledger = open_ledger(Path(ledger_path))
    spec = S3WatchSpec(bucket=bucket, prefix="docs/", endpoint_url=url)
    root_id = next(r["id"] for r in Queries(ledger).roots() if r["uri"] == spec.uri)
    files = FileLedger(ledger)
    session = aws.Session(aws.Endpoint(url, "us-east-1"))
    baseline = _bare_listing(aws.Bucket(bucket, aws.Session(aws.Endpoint(url, "us-east-1"))))
    with tempfile.TemporaryDirectory() as fetch:
        source = S3Source(
            spec, aws.Bucket(bucket, session), fetch_dir=Path(fetch),
            known_all=functools.partial(files.known_objects, root_id),
            known_one=functools.partial(files.known_object, root_id), max_bytes=1 << 30,
        )  # fmt: skip
        source.start()
        started, cpu, polls, scanned = time.perf_counter(), time.process_time(), 0, False
        while not scanned:
            batch = source.poll(time.monotonic(), {})
            polls += 1
            scanned = batch.scanned
            assert source.status == "ok", source.status
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        queued = source.pending
        source.close()
    print(json.dumps({"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
                      "bare_listing_seconds": baseline, "polls": polls, "to_fetch": queued,
                      "requests": dict(session.requests), "peak_rss_mb": _hwm_mb()}))  # fmt: skip


def _bare_listing(bucket: object) -> float:
    """The same pages listed and parsed with nothing compared: the server's and botocore's share."""
    started, token = time.perf_counter(), None
    while True:
        _, token = bucket.list_page("docs/", token)  # type: ignore[attr-defined]
        if token is None:
            return round(time.perf_counter() - started, 3)


def _hwm_mb(pid: str = "self") -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _child(*args: str) -> str:
    env = {**os.environ, **AWS_ENV}
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                         env=env, check=True, timeout=3600)  # fmt: skip
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def change_detection(moto: Moto, keys: int, work: Path) -> dict[str, object]:
    s3 = moto.client()
    bucket = moto.bucket(s3)
    t0 = time.perf_counter()
    moto.seed(bucket, {f"docs/{i // 1000:03d}/{i:06d}.txt": f"doc {i}".encode()
                       for i in range(keys)})  # fmt: skip
    print(f"seeded {keys} keys in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    ledger = str(work / "detect.db")
    t0 = time.perf_counter()
    _child("seed-ledger", ledger, moto.url, bucket)
    print(f"ledger arranged in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    result: dict[str, object] = json.loads(_child("detect", ledger, moto.url, bucket))
    result["keys"] = keys
    return result


def throughput(moto: Moto, objects: int, work: Path) -> dict[str, object]:
    s3 = moto.client()
    bucket = moto.bucket(s3)
    config = work / "daemon.toml"
    config.write_text(f"""state_dir = "{work / "state"}"
[batch]
max_wait = 0.5
poll_interval = 0.2
[[watch]]
s3 = "s3://{bucket}/docs/"
endpoint_url = "{moto.url}"
interval = 1
""")
    log = (work / "daemon.log").open("wb")
    env = {**os.environ, **AWS_ENV}
    daemon = subprocess.Popen([sys.executable, "-m", "docproc", "run", "--config", str(config)],
                              stdout=log, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    try:
        _wait(lambda: b"daemon.ready" in (work / "daemon.log").read_bytes(), 60)
        keys = [f"docs/{i:05d}.txt" for i in range(objects)]
        started = time.perf_counter()

        def upload(key: str) -> None:
            s3.put_object(Bucket=bucket, Key=key, Body=f"{TEXT} Item {key}.".encode())

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(upload, keys))
        uploaded = time.perf_counter() - started
        wanted = objects * 3
        _wait(lambda: _count(s3, bucket) >= wanted, 1800)
        seconds = time.perf_counter() - started
        rss = _hwm_mb(str(daemon.pid))
    finally:
        daemon.terminate()
        daemon.wait(30)
        log.close()
    return {"objects": objects, "upload_seconds": round(uploaded, 2),
            "seconds": round(seconds, 2), "objects_per_s": round(objects / seconds, 1),
            "daemon_peak_rss_mb": rss}  # fmt: skip


def _count(s3: object, bucket: str) -> int:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)  # type: ignore[attr-defined]
    return sum(len(page.get("Contents", [])) for page in pages)


def _wait(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise SystemExit("timed out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        moto = Moto(work / "moto.log")
        try:
            figures = {"change_detection": change_detection(moto, args.keys, work),
                       "new_objects": throughput(moto, args.objects, work)}  # fmt: skip
        finally:
            moto.stop()
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "s3.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "seed-ledger":
        seed_ledger(*sys.argv[2:5])
    elif len(sys.argv) > 1 and sys.argv[1] == "detect":
        detect(*sys.argv[2:5])
    else:
        main()
