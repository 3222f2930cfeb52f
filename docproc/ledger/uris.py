"""How the ledger names places: ``file://`` URIs of local paths, remote URIs as they are."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, unquote, unquote_to_bytes

from docproc.models import Location


def file_uri(path: Path) -> str:
    """``file://`` URI of an absolute path; any bytes in the name survive."""
    return "file://" + quote(os.fsencode(path), safe="/")


def uri_path(uri: str) -> Path:
    return Path(os.fsdecode(unquote_to_bytes(uri.removeprefix("file://"))))


def display_path(path: Path) -> str:
    """The path as text for people; undecodable bytes shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def location_uri(where: Location) -> str:
    """The ledger's identity of a location: a ``file://`` URI, or the remote URI as is."""
    return where if isinstance(where, str) else file_uri(where)


def display_location(where: Location) -> str:
    """A location as text for people: a path, or ``s3://bucket/key`` with the key decoded."""
    return unquote(where) if isinstance(where, str) else display_path(where)
