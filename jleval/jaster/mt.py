"""Machine translation converters: ALT and the Kyoto Wikipedia (WikiCorpus) bitext, both directions
(llm-jp-eval v1.4.1 "alt-e-to-j", "alt-j-to-e", "wikicorpus-e-to-j", "wikicorpus-j-to-e").

The task file's `options.direction` ("e-to-j" or "j-to-e") picks the source side. Both corpora keep only the
pairs with len(ja) + len(en) < 500 characters, as upstream does.

- ALT: the official article splits (`URL-{split}.txt`), articles in the order of that list and sentences in
  corpus order; not shuffled.
- WikiCorpus: the sentence pairs of each XML file form one group; the groups are shuffled (seed 42) and cut
  80/10/10. Upstream takes the files in directory-walk order, which depends on the file system, so its split
  is not reproducible; jleval sorts the files by path first (docs/reproducibility-notes/wikicorpus-order.md).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from jleval.errors import TaskSpecError
from jleval.jaster.base import RawFiles, Sample, Splits, malformed, read_text, split_8_1_1
from jleval.tasks import TaskSpec

MAX_PAIR_CHARS = 500  # keep a pair only if len(ja) + len(en) < 500


def _direction(spec: TaskSpec) -> str:
    direction = spec.options.get("direction")
    if direction not in ("e-to-j", "j-to-e"):
        raise TaskSpecError(f"{spec.file or spec.name}: options.direction must be 'e-to-j' or 'j-to-e', "
                            f"got {direction!r}")
    return direction


def _samples(pairs: list[tuple[str, str]], direction: str) -> list[Sample]:
    """(ja, en) pairs -> samples in the task's direction, long pairs left out."""
    out = []
    for ja, en in pairs:
        if len(ja) + len(en) >= MAX_PAIR_CHARS:
            continue
        out.append(Sample(en, ja) if direction == "e-to-j" else Sample(ja, en))
    return out


# --- ALT ---------------------------------------------------------------------------------------------------

ALT_DIR = "alt/ALT-Parallel-Corpus-20191206"


def alt_url_path(split: str) -> str:
    return f"alt/URL-{split}.txt"


def _alt_sentences(path: Path) -> dict[str, dict[str, str]]:
    """data_{lang}.txt: lines `SNT.<url id>.<sentence id>\\t<sentence>` -> {url id: {sentence key: text}},
    sentences in file order."""
    out: dict[str, dict[str, str]] = {}
    for n, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        key, tab, sentence = line.partition("\t")
        parts = key.split(".")
        if not tab or len(parts) != 3 or parts[0] != "SNT":
            raise malformed(path, n, "expected 'SNT.<url id>.<sentence id>' and a tab before the sentence")
        out.setdefault(parts[1], {})[key] = sentence.strip()
    return out


def _alt_urls(path: Path) -> list[str]:
    """URL-{split}.txt: lines `URL.<url id>\\t<address>` -> url ids in file order."""
    ids = []
    for n, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")[0].strip().split(".")
        if len(parts) != 2 or parts[0] != "URL":
            raise malformed(path, n, "expected 'URL.<url id>' then a tab and the article address")
        ids.append(parts[1])
    return ids


def alt(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    direction = _direction(spec)
    root = raw.path(ALT_DIR)
    ja, en = _alt_sentences(root / "data_ja.txt"), _alt_sentences(root / "data_en.txt")
    out: Splits = {}
    for split in splits:
        pairs = []
        for url_id in _alt_urls(raw.path(alt_url_path(split))):
            en_sentences = en.get(url_id, {})
            for key, ja_text in ja.get(url_id, {}).items():
                en_text = en_sentences.get(key)
                if ja_text and en_text:
                    pairs.append((ja_text, en_text))
        out[split] = _samples(pairs, direction)
    return out


# --- WikiCorpus --------------------------------------------------------------------------------------------

WIKICORPUS_DIR = "wikicorpus/wiki_corpus_2.01"

# A bare "&" (not starting an entity or character reference) makes a file ill-formed; it is read as the
# character "&", as upstream's patch of the corpus does.
_BARE_AMPERSAND = re.compile(r"&(?!(?:[A-Za-z][\w.-]*|#\d+|#x[0-9A-Fa-f]+);)")


def wikicorpus_pairs(path: Path) -> list[tuple[str, str]]:
    """(ja, en) of every <sen> of one file: the <j> text and the first <e type="check"> (the checked
    translation); sentences missing either side are skipped."""
    text = _BARE_AMPERSAND.sub("&amp;", read_text(path))
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise malformed(path, e.position[0], f"not well-formed XML ({str(e).split(':')[0]})") from None
    pairs = []
    for sen in root.iter("sen"):
        ja, en = sen.findtext("j"), sen.findtext("e[@type='check']")  # None when missing, "" when empty
        if ja and en:
            pairs.append((ja, en))
    return pairs


def wikicorpus(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    direction = _direction(spec)
    groups = [wikicorpus_pairs(p) for p in raw.dir_files(WIKICORPUS_DIR, "*.xml")]  # sorted by path
    if not groups:
        raise malformed(raw.path(WIKICORPUS_DIR), None, "no .xml files found in the WikiCorpus folder")
    parts = dict(zip(("train", "dev", "test"), split_8_1_1(groups)))
    return {split: _samples([pair for group in parts[split] for pair in group], direction) for split in splits}
