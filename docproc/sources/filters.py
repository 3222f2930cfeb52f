"""Which entries of a watched folder are taken: the built-in and user ignore rules.

Pure: decisions are made on root-relative POSIX paths (``"a/b/c.pdf"``, no
leading slash), never on the filesystem.

Built-in rules are always on; user globs add to them:

* docproc's own sidecars (names ending in one of ``ignore_suffixes``);
* temp and partial files: ``*.part``, ``*.crdownload``, ``*.tmp``, ``*.swp``,
  ``~$*``, ``.~lock.*#``;
* OS junk files ``.DS_Store``, ``._*``, ``Thumbs.db``, ``desktop.ini`` and
  junk directories ``@eaDir``, ``.stfolder``, ``.stversions``, ``__MACOSX``,
  ``.Spotlight-V100``, ``.Trashes``, ``.Trash-*``, ``$RECYCLE.BIN``,
  ``lost+found``;
* hidden (dot-prefixed) files and directories, unless ``hidden`` is set.

Built-in names are compared case-insensitively (shares written from Windows
or macOS vary the case); sidecar suffixes and user globs are case-sensitive.

User globs are matched in full, never as a substring. A glob without a slash
(``*.pdf``) matches an entry's base name, at any depth. A glob with a slash
(``invoices/*.pdf``, or ``/a.pdf``) matches the entry's root-relative POSIX
path and is therefore anchored at the root. A trailing ``/`` is ignored.
Syntax: ``*`` matches any run of characters except ``/``; ``?`` one character
except ``/``; ``[abc]``, ``[a-z]`` and ``[!abc]`` a character class (never
``/``); ``**`` as a whole path segment matches any number of segments,
including none (``a/**/b.pdf`` matches ``a/b.pdf`` and ``a/x/y/b.pdf``;
``a/**`` matches ``a`` itself and everything below it; ``**/x`` matches ``x``
at any depth). ``**`` inside a segment (``a**b``) acts as ``*``.

* ``exclude`` globs apply to files and to directories; an excluded directory
  is pruned (never descended), and so is every ignored directory.
* ``include`` globs apply to files only: when any are given, a file must
  match at least one of them. They never prune a directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from docproc.models import SIDECAR_SUFFIXES, WatchSpec

JUNK_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
JUNK_FILE_PREFIXES = ("._", "~$")
TEMP_SUFFIXES = (".part", ".crdownload", ".tmp", ".swp")
LOCK_PREFIX, LOCK_SUFFIX = ".~lock.", "#"
JUNK_DIRS = frozenset(
    {
        "@eadir",
        ".stfolder",
        ".stversions",
        "__macosx",
        ".spotlight-v100",
        ".trashes",
        "$recycle.bin",
        "lost+found",
    }
)
JUNK_DIR_PREFIXES = (".trash-",)


def compile_glob(pattern: str) -> re.Pattern[str]:
    """Translate one user glob into a regular expression matched in full.

    See the module docstring for the syntax.
    """
    segments = [s for s in pattern.strip("/").split("/") if s]
    collapsed: list[str] = []
    for seg in segments:
        if not (seg == "**" and collapsed and collapsed[-1] == "**"):
            collapsed.append(seg)
    return re.compile("(?s:" + _join_segments(collapsed) + r")\Z")


def _join_segments(segments: list[str]) -> str:
    last = len(segments) - 1
    out: list[str] = []
    for i, seg in enumerate(segments):
        if seg != "**":
            if i > 0 and segments[i - 1] != "**":
                out.append("/")
            out.append(_translate_segment(seg))
        elif last == 0:
            out.append(".*")
        elif i == 0:
            out.append("(?:.*/)?")
        elif i == last:
            out.append("(?:/.*)?")
        else:
            out.append("/(?:.*/)?")
    return "".join(out)


def _translate_segment(seg: str) -> str:
    out: list[str] = []
    i, n = 0, len(seg)
    while i < n:
        char = seg[i]
        i += 1
        if char == "*":
            while i < n and seg[i] == "*":
                i += 1
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            klass, i = _translate_class(seg, i)
            out.append(klass)
        else:
            out.append(re.escape(char))
    return "".join(out)


def _translate_class(seg: str, start: int) -> tuple[str, int]:
    """Translate ``[...]`` opened just before ``start``; a lone ``[`` is literal."""
    i = start
    if i < len(seg) and seg[i] in "!^":
        i += 1
    if i < len(seg) and seg[i] == "]":
        i += 1
    end = seg.find("]", i)
    if end < 0:
        return re.escape("["), start
    body = seg[start:end]
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    for special in "\\[&~|":
        body = body.replace(special, "\\" + special)
    if body.startswith("]"):
        body = "\\" + body
    return ("[^/" + body + "]") if negate else ("(?!/)[" + body + "]"), end + 1


class _Glob(NamedTuple):
    regex: re.Pattern[str]
    anchored: bool  # match the root-relative path, not the base name


def _glob(pattern: str) -> _Glob:
    return _Glob(compile_glob(pattern), pattern.startswith("/") or "/" in pattern.strip("/"))


def _any_match(globs: tuple[_Glob, ...], rel: str, name: str) -> bool:
    return any(g.regex.match(rel if g.anchored else name) for g in globs)


class IgnoreRules:
    """Decides which files are taken and which directories are walked.

    Args:
        include: user globs a file must match (any one), when non-empty.
        exclude: user globs that remove files and prune directories.
        hidden: take dot-prefixed files and walk dot-prefixed directories.
        ignore_suffixes: docproc's own sidecar suffixes, never taken.
    """

    def __init__(
        self,
        *,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        hidden: bool = False,
        ignore_suffixes: Iterable[str] = SIDECAR_SUFFIXES,
    ) -> None:
        self._include = tuple(_glob(g) for g in include)
        self._exclude = tuple(_glob(g) for g in exclude)
        self._hidden = hidden
        self._suffixes = tuple(ignore_suffixes)

    @classmethod
    def from_spec(cls, spec: WatchSpec) -> IgnoreRules:
        """The rules a :class:`WatchSpec` asks for."""
        return cls(
            include=spec.include,
            exclude=spec.exclude,
            hidden=spec.hidden,
            ignore_suffixes=spec.ignore_suffixes,
        )

    def enters_dir(self, rel: str) -> bool:
        """Whether the walk descends into the directory at ``rel``."""
        name = rel.rpartition("/")[2]
        folded = name.casefold()
        if folded in JUNK_DIRS or folded.startswith(JUNK_DIR_PREFIXES):
            return False
        if name.startswith(".") and not self._hidden:
            return False
        return not _any_match(self._exclude, rel, name)

    def takes_file(self, rel: str) -> bool:
        """Whether the file at ``rel`` is taken, judging by its own name and path.

        Its ancestor directories are not checked: the walk prunes them; use
        :meth:`takes_path` for a path that arrives on its own (an event).
        """
        name = rel.rpartition("/")[2]
        if name.endswith(self._suffixes) or _builtin_ignored_file(name.casefold()):
            return False
        if name.startswith(".") and not self._hidden:
            return False
        if _any_match(self._exclude, rel, name):
            return False
        return not self._include or _any_match(self._include, rel, name)

    def enters_parents(self, rel: str) -> bool:
        """Whether the walk would reach ``rel``: it enters every ancestor directory."""
        parts = rel.split("/")
        return all(self.enters_dir("/".join(parts[:depth])) for depth in range(1, len(parts)))

    def takes_path(self, rel: str) -> bool:
        """:meth:`takes_file`, and the walk reaches it (see :meth:`enters_parents`)."""
        return self.enters_parents(rel) and self.takes_file(rel)


def _builtin_ignored_file(folded: str) -> bool:
    return (
        folded in JUNK_FILES
        or folded.startswith(JUNK_FILE_PREFIXES)
        or folded.endswith(TEMP_SUFFIXES)
        or (folded.startswith(LOCK_PREFIX) and folded.endswith(LOCK_SUFFIX))
    )
