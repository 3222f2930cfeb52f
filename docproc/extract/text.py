"""Plain text: bytes of unknown encoding to a str with ``\\n`` newlines.

Files in a watched folder carry no charset label, so the encoding is guessed
in a fixed order that never guesses wrong silently on common inputs:

1. a byte-order mark (UTF-32, UTF-8, UTF-16), which is unambiguous;
2. a declared charset from the caller (an HTML ``<meta>``), if Python knows it;
3. NUL bytes: UTF-16 without a BOM when they sit in every other byte (Windows
   tools write such files), otherwise the file is binary and refused;
4. strict UTF-8 (random non-UTF-8 text almost never validates as UTF-8);
5. charset-normalizer's guess, when it names a non-Latin script (Shift-JIS,
   GB18030, EUC-KR, Big5, cp1251, ...): its guesses among the Latin code
   pages are unreliable on short text (it reads French latin-1 as cp1250);
6. cp1252, the usual Windows "ANSI" code page, then latin-1, which accepts
   every byte sequence, so decoding always ends.
"""

from __future__ import annotations

import codecs

import charset_normalizer

from docproc.errors import PermanentExtractionError

# Longest BOMs first: the UTF-32-LE BOM begins with the UTF-16-LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SAMPLE = 64 * 1024  # enough bytes to judge the NUL pattern of any text file
_MIN_HIGH_BYTES = 8
_HIGH = bytes(range(0x80, 0x100))
_ASCII_LETTERS = bytes(range(0x41, 0x5B)) + bytes(range(0x61, 0x7B))
_MIN_HIGH_SHARE = 0.1


def extract(data: bytes) -> str:
    """Return the text of a plain-text document.

    Raises:
        PermanentExtractionError: the bytes are binary, not text.
    """
    return normalise_newlines(decode(data))


def decode(data: bytes, declared: str | None = None) -> str:
    """Decode ``data`` following the order in the module docstring.

    Args:
        data: the raw bytes.
        declared: a charset the document declares about itself, if any.

    Raises:
        PermanentExtractionError: NUL bytes that are not UTF-16.
    """
    bom = sniff_bom(data)
    if bom is not None:
        encoding, skip = bom
        return data[skip:].decode(encoding, errors="replace")
    if declared is not None and _known(declared):
        return data.decode(declared, errors="replace")
    if b"\x00" in data:
        return _decode_nul_bearing(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    guess = _non_latin_guess(data[:_SAMPLE])
    if guess is not None:
        return data.decode(guess, errors="replace")
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined; latin-1 maps every byte.
        return data.decode("latin-1")


def _non_latin_guess(sample: bytes) -> str | None:
    """charset-normalizer's encoding for ``sample`` when it reads as a non-Latin script.

    Only asked when there are at least 8 bytes >= 0x80 and they are a tenth of
    the letters or more (CJK and Cyrillic text is mostly such bytes): on a few
    accented letters every single-byte code page decodes something plausible.
    """
    high = len(sample) - len(sample.translate(None, _HIGH))
    letters = high + len(sample) - len(sample.translate(None, _ASCII_LETTERS))
    if high < _MIN_HIGH_BYTES or high < _MIN_HIGH_SHARE * letters:
        return None
    best = charset_normalizer.from_bytes(sample).best()
    if best is None or all(_latin(name) for name in best.alphabets):
        return None
    return str(best.encoding)


def _latin(alphabet: str) -> bool:
    """Unicode ranges every Latin code page covers (letters, punctuation, symbols)."""
    return alphabet.startswith(("Basic Latin", "Latin", "General Punctuation", "Currency")) or (
        alphabet in ("Letterlike Symbols", "Spacing Modifier Letters", "Control character")
    )


def sniff_bom(data: bytes) -> tuple[str, int] | None:
    """Return ``(encoding, bom_length)`` when ``data`` starts with a BOM."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None


def normalise_newlines(text: str) -> str:
    """Turn Windows (``\\r\\n``) and old Mac (``\\r``) line ends into ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode_nul_bearing(data: bytes) -> str:
    """UTF-16 without a BOM, recognised by where its NUL bytes fall."""
    encoding = _utf16_by_nul_pattern(data[:_SAMPLE])
    if encoding is None:
        raise PermanentExtractionError("binary content, not text")
    return data.decode(encoding, errors="replace")


def _utf16_by_nul_pattern(sample: bytes) -> str | None:
    """Guess UTF-16 byte order, or None when the NULs look like binary data.

    Latin-script UTF-16 has a NUL in (nearly) every high byte and almost none in
    the low bytes; binary formats scatter NULs over both positions.
    """
    pairs = len(sample) // 2
    if pairs == 0:
        return None
    even_nuls = sample[0 : pairs * 2 : 2].count(0)
    odd_nuls = sample[1 : pairs * 2 : 2].count(0)
    if odd_nuls >= 0.3 * pairs and even_nuls <= 0.02 * pairs:
        return "utf-16-le"
    if even_nuls >= 0.3 * pairs and odd_nuls <= 0.02 * pairs:
        return "utf-16-be"
    return None


def _known(encoding: str) -> bool:
    try:
        codecs.lookup(encoding)
    except LookupError:
        return False
    return True
