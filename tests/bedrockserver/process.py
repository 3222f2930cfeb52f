"""What a batch inference job does with S3: read its input, write its output and manifest.

The server reads and writes moto's S3 over HTTP with a plain boto3 client,
as Bedrock's service role would: every ``*.jsonl`` object under the input
prefix is read (memory flat: line by line); each gets an output object
``<output prefix><job id>/<input file name>.out`` whose lines are in shuffled
order, plus ``manifest.json.out`` with the counts.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.config

from tests.bedrockserver.model import RecordError


@dataclass
class Counts:
    total: int = 0
    processed: int = 0
    succeeded: int = 0
    errored: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    billed: list[str] = field(default_factory=list)  # record ids that produced an answer

    def manifest(self) -> dict[str, int]:
        return {
            "totalRecordCount": self.total, "processedRecordCount": self.processed,
            "successRecordCount": self.succeeded, "errorRecordCount": self.errored,
            "inputTokenCount": self.input_tokens, "outputTokenCount": self.output_tokens,
        }  # fmt: skip


# (record id, modelInput) -> modelOutput; raises RecordError for a refused record.
Answer = Callable[[str, Any], dict[str, Any]]


class S3Io:
    """moto's S3, as the job's service role sees it."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        self.s3 = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region,
            aws_access_key_id="testing", aws_secret_access_key="testing",  # noqa: S106
            config=botocore.config.Config(s3={"addressing_style": "path"},
                                          retries={"mode": "standard", "max_attempts": 3}),
        )  # fmt: skip

    def inputs(self, uri: str) -> list[tuple[str, str]]:
        """(bucket, key) of every JSONL object under an ``s3://`` prefix."""
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        found: list[tuple[str, str]] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found += [(bucket, o["Key"]) for o in page.get("Contents", ()) if
                      o["Key"].endswith(".jsonl")]  # fmt: skip
        return sorted(found)

    def records(self, bucket: str, key: str) -> Iterator[dict[str, Any]]:
        """The records of one input file; ValueError names a line that is not JSON."""
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        for number, raw in enumerate(body.iter_lines(chunk_size=1 << 20), start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                raise ValueError(f"line {number} of {key} is not valid JSON") from None
            if not isinstance(record, dict) or "modelInput" not in record:
                raise ValueError(f"line {number} of {key} has no modelInput")
            yield record

    def scan(self, uri: str) -> tuple[list[str], int]:
        """(record ids, most records in one file) of the input; ValueError for a bad file."""
        ids: list[str] = []
        most = 0
        for bucket, key in self.inputs(uri):
            before = len(ids)
            ids += [str(record.get("recordId")) for record in self.records(bucket, key)]
            most = max(most, len(ids) - before)
        return ids, most

    def run(
        self, input_uri: str, output_uri: str, answer: Answer, *, keep: Callable[[str], bool],
        rng: random.Random,
    ) -> Counts:  # fmt: skip
        """Answer every record ``keep`` accepts; write the outputs and the manifest."""
        counts = Counts()
        out_bucket, _, out_prefix = output_uri.removeprefix("s3://").partition("/")
        for bucket, key in self.inputs(input_uri):
            lines: list[bytes] = []
            for record in self.records(bucket, key):
                counts.total += 1
                record_id = str(record.get("recordId") or f"{counts.total:011d}")
                if keep(record_id):
                    lines.append(_output_line(record, record_id, answer, counts))
            rng.shuffle(lines)  # the order of the output is not the input's
            name = key.rsplit("/", 1)[-1] + ".out"
            self._put(out_bucket, out_prefix + name, lines)
        manifest = json.dumps(counts.manifest()).encode()
        self.s3.put_object(Bucket=out_bucket, Key=out_prefix + "manifest.json.out", Body=manifest)
        return counts

    def _put(self, bucket: str, key: str, lines: list[bytes]) -> None:
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            for line in lines:
                spool.write(line)
            spool.seek(0)
            self.s3.upload_fileobj(spool, bucket, key)


def _output_line(record: dict[str, Any], record_id: str, answer: Answer, counts: Counts) -> bytes:
    out: dict[str, Any] = {"recordId": record_id, "modelInput": record["modelInput"]}
    counts.processed += 1
    try:
        output = answer(record_id, record["modelInput"])
    except RecordError as err:
        counts.errored += 1
        out["error"] = {"errorCode": err.code, "errorMessage": err.message}
    else:
        counts.succeeded += 1
        counts.billed.append(record_id)
        usage = output.get("usage", {})
        counts.input_tokens += int(usage.get("input_tokens") or usage.get("inputTokens") or 0)
        counts.output_tokens += int(usage.get("output_tokens") or usage.get("outputTokens") or 0)
        out["modelOutput"] = output
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
