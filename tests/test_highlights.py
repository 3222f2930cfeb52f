"""Locating quotes in their source: verbatim, whitespace-mangled, curly-quoted, absent."""

from __future__ import annotations

import time

from hypothesis import assume, given
from hypothesis import strategies as st

from docproc.highlights import locate, normalise
from docproc.models import Highlight

TEXT = (
    "Intro.\n\nThe  quick\tbrown fox\r\njumps over the \u201clazy\u201d dog."
    "  Then it \u2018rests\u2019."
)


def test_verbatim_quote_keeps_its_offsets_and_why() -> None:
    located, dropped = locate(TEXT, [Highlight("brown fox", why="animal")])
    assert dropped == 0
    at = TEXT.index("brown fox")
    assert located == (Highlight("brown fox", "animal", at, at + 9),)


def test_whitespace_differences_are_tolerated_and_the_source_slice_returned() -> None:
    located, _ = locate(TEXT, [Highlight("The quick brown fox jumps")])
    (found,) = located
    assert found.quote == "The  quick\tbrown fox\r\njumps"
    assert TEXT[found.start : found.end] == found.quote


def test_straight_quotes_match_curly_ones() -> None:
    located, dropped = locate(TEXT, [Highlight('the "lazy" dog.'), Highlight("it 'rests'")])
    assert dropped == 0
    assert [h.quote for h in located] == ["the \u201clazy\u201d dog.", "it \u2018rests\u2019"]


def test_missing_and_blank_quotes_are_dropped_and_counted() -> None:
    quotes = [Highlight("a cat"), Highlight("   "), Highlight(""), Highlight("Intro.")]
    located, dropped = locate(TEXT, quotes)
    assert dropped == 3
    assert located == (Highlight("Intro.", "", 0, 6),)


def test_surrounding_whitespace_of_a_quote_is_trimmed() -> None:
    (found,), _ = locate(TEXT, [Highlight("  \n dog.  Then  ")])
    assert found.quote == "dog.  Then"


def test_leading_whitespace_of_the_text_is_accounted_for() -> None:
    text = " \n\t  alpha   beta\n\ngamma"
    (found,), _ = locate(text, [Highlight("beta gamma")])
    assert text[found.start : found.end] == "beta\n\ngamma"


def test_no_highlights_and_empty_text() -> None:
    assert locate(TEXT, []) == ((), 0)
    assert locate("", [Highlight("x")]) == ((), 1)


def test_normalise() -> None:
    assert normalise("  a \t\n b  \u201cc\u201d  ") == 'a b "c"'


def test_locating_is_fast() -> None:
    text = "This is an ordinary sentence about revenue in the third quarter.  \n" * 25
    quotes = [Highlight("revenue in the third quarter. This")] * 5
    quotes += [Highlight("an ordinary sentence about revenue")] * 5
    started = time.perf_counter()
    for _ in range(2_000):
        locate(text, quotes)
    rate = 20_000 / (time.perf_counter() - started)
    assert rate > 20_000  # measured ~90,000 results/s; generous for loaded CI machines


# -- properties -------------------------------------------------------------------

WHITESPACE = " \t\n\r\u00a0\u2003"
text_strategy = st.text(
    alphabet=st.sampled_from("abc.,'\"\u201c\u201d\u2018\u2019" + WHITESPACE), max_size=80
)


@st.composite
def mangled_slices(draw: st.DrawFn) -> tuple[str, int, int, str]:
    """A text, a slice of it, and the slice with every whitespace run replaced."""
    text = draw(text_strategy)
    i = draw(st.integers(0, len(text)))
    j = draw(st.integers(i, len(text)))
    piece = text[i:j]
    runs = draw(st.lists(st.text(alphabet=WHITESPACE, min_size=1, max_size=3), min_size=40))
    words = piece.split()
    mangled = runs[0][: draw(st.integers(0, 1))]  # maybe some leading whitespace
    for k, word in enumerate(words):
        mangled += word + (runs[k + 1] if k + 1 < len(words) else "")
    return text, i, j, mangled.translate(str.maketrans("\u201c\u201d\u2018\u2019", "\"\"''"))


@given(mangled_slices())
def test_a_mangled_slice_is_always_found_where_it_matches(case: tuple[str, int, int, str]) -> None:
    text, i, j, quote = case
    assume(text[i:j].strip())
    (found,), dropped = locate(text, [Highlight(quote)])
    assert dropped == 0
    assert found.start is not None
    assert found.quote == text[found.start : found.end]
    assert normalise(found.quote) == normalise(text[i:j])
    assert not found.quote[0].isspace() and not found.quote[-1].isspace()
    if text.find(quote.strip()) >= 0:  # an exact occurrence is preferred: the first
        assert found.start == text.find(quote.strip())
    else:  # else the first normalised one: never later than the slice's own start
        assert found.start <= i + (len(text[i:j]) - len(text[i:j].lstrip()))


@given(st.lists(st.text(alphabet="abcdefghij", min_size=3, max_size=6), min_size=1, max_size=12))
def test_unique_words_are_found_at_exactly_their_offsets(words: list[str]) -> None:
    # words made unique by their position, joined with assorted whitespace
    words = [f"{w}{k}Z" for k, w in enumerate(words)]
    separators = ["\n\n ", " ", "\t", "  \r\n"]
    text = "".join(w + separators[k % 4] for k, w in enumerate(words))
    for a in range(len(words)):
        for b in range(a + 1, min(len(words), a + 3) + 1):
            quote = " ".join(words[a:b])
            (found,), _ = locate(text, [Highlight(quote)])
            assert found.start == text.index(words[a])
            assert found.end == text.index(words[b - 1]) + len(words[b - 1])


@given(text_strategy, st.text(max_size=10))
def test_located_quotes_are_always_source_slices(text: str, quote: str) -> None:
    located, dropped = locate(text, [Highlight(quote)])
    assert len(located) + dropped == 1
    for found in located:
        assert found.start is not None and found.end is not None
        assert text[found.start : found.end] == found.quote
