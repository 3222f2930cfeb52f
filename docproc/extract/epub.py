"""EPUB: the book's XHTML documents in reading (spine) order, through the HTML path.

``META-INF/container.xml`` names the package document (OPF); its manifest
maps ids to files and its spine lists them in reading order. Each document
is read through :class:`~docproc.extract.zipguard.GuardedZip` and turned into
text by :func:`docproc.extract.html.html_text`. A book without a usable
spine is read in the archive's order of (X)HTML members. Navigation-only
documents listed outside the spine are not read.
"""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

from docproc.extract import html
from docproc.extract.reading import Reading
from docproc.extract.zipguard import GuardedZip, local_name

_CONTAINER = "META-INF/container.xml"
_HTML_TYPES = frozenset(("application/xhtml+xml", "text/html", "application/x-dtbook+xml"))
_HTML_SUFFIXES = (".xhtml", ".html", ".htm")


def extract(data: bytes, reading: Reading) -> str:
    """Return the text of every spine document, in order, separated by blank lines."""
    with GuardedZip(data, reading.limits, "epub") as archive:
        documents = _spine(archive) or sorted(
            n for n in archive.names if n.lower().endswith(_HTML_SUFFIXES)
        )
        texts = []
        for name in documents:
            raw = archive.read(name)
            if raw is not None:
                texts.append(html.extract(raw))
    return "\n\n".join(t for t in texts if t.strip())


def _spine(archive: GuardedZip) -> list[str]:
    """Member names of the spine's documents, in reading order ([] when unusable)."""
    container = _xml(archive, _CONTAINER)
    if container is None:
        return []
    package = next(
        (e.get("full-path", "") for e in container.iter() if _local(e.tag) == "rootfile"), ""
    )
    opf = _xml(archive, package) if package else None
    if opf is None:
        return []
    folder = posixpath.dirname(package)
    manifest = {}
    for item in opf.iter():
        if _local(item.tag) == "item" and item.get("media-type") in _HTML_TYPES:
            href = posixpath.normpath(posixpath.join(folder, unquote(item.get("href", ""))))
            manifest[item.get("id", "")] = href
    order = [e.get("idref", "") for e in opf.iter() if _local(e.tag) == "itemref"]
    return [manifest[idref] for idref in order if idref in manifest]


_xml = GuardedZip.xml
_local = local_name
