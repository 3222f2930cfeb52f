"""XML to text with lxml: the character data of every element, one element per line.

Entities are never expanded and nothing is fetched: no DTD is loaded, no
network is used, and ``resolve_entities=False`` leaves ``&name;`` references
as they are, so a "billion laughs" document costs what its bytes cost.
``recover=True`` reads what it can of a damaged file. Markup-only bytes (tags,
comments, processing instructions) contribute nothing.
"""

from __future__ import annotations

import re

import lxml.etree

from docproc.errors import PermanentExtractionError
from docproc.extract import text as plain
from docproc.extract.reading import Reading

_SPACES = re.compile(r"[^\S\n]+")
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""")


def extract(data: bytes, _reading: Reading) -> str:
    """Return the text of an XML document: element texts and tails, in document order."""
    parser = lxml.etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        recover=True,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = lxml.etree.fromstring(_without_declared_encoding(data), parser=parser)
    except lxml.etree.XMLSyntaxError as exc:
        raise PermanentExtractionError(f"xml could not be parsed: {exc}") from exc
    if root is None:
        return ""
    lines = []
    for element in root.iter():
        # An unexpanded entity reference is a node too: its text ("&name;") is
        # skipped, the text after it (its tail) is not.
        text = element.text if isinstance(element.tag, str) else None
        for piece in (text, element.tail if element is not root else None):
            if piece and piece.strip():
                lines.append(_SPACES.sub(" ", piece.strip()))
    return "\n".join(lines)


def _without_declared_encoding(data: bytes) -> bytes:
    """UTF-8 bytes without an encoding declaration: we decode, lxml only parses."""
    match = _DECLARED.match(data[:512])
    declared = match.group(1).decode("ascii").lower() if match else None
    if declared is not None and declared.startswith(("utf-16", "utf-32")):
        declared = None  # the BOM or NUL pattern tells the byte order
    decoded = plain.decode(data, declared=declared).lstrip("\ufeff")
    decoded = re.sub(r"^\s*<\?xml[^>]*\?>", "", decoded, count=1)
    return decoded.encode("utf-8", errors="surrogatepass")
