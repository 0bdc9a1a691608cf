"""Japanese word tokenization: the one place jleval calls MeCab.

Two tokenizers, each with a signature naming the dictionary and versions that produced the tokens:

- ``ipadic``: sacrebleu's ``ja-mecab`` tokenizer (mecab-python3 + the IPA dictionary, ``-Owakati``). This is what
  llm-jp-eval v1.4.1 uses for Japanese BLEU and, through its ``rouge_ja`` module, for ROUGE, so the default
  profile uses it for both.
- ``unidic-lite``: fugashi + unidic-lite, the tokenizer of the ``jleval`` profile and of every other place jleval
  needs Japanese words.

fugashi nodes are views into the tagger's buffer: their surfaces are read into plain strings before the next
tagger call (the list comprehension below), never kept as nodes.
"""
from __future__ import annotations

import functools
import importlib.metadata
import os

TOKENIZERS = ("ipadic", "unidic-lite")


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


@functools.cache
def _ipadic():
    from sacrebleu.tokenizers.tokenizer_ja_mecab import TokenizerJaMecab

    return TokenizerJaMecab()  # asserts that the IPA dictionary is loaded


@functools.cache
def _unidic_tagger():
    import fugashi
    import unidic_lite

    rc = os.path.join(unidic_lite.DICDIR, "mecabrc")
    # Point at unidic-lite explicitly: a bare Tagger() would prefer the full `unidic` package when installed.
    return fugashi.Tagger(f'-d "{unidic_lite.DICDIR}" -r "{rc}"')


@functools.lru_cache(maxsize=1 << 16)
def ipadic_tokens(text: str) -> tuple[str, ...]:
    """Words of `text` as sacrebleu's ja-mecab splits them (whitespace and newlines are not tokens)."""
    return tuple(_ipadic()(text).split())


@functools.lru_cache(maxsize=1 << 16)
def unidic_tokens(text: str) -> tuple[str, ...]:
    """Words of `text` by fugashi + unidic-lite (surfaces copied out before the next tagger call)."""
    return tuple([node.surface for node in _unidic_tagger()(text)])


#: The longest text handed to MeCab at once. fugashi crashes the process (SIGSEGV) on a text of a few million
#: characters; a longer text is tokenized in pieces cut after a newline or a "。" (never inside a sentence
#: when one ends within the window), so one huge generation costs time, not the process. Texts up to this
#: length, which is every real answer and gold, are tokenized whole, exactly as before.
MAX_CHUNK = 100_000


def _pieces(text: str, limit: int = MAX_CHUNK) -> list[str]:
    pieces = []
    while len(text) > limit:
        cut = max(text.rfind("\n", 0, limit), text.rfind("。", 0, limit)) + 1
        cut = cut if cut > 0 else limit
        pieces.append(text[:cut])
        text = text[cut:]
    return [*pieces, text]


def _tokenize(text: str, tokenizer: str) -> tuple[str, ...]:
    if tokenizer == "ipadic":
        return ipadic_tokens(text)
    if tokenizer == "unidic-lite":
        return unidic_tokens(text)
    raise ValueError(f"unknown tokenizer {tokenizer!r}; use one of {TOKENIZERS}")


def utf8(text: str) -> str:
    """MeCab reads UTF-8: a lone surrogate (a JSON file can hold one, "\\ud800") becomes U+FFFD instead of
    failing the whole task's score."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def tokens(text: str, tokenizer: str) -> tuple[str, ...]:
    text = utf8(text)
    if len(text) <= MAX_CHUNK:
        return _tokenize(text, tokenizer)
    return tuple(t for piece in _pieces(text) for t in _tokenize(piece, tokenizer))


@functools.cache
def signature(tokenizer: str) -> str:
    """Dictionary name and versions, e.g. `ja-mecab-0.996-IPA(ipadic-1.0.0,mecab-python3-1.0.12)`."""
    if tokenizer == "ipadic":
        versions = f"ipadic-{_dist_version('ipadic')},mecab-python3-{_dist_version('mecab-python3')}"
        return f"{_ipadic().signature()}({versions})"
    if tokenizer == "unidic-lite":
        return f"fugashi-{_dist_version('fugashi')}+unidic-lite-{_dist_version('unidic-lite')}"
    raise ValueError(f"unknown tokenizer {tokenizer!r}; use one of {TOKENIZERS}")


def for_profile(profile: str) -> str:
    """The tokenizer a profile uses for Japanese BLEU and ROUGE."""
    from jleval.metrics.postprocess import get_profile

    return get_profile(profile).tokenizer
