"""Regenerates ``bridge/data/frequent_words.txt``, the garbage loop's word list.

The most frequent words of pocketsphinx's general English language model (``en-us.lm.bin``,
unigram probability) that are plain lower-case words with a pronunciation in the bundled
dictionary, most frequent first, each with every pronunciation the dictionary lists. The
decoder workers read the stored list (:func:`bridge.resources.frequent_words`) instead of
loading the language model and the 130,000-word dictionary. Run from the source tree::

    .venv/bin/python -m bridge.tools.frequent_words
"""

from __future__ import annotations

import re

from ..resources import FREQUENT_WORDS_FILE, cmudict, data_path, language_model_path

STORED_WORDS = 1000
"""How many words the stored list holds (the loop uses the first few hundred)."""


def rank_words(count: int = STORED_WORDS) -> list[str]:
    """The `count` most frequent words of pocketsphinx's en-us language model (unigram
    probability) that are plain lower-case words with a dictionary pronunciation."""
    from pocketsphinx import NGramModel

    lm = NGramModel.readfile(str(language_model_path()))
    scored = []
    for word in cmudict():
        if re.fullmatch(r"[a-z]+", word):
            prob = lm.prob([word])
            scored.append((prob[0] if isinstance(prob, tuple) else prob, word))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [word for _, word in scored[:count]]


def main() -> None:
    """Rewrite ``bridge/data/frequent_words.txt`` from the bundled language model."""
    path = data_path(FREQUENT_WORDS_FILE)
    words = rank_words()
    prons = cmudict()
    header = ("# The most frequent words of pocketsphinx's en-us language model (unigram\n"
              "# probability), most frequent first, with their pronunciations in the bundled\n"
              "# dictionary (tab-separated). Made by: python -m bridge.tools.frequent_words\n")
    lines = ["\t".join((word, *prons[word])) for word in words]
    path.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(words)} words -> {path}")


if __name__ == "__main__":
    main()
