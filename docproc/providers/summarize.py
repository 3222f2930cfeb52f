"""An extractive summariser: the brain of the ``local`` provider. Stdlib only.

The text is split into sentences (:func:`sentence_spans`), each sentence is
scored by how many of the document's frequent content words it holds, with a
small bonus near the start, and the best are chosen greedily while skipping
near-duplicates. The summary is the top ``summary_sentences`` in document
order; the highlights are the top 3 to ``max_highlights``, each a verbatim
slice of the text with its character offsets. Same text, same output.

Work is capped for huge texts: beyond ``MAX_SCAN_CHARS`` characters only a few
evenly spaced windows are read, so the cost per document is bounded.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from itertools import chain

from docproc.models import Highlight

MAX_SCAN_CHARS = 100_000
MAX_SENTENCE_CHARS = 1_000  # a longer "sentence" (a table, a list without stops) is cut
SCAN_WINDOWS = 4
MIN_WORDS = 4  # shorter fragments are used only when nothing better is left
LONG_SENTENCE = 400  # characters; longer sentences score proportionally less
REDUNDANT = 0.5  # Jaccard overlap of content words above which a pick is skipped

_WORD = re.compile(r"[^\W\d_]{2,}")  # letters only, two or more
_ASCII_WORD = re.compile(r"[a-z]{2,}")  # the same on lower-case ASCII, twice as fast
_TERMINAL = frozenset(".!?\u2026\u3002\uff01\uff1f\"'\u201d\u2019)")
_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    either else etc even ever every few for from further had has have having he her here hers
    herself him himself his how however if in into is it its itself just least less like made
    make many may me might more most much must my myself no nor not now of off on once one only
    or other others our ours ourselves out over own per rather same shall she should since so
    some such than that the their theirs them themselves then there these they this those
    though through thus to too two under until up upon us very via was we well were what when
    where whether which while who whom whose why will with within without would yet you your
    yours yourself yourselves"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True, slots=True)
class Summary:
    """The summary text and the located highlights, in document order."""

    summary: str
    highlights: tuple[Highlight, ...]


@dataclass(slots=True)
class _Sentence:
    index: int
    start: int
    end: int
    words: frozenset[str]
    good: bool
    score: float = 0.0


def summarize(text: str, *, summary_sentences: int = 3, max_highlights: int = 10) -> Summary:
    """Summarise ``text`` extractively.

    Args:
        text: the document text.
        summary_sentences: how many sentences make the summary (at least 1).
        max_highlights: the most highlights to return; at least
            ``min(3, max_highlights)`` are returned when the text has that many
            sentences.

    Returns:
        A :class:`Summary`; empty when the text has no visible characters.
    """
    sentences, tf = _read(text)
    if not sentences:
        return Summary("", ())
    n_summary = min(max(1, summary_sentences), len(sentences))
    n_highlights = _highlight_count(sentences, max_highlights)
    ranked = _rank(sentences, max(n_summary, n_highlights))
    chosen = sorted(ranked[:n_summary], key=lambda s: s.index)
    summary = " ".join(_as_summary_sentence(text[s.start : s.end]) for s in chosen)
    picks = sorted(ranked[:n_highlights], key=lambda s: s.index)
    highlights = tuple(_highlight(text, s, tf) for s in picks)
    return Summary(summary, highlights)


def _as_summary_sentence(chunk: str) -> str:
    """One line of prose: whitespace collapsed, a full stop added if it has none."""
    line = " ".join(chunk.split())
    return line if line[-1] in _TERMINAL or line[-1] == ":" else line + "."


def _read(text: str) -> tuple[list[_Sentence], Counter[str]]:
    """Split the scanned part of ``text`` into scored sentences; also the term counts."""
    sentences: list[_Sentence] = []
    for start, end in _scan_spans(text):
        chunk = text[start:end]
        lower = chunk.lower()
        words = (_ASCII_WORD if lower.isascii() else _WORD).findall(lower)
        content = frozenset(words) - _STOPWORDS
        good = len(words) >= MIN_WORDS and not _looks_like_heading(chunk, words)
        sentences.append(_Sentence(len(sentences), start, end, content, good))
    tf = Counter(chain.from_iterable(s.words for s in sentences))
    for s in sentences:
        s.score = _score(s, tf)
    return sentences, tf


def _scan_spans(text: str) -> list[tuple[int, int]]:
    """Sentence spans of the whole text, or of evenly spaced windows of a huge one."""
    if len(text) <= MAX_SCAN_CHARS:
        return sentence_spans(text)
    size = MAX_SCAN_CHARS // SCAN_WINDOWS
    spans: list[tuple[int, int]] = []
    for k in range(SCAN_WINDOWS):
        lo = k * (len(text) - size) // (SCAN_WINDOWS - 1)
        hi = lo + size
        found = sentence_spans(text, lo, hi)
        # A sentence touching a cut edge may be a fragment of a longer one.
        spans.extend(s for s in found if (s[0] > lo or lo == 0) and (s[1] < hi or hi == len(text)))
    return spans


def _looks_like_heading(chunk: str, words: list[str]) -> bool:
    """A short line without final punctuation, mostly capitalised: a heading."""
    if len(words) > 6 or chunk[-1] in _TERMINAL:
        return False
    capitals = sum(1 for w in _WORD.findall(chunk) if w[0].isupper())
    return capitals * 10 >= len(words) * 6


def _score(sentence: _Sentence, tf: Counter[str]) -> float:
    """Frequent content words score; long sentences and late ones a little less."""
    if not sentence.words:
        return 0.0
    score = sum(map(tf.__getitem__, sentence.words)) / (len(sentence.words) + 5)
    score *= 1.0 + 0.3 / (1 + sentence.index)
    length = sentence.end - sentence.start
    if length > LONG_SENTENCE:
        score *= LONG_SENTENCE / length
    return score


def _rank(sentences: list[_Sentence], need: int) -> list[_Sentence]:
    """The best ``need`` sentences, best first.

    Good sentences come first, skipping near-duplicates of those already
    taken; then the near-duplicates; then short fragments and headings.
    """
    by_score = sorted(sentences, key=lambda s: (-s.score, s.index))
    picked: list[_Sentence] = []
    duplicates: list[_Sentence] = []
    fragments: list[_Sentence] = []
    for s in by_score:
        if len(picked) >= need:
            break
        if not s.good:
            fragments.append(s)
        elif any(_overlap(s.words, t.words) > REDUNDANT for t in picked):
            duplicates.append(s)
        else:
            picked.append(s)
    return (picked + duplicates + fragments)[:need]


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 1.0 if a == b else 0.0
    return len(a & b) / len(a | b)


def _highlight_count(sentences: list[_Sentence], max_highlights: int) -> int:
    """About one highlight per three good sentences, within 3..max_highlights."""
    upper = max(1, max_highlights)
    wanted = math.ceil(sum(1 for s in sentences if s.good) / 3)
    return min(len(sentences), max(min(3, upper), min(wanted, upper)))


def _highlight(text: str, sentence: _Sentence, tf: Counter[str]) -> Highlight:
    """A verbatim highlight, its ``why`` naming the sentence's most frequent terms."""
    terms = sorted(sentence.words, key=lambda w: (-tf[w], w))[:3]
    why = "key terms: " + ", ".join(terms) if terms else "key passage"
    return Highlight(text[sentence.start : sentence.end], why, sentence.start, sentence.end)


