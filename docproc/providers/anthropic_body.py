"""Message Batches shapes that need no HTTP: the create body, written as it is streamed,
and the fields of a batch object docproc reads (reference/BATCH_APIS.md §1.3-1.5)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import IO, Any

from docproc.errors import ProviderRejected
from docproc.providers.base import ProviderLimits, encode_request, is_valid_custom_id

CHUNK_BYTES = 1 << 20


def request_count(counts: object) -> int:
    if not isinstance(counts, dict):
        return -1
    return sum(value for value in counts.values() if isinstance(value, int))


def write_body(
    out: IO[bytes], requests: Iterable[dict[str, Any]], limits: ProviderLimits
) -> tuple[int, int]:
    """Write ``{"requests":[...]}``; returns (count, bytes). ProviderRejected past a limit."""
    out.write(b'{"requests":[')
    size, count, seen = 13, 0, set()
    for request in requests:
        custom_id = request.get("custom_id")
        if not is_valid_custom_id(custom_id) or custom_id in seen:
            raise ProviderRejected(f"invalid or duplicate custom_id {str(custom_id)[:80]!r}")
        seen.add(custom_id)
        line = encode_request(request)
        if count:
            out.write(b",")
            size += 1
        out.write(line)
        size += len(line)
        count += 1
        if count > limits.max_requests or size + 2 > limits.max_bytes:
            raise ProviderRejected(
                f"batch over the limit ({count} requests, {size:,} bytes so far; at most"
                f" {limits.max_requests} requests and {limits.max_bytes:,} bytes)"
            )
    if not count:
        raise ProviderRejected("a batch needs at least one request")
    out.write(b"]}")
    return count, size + 2


def chunks(body: IO[bytes]) -> Iterator[bytes]:
    while chunk := body.read(CHUNK_BYTES):
        yield chunk


def when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def safe(batch_id: str) -> str:
    """A batch id as one path segment; ProviderRejected for anything that is not."""
    if not batch_id or not all(c.isalnum() or c in "_-" for c in batch_id):
        raise ProviderRejected(f"not a batch id: {batch_id[:80]!r}")
    return batch_id
