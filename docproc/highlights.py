"""Find quoted highlights in their source text and record where they are.

A provider's quote is supposed to be verbatim, but models (and PDF text) differ
in whitespace and in curly versus straight quotes. :func:`locate` compares a
*normalised* form of both sides — every whitespace run becomes one space, and
typographic quotes become straight ones — and reports offsets into the
ORIGINAL text, with the quote replaced by the exact source slice. A quote that
is not there is dropped and counted: a highlight is never invented.

Speed: a quote that is verbatim (the usual case) costs one ``str.find``. A
quote with a word the text does not hold anywhere cannot be in it, however
its spaces and quotes are normalised, and is dropped at the cost of a few
``in`` tests. Only when some other quote is not verbatim, the text is
normalised once per call, with a compact offset map (one entry per whitespace
run that normalising shortens), and each remaining quote costs a ``str.find``
there. (Measured on the Bedrock benchmark: an invented quote per document
made normalising 20% of applying its results; the word check removes it.)
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence

from docproc.models import Highlight

# The runs normalising shortens: leading whitespace (dropped) and runs of two or more.
_SHORTENED_RUN = re.compile(r"^\s+|\s\s+")
# One character for one character, so normalising quotes moves no offset.
_QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
    }
)

_QUOTE_MARKS = frozenset("'\"") | {chr(code) for code in _QUOTES}


def normalise(text: str) -> str:
    """Collapse whitespace runs to one space, trim the ends, straighten typographic quotes."""
    return " ".join(text.split()).translate(_QUOTES)


class _Normalised:
    """A normalised copy of a text and the way back to original offsets."""

    __slots__ = ("_breaks", "_shifts", "text")

    def __init__(self, original: str) -> None:
        self.text = normalise(original)
        # Normalised index n maps to n + shift, where shift grows after each run
        # that normalising shortens; _breaks[i] is where _shifts[i] starts to apply.
        self._breaks = [0]
        self._shifts = [0]
        shift = 0
        for match in _SHORTENED_RUN.finditer(original):
            start, end = match.span()
            kept = 0 if start == 0 else 1  # a leading run vanishes, others become " "
            self._breaks.append(start - shift + kept)
            shift += end - start - kept
            self._shifts.append(shift)

    def original_index(self, index: int) -> int:
        """Map an index of the normalised text to the original text."""
        return index + self._shifts[bisect_right(self._breaks, index) - 1]


def locate(text: str, highlights: Sequence[Highlight]) -> tuple[tuple[Highlight, ...], int]:
    """Find each highlight's quote in ``text``.

    Args:
        text: the source text the quotes were taken from.
        highlights: quotes as the provider gave them (offsets, if any, ignored).

    Returns:
        ``(located, dropped)``: the found highlights in input order, each with
        ``quote`` replaced by ``text[start:end]``, and how many quotes were not
        found or were blank. The slice is the first exact occurrence of the
        trimmed quote if there is one, else the first occurrence up to
        whitespace and quote style; it starts and ends on a non-space character.
    """
    located: list[Highlight] = []
    norm: _Normalised | None = None  # built on the first quote that is not verbatim
    for highlight in highlights:
        found = _find_verbatim(text, highlight.quote)
        if found is None and _words_present(text, highlight.quote):
            norm = norm or _Normalised(text)
            found = _find_normalised(norm, highlight.quote)
        if found is not None:
            start, end = found
            located.append(Highlight(text[start:end], highlight.why, start, end))
    return tuple(located), len(highlights) - len(located)


def _find_verbatim(text: str, quote: str) -> tuple[int, int] | None:
    """Return ``(start, end)`` of the trimmed quote's first exact occurrence, or None."""
    needle = quote.strip()
    at = text.find(needle) if needle else -1
    return None if at < 0 else (at, at + len(needle))


def _words_present(text: str, quote: str) -> bool:
    """Whether every word of the quote without a quote mark is somewhere in the text: a
    necessary condition for a normalised match (normalising changes only whitespace
    and quote marks, never the characters of such a word)."""
    return all(word in text for word in quote.split() if _QUOTE_MARKS.isdisjoint(word))


def _find_normalised(norm: _Normalised, quote: str) -> tuple[int, int] | None:
    """Return original ``(start, end)`` of the quote's first normalised occurrence, or None."""
    needle = normalise(quote)
    if not needle:
        return None
    at = norm.text.find(needle)
    if at < 0:
        return None
    start = norm.original_index(at)
    end = norm.original_index(at + len(needle) - 1) + 1
    return start, end
