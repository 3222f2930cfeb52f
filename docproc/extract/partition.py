"""The long tail of formats through unstructured: the only module importing it.

unstructured is imported lazily, on the first document that needs it: the
import costs about 1.3 s and 200 MB, which workers that only see text, HTML,
PDF and Office files never pay.

Before the import, two offline pitfalls are neutralised (see
reference/DEPENDENCIES.md, section 2):

* telemetry: ``import unstructured`` and every ``partition()`` call would
  contact packages.unstructured.io unless ``DO_NOT_TRACK`` is set;
* the spaCy model: unstructured downloads ``en_core_web_sm`` from github.com
  into site-packages on first use. We replace its private loader
  ``unstructured.nlp.tokenize._get_nlp`` with a blank English pipeline plus a
  sentencizer. Only element categories depend on the tagger; the extracted
  text is identical. unstructured is pinned (==0.27.35) for this hook, and
  ``tests/test_offline.py`` fails loudly if the hook target disappears.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from functools import cache
from typing import Any

from docproc.errors import PermanentExtractionError
from docproc.extract import text as plain
from docproc.extract import zipguard
from docproc.models import ExtractLimits

Partition = Callable[..., list[Any]]

# Offline switches read by unstructured and huggingface_hub. This is the one
# place outside docproc.config.environment that touches os.environ, because it
# must happen in the worker process before unstructured is imported, and
# docproc.config never runs there. setdefault: an operator's explicit choice wins.
_OFFLINE_ENV = {
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "1",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "HF_HUB_OFFLINE": "1",
}
# Text formats we decode ourselves (BOM, UTF-16, cp1252 guesses) and hand over as
# UTF-8, because pandas and unstructured assume UTF-8 and fail on anything else.
_REENCODE = frozenset(("csv", "tsv", "json", "ndjson", "rst", "org"))
_ZIP_BASED = frozenset(("epub", "odt"))
# Exception names (from unstructured, pandas, lxml, zipfile, olefile) that mean
# "this input is bad", matched by name so their modules need not be imported here.
_BAD_INPUT = frozenset(
    ("UnprocessableEntityError", "BadZipFile", "EmptyDataError", "XMLSyntaxError", "ParserError")
)


def extract(data: bytes, kind: str, limits: ExtractLimits) -> str:
    """Partition ``data`` as file type ``kind`` (a suffix without the dot).

    Element texts are joined with blank lines. Attachments (.msg) are not
    partitioned, and the "fast" strategy never loads a layout model.

    Raises:
        PermanentExtractionError: damaged, encrypted or unparseable input, or a
            missing optional dependency; the reason names the format.
    """
    if kind in _ZIP_BASED:
        zipguard.check(data, limits, kind)
    if kind in _REENCODE:
        data = plain.normalise_newlines(plain.decode(data)).encode("utf-8")
    partition = load_partition()
    try:
        elements = partition(
            file=io.BytesIO(data),
            content_type=_content_type(kind),
            metadata_filename=f"document.{kind}",
            strategy="fast",
            process_attachments=False,
            languages=["eng"],
        )
    except Exception as exc:
        reason = translate(exc, kind)
        if reason is None:
            raise
        raise reason from exc
    return "\n\n".join(text for element in elements if (text := str(element).strip()))


@cache
def load_partition() -> Partition:
    """Import unstructured once per process, offline, and return ``partition``."""
    for name, value in _OFFLINE_ENV.items():
        os.environ.setdefault(name, value)
    import unstructured.nlp.tokenize as tokenize
    from unstructured.partition.auto import partition

    if not hasattr(tokenize, "_get_nlp"):  # the pinned version's private hook moved
        raise ImportError("unstructured.nlp.tokenize._get_nlp is gone; re-check the spaCy hook")
    tokenize._get_nlp = _blank_nlp
    fn: Partition = partition
    return fn


@cache
def _blank_nlp() -> Any:
    """A spaCy pipeline that needs no downloaded model: tokenizer + sentencizer."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def _content_type(kind: str) -> str | None:
    """The MIME type unstructured routes on; sniffing alone mistakes XML for text."""
    from unstructured.file_utils.model import FileType

    file_type = FileType.from_extension(f".{kind}")
    return file_type.mime_type if file_type is not None else None


def translate(exc: Exception, kind: str) -> Exception | None:
    """Turn unstructured's (and its libraries') exceptions into readable reasons.

    Returns None for exceptions that look like bugs rather than bad input, so the
    worker's crash boundary logs them with a traceback.
    """
    message = " ".join(str(exc).split())[:300] or type(exc).__name__
    lowered = message.lower()
    if "password" in lowered or "encrypted" in lowered:
        return PermanentExtractionError(f"{kind} is password protected")
    if isinstance(exc, ImportError):
        return PermanentExtractionError(
            f"{kind} needs a component that is not installed ({message})"
        )
    if isinstance(exc, FileNotFoundError) and "soffice" in lowered:
        return PermanentExtractionError(
            f"{kind} needs LibreOffice (soffice), which is not installed"
        )
    if isinstance(exc, UnicodeError):
        return PermanentExtractionError(f"{kind} is not valid text ({message})")
    # The input is in memory, so an OSError here (olefile's "not an OLE2 structured
    # storage file", for one) is about the bytes, not the disk.
    if isinstance(exc, ValueError | SyntaxError | OSError) or type(exc).__name__ in _BAD_INPUT:
        return PermanentExtractionError(f"{kind} could not be parsed: {message}")
    return None
