"""HTML to text with lxml: the words a reader sees, one block per line.

What a browser would not show is dropped (``<head>``, scripts, styles,
``<noscript>``, ``<template>``, comments). Block elements start new lines and
table cells are separated by tabs, so paragraphs and table rows stay apart;
runs of whitespace inside a line collapse to one space, as a browser renders
them. The encoding comes from a BOM, then a ``<meta>`` charset, then the
plain-text guesses of :mod:`docproc.extract.text`.
"""

from __future__ import annotations

import re

import lxml.etree
import lxml.html

from docproc.extract import text as plain

_INVISIBLE = ("head", "script", "style", "noscript", "template", "title", "iframe", "object")
_BLOCKS = frozenset(
    (
        *("address", "article", "aside", "blockquote", "body", "br", "caption", "dd"),
        *("details", "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure"),
        *("footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "html"),
        *("legend", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table"),
        *("tbody", "tfoot", "thead", "tr", "ul"),
    )
)
_CELLS = frozenset(("td", "th"))
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
# Source newlines are just spaces in HTML; only block elements break lines.
_WHITESPACE = re.compile(r"\s+")
_SPACES = re.compile(r"[^\S\n\t]+")
_BREAKS = re.compile(r"\s*\n\s*")
# The WHATWG encoding standard reads these labels as windows-1252, and a
# <meta> claiming UTF-16/32 in a byte-oriented document means UTF-8.
_CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252"}


def extract(data: bytes) -> str:
    """Return the visible text of an HTML document (empty for an empty page)."""
    return html_text(decode_html(data))


def decode_html(data: bytes) -> str:
    """Decode HTML bytes: BOM, then ``<meta charset>``, then the text guesses."""
    match = _META_CHARSET.search(data[:4096])
    declared = match.group(1).decode("ascii").lower() if match else None
    if declared is not None and declared.startswith(("utf-16", "utf-32")):
        declared = "utf-8"
    if declared is not None:
        declared = _CHARSET_ALIASES.get(declared, declared)
    return plain.decode(data, declared=declared)


def html_text(markup: str) -> str:
    """Return the visible text of ``markup``, already decoded."""
    markup = _XML_DECLARATION.sub("", markup, count=1)
    if not markup.strip():
        return ""
    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True)
    try:
        root = lxml.html.document_fromstring(markup, parser=parser)
    except lxml.etree.ParserError:
        return ""  # "Document is empty": markup with nothing but tags we drop
    lxml.etree.strip_elements(root, *_INVISIBLE, with_tail=False)
    return _tidy("".join(_chunks(root)))


def _chunks(root: lxml.html.HtmlElement) -> list[str]:
    """Text and separators in document order, walked without recursion.

    ``iterwalk`` keeps deeply nested pages (thousands of ``<div>``) from hitting
    the recursion limit.
    """
    out: list[str] = []
    for event, element in lxml.etree.iterwalk(root, events=("start", "end")):
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            out.append(_separator(tag))
            if element.text and tag:
                out.append(_WHITESPACE.sub(" ", element.text))
        else:
            out.append(_separator(tag))
            if element.tail and element is not root:
                out.append(_WHITESPACE.sub(" ", element.tail))
    return out


def _separator(tag: str) -> str:
    if tag in _BLOCKS:
        return "\n"
    if tag in _CELLS:
        return "\t"
    return ""


def _tidy(raw: str) -> str:
    """Collapse spaces inside lines and blank-line runs between them."""
    lines = (_SPACES.sub(" ", line).strip(" ") for line in _BREAKS.split(raw))
    cleaned = (re.sub(r" ?\t[\t ]*", "\t", line).strip("\t ") for line in lines)
    return "\n".join(line for line in cleaned if line)
