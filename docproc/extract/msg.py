"""Outlook .msg through python-oxmsg (MIT; extract-msg is GPL): the only module importing it.

The text is the same shape as an .eml's (:mod:`docproc.extract.mail`): a few
header lines, then the plain-text body, else the HTML body as text, else
the compressed RTF body (``PidTagRtfCompressed``, which Outlook's RTF
messages may hold alone), decompressed here (MS-OXRTFCP's LZFu) and read by
:mod:`docproc.extract.rtf`. Attachments are not parsed. A message with
neither subject nor body (an S/MIME-encrypted one keeps its content in an
attachment) is refused.
"""

from __future__ import annotations

import io
import struct

from oxmsg import Message

from docproc.errors import PermanentExtractionError
from docproc.extract import html, rtf
from docproc.extract.reading import Reading

_RTF_COMPRESSED = 0x1009  # PidTagRtfCompressed
_LZFU, _MELA = 0x75465A4C, 0x414C454D  # compressed; stored as is
# MS-OXRTFCP 2.1.3.1.1: the dictionary starts with these 207 bytes.
_PRELOAD = (
    b"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss "
    b"\\fmodern \\fscript \\fdecor MS Sans SerifSymbolArialTimes New RomanCourier"
    b"{\\colortbl\\red0\\green0\\blue0\r\n\\par \\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx"
)
_DICTIONARY = 4096

_DAMAGE = (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, EOFError)


def extract(data: bytes, reading: Reading) -> str:
    """Return the header lines and body text of one Outlook message."""
    try:
        message = Message.load(io.BytesIO(data))
        subject, sender = message.subject or "", message.sender or ""
        recipients = ", ".join(_recipient(r.name, r.email_address) for r in message.recipients)
        sent = message.sent_date
        body = (message.body or "").replace("\r\n", "\n").strip()
        if not body and message.html_body:
            body = html.html_text(message.html_body)
        if not body:
            body = _rtf_body(message, reading)
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


def _rtf_body(message: Message, reading: Reading) -> str:
    packed = message.properties.binary_prop_value(_RTF_COMPRESSED)
    if not packed:
        return ""
    raw = decompress_rtf(packed, reading.limits.max_file_bytes)
    return rtf.extract(raw, reading).strip() if raw.lstrip().startswith(b"{\\rtf") else ""


def decompress_rtf(data: bytes, limit: int) -> bytes:
    """Undo MS-OXRTFCP compression (LZFu, or MELA: stored as is).

    Raises:
        PermanentExtractionError: not compressed RTF, or it expands past ``limit``.
    """
    if len(data) < 16:
        raise PermanentExtractionError("msg has a damaged RTF body (short header)")
    size, raw_size, magic, _crc = struct.unpack_from("<IIII", data)
    body = data[16 : 4 + size]
    if magic == _MELA:
        return body[:raw_size]
    if magic != _LZFU:
        raise PermanentExtractionError("msg has a damaged RTF body (unknown compression)")
    return _LzfuReader(body, limit).run()


class _LzfuReader:
    """LZFu: a control byte, then 8 tokens (bit 0: a literal byte; bit 1: a 2-byte
    reference, 12 bits of offset into a 4,096-byte window and 4 bits of length - 2)."""

    def __init__(self, body: bytes, limit: int) -> None:
        self.body, self.limit = body, limit
        self.window = bytearray(_DICTIONARY)
        self.window[: len(_PRELOAD)] = _PRELOAD
        self.write = len(_PRELOAD)
        self.out = bytearray()

    def run(self) -> bytes:
        index = 0
        while index < len(self.body):
            control, index = self.body[index], index + 1
            for bit in range(8):
                if index >= len(self.body):
                    break
                if not control >> bit & 1:
                    self._put(self.body[index])
                    index += 1
                    continue
                if index + 1 >= len(self.body):
                    return bytes(self.out)
                ref, index = self.body[index] << 8 | self.body[index + 1], index + 2
                if ref >> 4 == self.write:
                    return bytes(self.out)  # the end marker
                for k in range((ref & 0xF) + 2):  # a run may read bytes it has just written
                    self._put(self.window[((ref >> 4) + k) % _DICTIONARY])
            if len(self.out) > self.limit:
                raise PermanentExtractionError("msg has an RTF body over the size limit")
        return bytes(self.out)

    def _put(self, byte: int) -> None:
        self.out.append(byte)
        self.window[self.write] = byte
        self.write = (self.write + 1) % _DICTIONARY
