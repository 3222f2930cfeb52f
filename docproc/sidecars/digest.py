"""Each sidecar carries a digest of its own content, so docproc knows its own work
without a ledger.

A new or rebuilt ledger (a moved state directory, a lost disk) has no record
of the sidecars already next to the documents. A sidecar whose digest still
matches its content is docproc's own and untouched: it may be adopted (its
result imported, nothing sent again) or replaced. One a person edited no
longer matches, and is never overwritten.

* ``.docproc.json``: the last key, ``"digest": "sha256:<hex>"``, is the sha256
  of the document rendered without that key. Checked by rendering the parsed
  document again: the bytes must be exactly the file's, and the digest that
  of the document without it (so a change of spacing is an edit too).
* ``.summary.md``: the last front-matter line, ``digest: "sha256:<hex>"``, is
  the sha256 of the file without that line.

The digest proves "unchanged since docproc wrote it", not authorship: it is
not a signature, and a person who recomputes it after an edit makes the file
count as docproc's (to be replaced when a new result is written).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

DIGEST_PREFIX = "sha256:"
_MD_DIGEST = re.compile(rb'^digest: "sha256:([0-9a-f]{64})"\n', re.MULTILINE)
MAX_SIDECAR_BYTES = 16 * 1024 * 1024  # a larger file at a sidecar path is not docproc's


def json_text(document: dict[str, Any]) -> bytes:
    """The one way docproc renders a JSON sidecar document."""
    text = json.dumps(document, ensure_ascii=False, indent=2, allow_nan=False)
    return (text + "\n").encode("utf-8")


def seal_json(document: dict[str, Any]) -> bytes:
    """``document`` rendered with its digest as the last key."""
    digest = hashlib.sha256(json_text(document)).hexdigest()
    return json_text({**document, "digest": DIGEST_PREFIX + digest})


def digest_line(unsealed: bytes) -> bytes:
    """The front-matter line that seals a Markdown sidecar rendered without it."""
    return b'digest: "' + (DIGEST_PREFIX + hashlib.sha256(unsealed).hexdigest()).encode() + b'"\n'


def open_json(data: bytes) -> dict[str, Any] | None:
    """The document of an untouched JSON sidecar (without its digest), else None."""
    if len(data) > MAX_SIDECAR_BYTES or not data.startswith(b"{"):
        return None
    try:
        document = json.loads(data)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("digest"), str):
        return None
    try:
        if json_text(document) != data:  # anything but docproc's own rendering: edited
            return None
    except ValueError:
        return None
    digest = document.pop("digest")
    if digest != DIGEST_PREFIX + hashlib.sha256(json_text(document)).hexdigest():
        return None
    return document


def markdown_intact(data: bytes) -> bool:
    """Whether a Markdown sidecar still holds exactly what docproc wrote."""
    if len(data) > MAX_SIDECAR_BYTES or not data.startswith(b"---\n"):
        return False
    end = data.find(b"\n---\n", 3)
    if end < 0:
        return False
    matches = list(_MD_DIGEST.finditer(data, 0, end + 1))
    if len(matches) != 1 or matches[0].end() != end + 1:  # the last front-matter line
        return False
    found = matches[0]
    rest = data[: found.start()] + data[found.end() :]
    return found.group(1).decode() == hashlib.sha256(rest).hexdigest()


def is_own(data: bytes) -> bool:
    """Whether ``data`` is a sidecar docproc wrote and nobody changed since."""
    if data.startswith(b"{"):
        return open_json(data) is not None
    return markdown_intact(data)
