"""RTF through striprtf (BSD), with embedded pictures and objects cut out first.

striprtf walks the document one token at a time, so a 5 MB hex-encoded
picture would cost it millions of steps. Groups that hold binary payloads
(``\\pict``, ``\\shppict``, ``\\objdata``, theme and data stores) are found
by brace matching on the raw text (escaped braces and ``\\binN`` runs
honoured) and dropped before striprtf sees the rest. Both passes are
iterative: a document nesting groups thousands deep cannot exhaust the
stack. The worker's timeout bounds the rest.
"""

from __future__ import annotations

import re

from striprtf.striprtf import rtf_to_text

from docproc.errors import PermanentExtractionError
from docproc.extract.reading import Reading

_BINARY_GROUP = re.compile(
    r"\{(?:\\\*)?\\(?:pict|shppict|nonshppict|objdata|objclass|themedata|datastore|"
    r"colorschememapping|blipuid|fonttbl_binary)(?![a-z])"
)
_TOKEN = re.compile(r"\\bin(\d{1,10}) ?|\\[\\{}]|[{}]")
_CODEPAGE = re.compile(r"\\ansicpg(\d{3,5})")


def extract(data: bytes, _reading: Reading) -> str:
    """Return the text of an RTF document."""
    raw = data.decode("latin-1")  # RTF is 7-bit; latin-1 keeps any stray byte 1:1
    if not raw.lstrip().startswith("{\\rtf"):
        raise PermanentExtractionError("rtf is damaged or not an rtf (no {\\rtf header)")
    encoding = _codepage(raw)
    text: str = rtf_to_text(  # type: ignore[no-untyped-call]  # striprtf has no annotations
        strip_binary_groups(raw), encoding=encoding, errors="replace"
    )
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n"))


def strip_binary_groups(raw: str) -> str:
    """``raw`` without its picture and object groups."""
    kept = []
    position = 0
    while (match := _BINARY_GROUP.search(raw, position)) is not None:
        kept.append(raw[position : match.start()])
        position = _group_end(raw, match.start())
    kept.append(raw[position:])
    return "".join(kept)


def _group_end(raw: str, start: int) -> int:
    """Index just past the group opened at ``start`` (the end of text if unbalanced)."""
    depth = 0
    index = start
    while (token := _TOKEN.search(raw, index)) is not None:
        index = token.end()
        if token.group(1) is not None:
            index += int(token.group(1))  # \binN: N raw bytes that may contain braces
        elif token.group() == "{":
            depth += 1
        elif token.group() == "}":
            depth -= 1
            if depth == 0:
                return index
    return len(raw)


def _codepage(raw: str) -> str:
    match = _CODEPAGE.search(raw, 0, 4096)
    if match is None:
        return "cp1252"
    name = f"cp{match.group(1)}"
    try:
        "".encode(name)
    except LookupError:
        return "cp1252"
    return name
