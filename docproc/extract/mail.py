"""E-mail (.eml) with the stdlib ``email`` package.

The text is a few header lines (subject, from, to, cc, date) and the message
body, preferring the text/plain alternative and falling back to text/html
converted by :mod:`docproc.extract.html`. Attachments are never parsed: an
image or audio attachment would need OCR or speech recognition, and a nested
archive is a bomb vector, so they are skipped.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage, Message, MIMEPart

from docproc.extract import html

_HEADERS = ("Subject", "From", "To", "Cc", "Date")


def extract(data: bytes) -> str:
    """Return the header lines and the body text of one message.

    The stdlib parser never raises on malformed input (it records defects
    instead), so there is no failure mode of its own here.
    """
    message = email.message_from_bytes(data, policy=email.policy.default)
    lines = [f"{name}: {value}" for name in _HEADERS if (value := _header(message, name))]
    body = _body(message) if isinstance(message, EmailMessage) else ""
    return "\n".join(lines) + ("\n\n" + body if body else "")


def _header(message: Message, name: str) -> str:
    try:
        value = message.get(name)
    except (ValueError, IndexError, TypeError):
        return ""  # a header the modern parser cannot fold; drop it rather than fail
    return " ".join(str(value).split()) if value is not None else ""


def _body(message: EmailMessage) -> str:
    """The preferred body alternative as text; attachments are skipped by get_body."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = _content(part)
    if part.get_content_subtype() == "html":
        return html.html_text(text)
    return text.replace("\r\n", "\n").strip()


def _content(part: MIMEPart) -> str:
    """Decoded text of a part, surviving unknown or lying charsets."""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError):
        payload = part.get_payload(decode=True)
        content = payload.decode("latin-1") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""