# -- sentences -------------------------------------------------------------------

_BULLET = r"(?:[-*+\u2022\u2023\u25e6\u25aa\u25cf\u2013]|\d{1,3}[.)]|\(?[a-z]\))"
# Every candidate break starts with one of a few characters, so the regex engine
# can skip ahead to them; what follows decides the kind (see _breaks).
_BREAK = re.compile(
    r"[\n.!?\u2026\u3002\uff01\uff1f]"
    r"(?:(?<=\n)[^\S\n]*(?:\n\s*)?"  # a line break, or a blank line
    r"|(?<=[.!?\u2026])[.!?\u2026]*[\"'\u201d\u2019\u00bb)\]]*\s+"  # a stop, then space
    r"|(?<=[\u3002\uff01\uff1f]))"  # CJK stops need no space
)
_BULLET_AT = re.compile(_BULLET + r"\s")
_LEAD = re.compile(r"\s*(?:" + _BULLET + r"\s+)?")
_HAS_WORD = re.compile(r"\w")
_ABBREVIATION_TEXT = """
    mr mrs ms dr prof sr jr st vs fig figs no nos vol vols inc ltd co corp dept approx
    al cf ed eds jan feb mar apr jun jul aug sep sept oct nov dec pp"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_TEXT.split())


def sentence_spans(text: str, lo: int = 0, hi: int | None = None) -> list[tuple[int, int]]:
    """Split ``text[lo:hi]`` into sentences; return their ``(start, end)`` offsets.

    Breaks at blank lines, before bullet and numbered-list lines, after a
    heading line, and after ``.``/``!``/``?`` followed by a word that is not
    lower case (not after abbreviations such as "Dr." or initials). Each span
    is trimmed of whitespace and of a leading bullet marker, holds at least one
    word character, and is at most ``MAX_SENTENCE_CHARS`` long.
    """
    hi = len(text) if hi is None else hi
    spans: list[tuple[int, int]] = []
    start = lo
    for match in _BREAK.finditer(text, lo, hi):
        if _breaks(text, match.start(), match.end(), lo, hi):
            _add_span(text, start, match.end(), spans)
            start = match.end()
    _add_span(text, start, hi, spans)
    return spans


def _breaks(text: str, at: int, after: int, lo: int, hi: int) -> bool:
    """Whether the candidate ``text[at:after]`` ends a sentence."""
    nxt = text[after] if after < hi else ""
    char = text[at]
    if char == "\n":
        return "\n" in text[at + 1 : after] or _line_ends(text, at, after, lo, nxt)
    if char in ".!?\u2026":
        return not nxt.islower() and not (char == "." and _abbreviation(text, at, lo))
    return True  # a CJK stop


def _line_ends(text: str, at: int, after: int, lo: int, nxt: str) -> bool:
    """Whether a single line break at ``at`` ends a sentence (else it is a wrap)."""
    if not nxt or _BULLET_AT.match(text, after):
        return True
    line = text[max(lo, text.rfind("\n", lo, at) + 1) : at].strip()
    if nxt.islower() or not line:
        return False
    if line[-1] in ".!?:\u2026\u3002\uff01\uff1f":
        return True
    words = line.split()
    return (
        len(words) <= 8
        and not line[0].islower()
        and line[-1] not in ",;-\u2013(&/"
        and words[-1].lower() not in _STOPWORDS
    )


def _abbreviation(text: str, dot: int, lo: int) -> bool:
    """Whether the word ending at the full stop ``text[dot]`` is an abbreviation."""
    before = text[max(lo, dot - 24) : dot].split()
    if not before or text[dot - 1].isspace():
        return False
    word = before[-1].lstrip("([\"'\u201c\u2018").lower()
    if len(word) == 1:
        return word.isalpha()  # an initial, as in "J. Smith"
    return word in _ABBREVIATIONS or ("." in word and word.replace(".", "").isalpha())


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    """Trim ``text[start:end]`` and append it, cut into pieces if it is very long."""
    match = _LEAD.match(text, start, end)
    start = match.end() if match else start
    while end > start and text[end - 1].isspace():
        end -= 1
    while end - start > MAX_SENTENCE_CHARS:
        cut = text.rfind(" ", start + MAX_SENTENCE_CHARS // 2, start + MAX_SENTENCE_CHARS)
        cut = cut if cut > start else start + MAX_SENTENCE_CHARS
        _append_if_wordy(text, start, cut, spans)
        start = cut
        while start < end and text[start].isspace():
            start += 1
    _append_if_wordy(text, start, end, spans)


def _append_if_wordy(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    piece_end = end
    while piece_end > start and text[piece_end - 1].isspace():
        piece_end -= 1
    if piece_end > start and _HAS_WORD.search(text, start, piece_end):
        spans.append((start, piece_end))
