"""E-mail (.eml, .mht, S/MIME .p7s) with the stdlib ``email`` package.

The text is a few header lines (subject, from, to, cc, date) and the message
body, preferring the first text/plain part and falling back to text/html
converted by :mod:`docproc.extract.html`. Attachments are never parsed: an
image or audio attachment would need OCR or speech recognition, and a nested
archive is a bomb vector, so they are skipped.

The ``compat32`` policy is used, with RFC 2047 headers decoded here: the
modern ``email.policy.default`` builds a header object per header and costs
20x more (3 ms against 0.15 ms for a small message), for nothing we keep.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.policy
from email.message import Message

from docproc.extract import html
from docproc.extract import text as plain

_HEADERS = ("Subject", "From", "To", "Cc", "Date")
_BODY_TYPES = ("text/plain", "text/html")


def extract(data: bytes) -> str:
    """Return the header lines and the body text of one message.

    The stdlib parser never raises on malformed input (it records defects
    instead), so there is no failure mode of its own here.
    """
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    lines = [f"{name}: {value}" for name in _HEADERS if (value := _header(message, name))]
    body = _body(message)
    return "\n".join(lines) + ("\n\n" + body if body else "")


def _header(message: Message, name: str) -> str:
    raw = message.get(name)
    if raw is None:
        return ""
    try:
        value = str(email.header.make_header(email.header.decode_header(str(raw))))
    except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
        value = str(raw)  # an undecodable encoded-word: keep the header as written
    return " ".join(value.split())


def _body(message: Message) -> str:
    """The first plain-text body part, else the first HTML one; attachments skipped."""
    found: dict[str, Message] = {}
    for part in message.walk():
        kind = part.get_content_type()
        if kind in _BODY_TYPES and kind not in found and not _attachment(part):
            found[kind] = part
    for kind in _BODY_TYPES:
        if kind in found:
            content = _content(found[kind])
            if kind == "text/html":
                return html.html_text(content)
            return content.replace("\r\n", "\n").strip()
    return ""


def _attachment(part: Message) -> bool:
    disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
    return disposition == "attachment"


def _content(part: Message) -> str:
    """Decoded text of a part, surviving unknown or lying charsets."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset()
    if charset:
        try:
            return payload.decode(charset, errors="replace")
        except LookupError:
            pass  # a charset Python does not know: guess like a text file
    return plain.decode(payload)
