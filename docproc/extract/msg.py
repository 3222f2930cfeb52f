"""Outlook .msg through python-oxmsg (MIT; extract-msg is GPL): the only module importing it.

The text is the same shape as an .eml's (:mod:`docproc.extract.mail`): a few
header lines, then the plain-text body, else the HTML body as text.
Attachments are not parsed. A message with neither subject nor body (an
S/MIME-encrypted one keeps its content in an attachment) is refused.
"""

from __future__ import annotations

import io

from oxmsg import Message

from docproc.errors import PermanentExtractionError
from docproc.extract import html
from docproc.extract.reading import Reading

_DAMAGE = (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, EOFError)


def extract(data: bytes, _reading: Reading) -> str:
    """Return the header lines and body text of one Outlook message."""
    try:
        message = Message.load(io.BytesIO(data))
        subject, sender = message.subject or "", message.sender or ""
        recipients = ", ".join(_recipient(r.name, r.email_address) for r in message.recipients)
        sent = message.sent_date
        body = (message.body or "").replace("\r\n", "\n").strip()
        if not body and message.html_body:
            body = html.html_text(message.html_body)
    except _DAMAGE as exc:
        raise PermanentExtractionError(f"msg is damaged or not an Outlook message ({exc})") from exc
    if not subject.strip() and not body:
        raise PermanentExtractionError(
            "msg has no subject and no body (an encrypted or signed message?)"
        )
    fields = (
        ("Subject", subject),
        ("From", sender),
        ("To", recipients),
        ("Date", sent.isoformat() if sent else ""),
    )
    lines = [f"{name}: {' '.join(value.split())}" for name, value in fields if value.strip()]
    return "\n".join(lines) + ("\n\n" + body if body else "")


def _recipient(name: str | None, address: str | None) -> str:
    if name and address and name != address:
        return f"{name} <{address}>"
    return address or name or ""
