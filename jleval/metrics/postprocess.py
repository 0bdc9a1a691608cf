"""Scoring profiles and the post-processing each applies to a raw generation before any metric sees it.

Two profiles:

- ``llm-jp-eval-1.4.1`` (default) reproduces upstream: the prediction is the text before the first blank line
  ("\\n\\n"), NFKC-normalised, **not stripped**; the gold is NFKC-normalised. A trailing space or a leading
  newline therefore makes an exact match fail, exactly as on the leaderboard.
- ``jleval`` fixes what we consider bugs: it applies the task's v2-style answer extraction (a regex or a named
  answer pattern; by default the first paragraph, as upstream v2), NFKC-normalises and strips both sides.

Every metric signature includes :func:`signature` of the profile, because post-processing changes the number.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from jleval import defaults

DEFAULT_PROFILE = defaults.PROFILE


@dataclass(frozen=True)
class Profile:
    """A scoring profile: every behaviour that differs between profiles is a field here, so metrics read the
    field, never the profile's name."""

    name: str
    strip: bool  # strip whitespace around prediction and gold
    extract: bool  # apply the task's answer-extraction pattern (v2 style)
    description: str
    #: char_f1: fuzzywuzzy's token_sort_ratio (non-ASCII 128-255 dropped, rounded to an int) as upstream; else
    #: rapidfuzz's Indel similarity on token-sorted text, unrounded
    fuzzywuzzy_char_f1: bool
    #: set_f1: upstream's recall (the precision's numerator over gold lines, gold duplicates kept); else true recall
    upstream_set_f1: bool
    #: BLEU: upstream's corpus_score(str, [str]) call (a per-character bug) and float(pred == gold) on empties
    upstream_bleu: bool
    #: the Japanese tokenizer of BLEU and ROUGE: "ipadic" (MeCab, as upstream) or "unidic-lite" (fugashi)
    tokenizer: str
    #: ROUGE's task score: rouge-score's BootstrapAggregator mid (upstream) instead of the plain mean
    rouge_bootstrap_mid: bool
    #: pearson/spearman: parse a prediction by keeping digits and dots (upstream) instead of the first number
    keep_digits_parse: bool


PROFILES: dict[str, Profile] = {
    "llm-jp-eval-1.4.1": Profile(
        "llm-jp-eval-1.4.1", strip=False, extract=False,
        description="reproduces llm-jp-eval v1.4.1 (Open Japanese LLM Leaderboard), quirks included",
        fuzzywuzzy_char_f1=True, upstream_set_f1=True, upstream_bleu=True, tokenizer="ipadic",
        rouge_bootstrap_mid=True, keep_digits_parse=True),
    "jleval": Profile(
        "jleval", strip=True, extract=True,
        description="upstream's known bugs fixed: strip, answer extraction, proper sentence BLEU, "
                    "unrounded char_f1, set_f1 with a true recall, fugashi+unidic-lite tokenization",
        fuzzywuzzy_char_f1=False, upstream_set_f1=False, upstream_bleu=False, tokenizer="unidic-lite",
        rouge_bootstrap_mid=False, keep_digits_parse=False),
}

#: v2 answer patterns by id (`answer_pattern_id` in a task's options). Each is searched with re.DOTALL; the
#: capture groups are joined; no match gives "".
ANSWER_PATTERNS: dict[str, str] = {
    "custom": r"^(.*?)(?=\n\n|\Z)",  # v2's default_answer_extract_pattern: text before the first blank line
    "answer_tags": r"<answer>(.*?)</answer>",
    "choice_only": r"^\s*(.*?)(?=\n|\Z)",  # the first (non-blank-prefixed) line
    "json_output": r"```json\s*\n(.*?)```",
    "code_output": r"```(?:[\w+-]*)\s*\n(.*?)```",
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        from jleval.errors import UsageError

        raise UsageError(f"unknown scoring profile {name!r}", f"use one of: {', '.join(PROFILES)}")
    return PROFILES[name]


def answer_pattern(options: dict | None) -> str | None:
    """The extraction regex a task defines in its options (`answer_extract_pattern`, or `answer_pattern_id`
    naming one of ANSWER_PATTERNS, with or without a `_jp`/`_en` suffix); None when it defines none."""
    if not options:
        return None
    if pat := options.get("answer_extract_pattern"):
        return str(pat)
    if pid := options.get("answer_pattern_id"):
        base = re.sub(r"_(jp|en)$", "", str(pid))
        if base not in ANSWER_PATTERNS:
            from jleval.errors import TaskSpecError

            raise TaskSpecError(f"unknown answer_pattern_id {pid!r}", f"use one of {', '.join(ANSWER_PATTERNS)}")
        return ANSWER_PATTERNS[base]
    return None


def _extract(text: str, pattern: str) -> str:
    m = re.search(pattern, text, re.DOTALL)
    if m is None:
        return ""
    if m.re.groups == 0:
        return m.group(0)
    return "".join(g for g in m.groups() if g)


def postprocess(generation: str, profile: str = DEFAULT_PROFILE, pattern: str | None = None) -> str:
    """Turn a raw generation into the prediction a metric compares with the gold."""
    prof = get_profile(profile)
    if prof.extract:
        text = _extract(generation, pattern or ANSWER_PATTERNS["custom"])
    else:
        text = generation.split("\n\n")[0]
    text = unicodedata.normalize("NFKC", text)
    return text.strip() if prof.strip else text


def normalize_gold(gold: str, profile: str = DEFAULT_PROFILE) -> str:
    text = unicodedata.normalize("NFKC", gold)
    return text.strip() if get_profile(profile).strip else text


def post_value(profile: str = DEFAULT_PROFILE, pattern: str | None = None) -> str:
    """What the post-processing does, as the `post` value of a signature."""
    prof = get_profile(profile)
    if prof.extract:
        how = "extract:first-para" if pattern in (None, ANSWER_PATTERNS["custom"]) else f"extract:re:{pattern}"
        return f"{how}+nfkc+strip"
    return "cut-blank-line+nfkc+nostrip"


def signature_of(profile: str = DEFAULT_PROFILE, pattern: str | None = None):
    """The post-processing part of a metric signature: profile and post."""
    from jleval.metrics.signature import Signature

    return Signature([("profile", get_profile(profile).name), ("post", post_value(profile, pattern))])


def signature(profile: str = DEFAULT_PROFILE, pattern: str | None = None) -> str:
    """The post-processing part of a metric signature, formatted."""
    return str(signature_of(profile, pattern))
