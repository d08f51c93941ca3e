"""Text normalisation shared by the grammar compiler, the decoder and the intent recognizer.

Rules (applied to templates, names, aliases and decoded text alike):

1. Unicode NFKC, lowercase; typographic apostrophes become ``'``.
2. ``%`` is the word "percent", ``°`` "degrees", ``&`` "and", ``+`` "plus", ``1/2`` "half".
3. Hyphens, slashes, underscores, dots between letters and other punctuation separate words;
   an apostrophe inside a word stays (``what's``, ``kid's``), at the edges it is dropped.
4. Digit runs become English number words (``2`` → ``two``, ``21`` → ``twenty one``,
   ``1.5`` → ``one point five``); ordinals ``1st``..``31st`` become ``first``...
5. Words are separated by single spaces.
"""

from __future__ import annotations

import re
import unicodedata

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
NUMBER_WORDS = frozenset([*_ONES, *_TENS[2:], "hundred", "thousand", "million", "point"])
"""The words numbers are spoken with (cardinals)."""
_ORDINAL_ONES = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                 "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}

_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:st|nd|rd|th)?|[^\W\d_]+(?:'[^\W\d_]+)*|[%°&+]")
_REPLACE = {"%": "percent", "°": "degrees", "&": "and", "+": "plus"}


def number_words(n: int) -> list[str]:
    """English words for a non-negative integer below one million (``21`` → twenty one)."""
    if n < 0:
        return ["minus", *number_words(-n)]
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        tens, ones = divmod(n, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return [_ONES[hundreds], "hundred"] + (number_words(rest) if rest else [])
    if n < 1_000_000:
        thousands, rest = divmod(n, 1000)
        return [*number_words(thousands), "thousand"] + (number_words(rest) if rest else [])
    return [" ".join(_ONES[int(d)] for d in str(n))]


def ordinal_words(n: int) -> list[str]:
    """English ordinal words (``1`` → first, ``22`` → twenty second)."""
    words = number_words(n)
    last = words[-1]
    if last in _ORDINAL_ONES:
        last = _ORDINAL_ONES[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last = last + "th"
    return [*words[:-1], last]


def decimal_words(value: float) -> list[str]:
    """Words for a number with at most one decimal (``21.5`` → twenty one point five)."""
    integer = int(value)
    frac = round((value - integer) * 10)
    words = number_words(integer)
    if frac:
        words += ["point", _ONES[frac]]
    return words


def _digits(token: str) -> list[str]:
    match = re.fullmatch(r"(\d+)(?:\.(\d+))?(st|nd|rd|th)?", token)
    if match is None:  # pragma: no cover - the tokenizer only yields matching tokens
        return [token]
    whole, decimals, suffix = match.groups()
    if suffix:
        return ordinal_words(int(whole))
    if len(whole) > 6 or (len(whole) > 1 and whole.startswith("0")):
        return [_ONES[int(d)] for d in whole]  # "007" -> zero zero seven
    words = number_words(int(whole))
    if decimals:
        words += ["point", *(_ONES[int(d)] for d in decimals)]
    return words


def normalize_words(text: str) -> list[str]:
    """Normalise text to a list of lowercase spoken words (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = text.replace("1/2", " half ").replace("½", " half ")
    words: list[str] = []
    for token in _TOKEN.findall(text):
        if token in _REPLACE:
            words.append(_REPLACE[token])
        elif token[0].isdigit():
            words.extend(_digits(token))
        else:
            words.append(token)
    return words


def normalize_text(text: str) -> str:
    """:func:`normalize_words` joined by single spaces."""
    return " ".join(normalize_words(text))
