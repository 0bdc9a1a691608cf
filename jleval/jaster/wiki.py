"""The five Wikipedia Annotated Corpus (WAC v1.1.2) tasks: wiki_reading, wiki_ner, wiki_dependency, wiki_pas,
wiki_coreference (llm-jp-eval v1.4.1).

Each split is the official id list (`id/{split}.id`); its documents are read from `knp/<id[:8]>/<id>.knp`
in id order (upstream sorts the downloaded files by name), and a document whose answer is empty is dropped.
The KNP files are read with rhoknp, the corpus authors' own reader, never by hand.

Speed: parsing a document with rhoknp costs ~7 ms and all five tasks read the same 1,817 documents, so each
document is parsed once and converted for all five tasks at once (`doc_samples`); the result is kept in a
cache keyed by file path, size and mtime, and the documents not yet cached are parsed in parallel worker
processes. Building the five tasks then costs one parse of the corpus, spread over the CPU cores.
"""
from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from jleval.jaster.base import RawFiles, Sample, Splits, malformed, read_text
from jleval.tasks import TaskSpec

KNP_DIR = "wiki/knp"
TASKS = ("wiki_reading", "wiki_ner", "wiki_dependency", "wiki_pas", "wiki_coreference")


def id_path(split: str) -> str:
    return f"wiki/id/{split}.id"


# --- shared text helpers -----------------------------------------------------------------------------------

#: Parts of speech upstream trims from both ends of a mention (particles, symbols, copulas).
_ANCILLARY = ("助詞", "特殊", "判定詞")
_PARENTHESIS = re.compile(r"括弧始:(\S+) 括弧終:(\S+) 括弧位置:(\d+)")


def _trim(morphemes: list, head: tuple[str, ...], tail: tuple[str, ...]) -> str:
    """The text of `morphemes` without leading `head` / trailing `tail` parts of speech; all of it when
    nothing would be left."""
    start, end = 0, len(morphemes)
    while start < end and morphemes[start].pos in head:
        start += 1
    while end > start and morphemes[end - 1].pos in tail:
        end -= 1
    core = "".join(m.text for m in morphemes[start:end])
    return core or "".join(m.text for m in morphemes)


def base_phrase_text(base_phrase) -> str:
    """A base phrase grown to its dependents inside the same bunsetsu (contiguous ones only), trimmed of
    ancillary words: "館" in "アメリカ議会図書館は、" becomes "アメリカ議会図書館"."""
    parents = [bp.parent_index for bp in base_phrase.sentence.base_phrases]

    def depends_on_anchor(bp) -> bool:  # bp is base_phrase or one of its (transitive) dependents
        i, hops = bp.index, 0
        while i != -1 and i != base_phrase.index and hops <= len(parents):
            i, hops = parents[i], hops + 1
        return i == base_phrase.index

    siblings = base_phrase.phrase.base_phrases
    anchor = siblings.index(base_phrase)
    span = [base_phrase]
    for step in (1, -1):  # the contiguous dependents after it, then those before it
        i = anchor + step
        while 0 <= i < len(siblings) and depends_on_anchor(siblings[i]):
            span.append(siblings[i])
            i += step
    span.sort(key=lambda bp: bp.index)
    return _trim([m for bp in span for m in bp.morphemes], _ANCILLARY, _ANCILLARY)


def _is_parenthetical(sentence) -> bool:
    """WAC moves a parenthesis into its own sentence (comment `括弧始:（ 括弧終:） 括弧位置:N`)."""
    return "括弧始" in sentence.misc_comment


def _text_with_parentheses(document, path: Path) -> str:
    """The document text with parentheses put back where WAC cut them out, as upstream does it for wiki_ner
    and wiki_pas: a sentence marked 括弧削除 takes back the one sentence that follows it (a second
    parenthesis of the same sentence is appended as a plain sentence, exactly as upstream)."""
    out = ""
    sentences = iter(document.sentences)
    for sentence in sentences:
        text = sentence.text
        if "括弧削除" in sentence.misc_comment:
            inner = next(sentences, None)
            match = _PARENTHESIS.search(inner.misc_comment) if inner is not None else None
            if inner is None or match is None:
                raise malformed(path, None, f"sentence {sentence.sid} is marked 括弧削除 but is not followed by "
                                            "a sentence with 括弧始/括弧終/括弧位置")
            pos = int(match.group(3))
            text = text[:pos] + match.group(1) + inner.text + match.group(2) + text[pos:]
        out += text
    return out


# --- the five conversions ----------------------------------------------------------------------------------

_ALPHABET_READING = dict(zip(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    ["えー", "びー", "しー", "でぃー", "いー", "えふ", "じー", "えいち", "あい", "じぇー", "けー", "える", "えむ",
     "えぬ", "おー", "ぴー", "きゅー", "あーる", "えす", "てぃー", "ゆー", "ぶい", "だぶりゅー", "えっくす",
     "わい", "ぜっと"],
))


def _reading_of(morpheme) -> str:
    kana = morpheme.reading
    if kana in (" ", "\u3000") and morpheme.text not in (" ", "\u3000"):
        return ""  # 熟字訓: the whole reading sits on the first morpheme, the others carry a blank
    kana = kana.split("/")[0]  # several readings (にほん/にっぽん): the first one
    if all(ch in _ALPHABET_READING for ch in kana):
        return "".join(_ALPHABET_READING[ch] for ch in kana)  # BSD -> びーえすでぃー
    return kana


def to_reading(document, path: Path) -> Sample:
    text = kana = ""
    for sentence in document.sentences:
        if _is_parenthetical(sentence):
            continue
        text += sentence.text
        kana += "".join(_reading_of(m) for m in sentence.morphemes)
    return Sample(text, kana)


_NE_NAMES = {"ORGANIZATION": "組織名", "PERSON": "人名", "LOCATION": "地名", "ARTIFACT": "固有物名",
             "DATE": "日付表現", "TIME": "時刻表現", "MONEY": "金額表現", "PERCENT": "割合表現"}


def to_ner(document, path: Path) -> Sample:
    """`entity（type）` for every named entity but the OPTIONAL ones, joined by one space (upstream's
    delimiter: set_f1 splits answers on newlines, so the whole answer is a single item)."""
    names = [f"{ne.text}（{_NE_NAMES[ne.category.value]}）" for ne in document.named_entities
             if ne.category.value != "OPTIONAL"]
    return Sample(_text_with_parentheses(document, path), " ".join(names))


def to_dependency(document, path: Path) -> Sample:
    text = ""
    lines = []
    for sentence in document.sentences:
        if _is_parenthetical(sentence):
            continue
        text += sentence.text
        for phrase in sentence.phrases:
            if (parent := phrase.parent) is not None:
                lines.append(f"{phrase.text} -> {parent.text}")
    return Sample(text, "\n".join(lines))


#: The cases upstream reads, in its order, with the name each is written as (ガ２ is written ガ).
PAS_CASES = {"ガ": "ガ", "デ": "デ", "ト": "ト", "ニ": "ニ", "ヘ": "ヘ", "ヲ": "ヲ",
             "カラ": "カラ", "ガ２": "ガ", "マデ": "マデ", "ヨリ": "ヨリ"}


def to_pas(document, path: Path) -> Sample:
    """One line per predicate with at least one in-document argument outside its own bunsetsu:
    `predicate ガ：x ヲ：y` (ガ２ is written ガ)."""
    from rhoknp.cohesion import EndophoraArgument

    lines = []
    for structure in document.pas_list:
        args = ""
        for case, written in PAS_CASES.items():
            for arg in structure.get_arguments(case, relax=False):
                if not isinstance(arg, EndophoraArgument) or arg.phrase == structure.predicate.phrase:
                    continue
                args += f" {written}：{base_phrase_text(arg.base_phrase)}"
        predicate = _trim(structure.predicate.phrase.morphemes, _ANCILLARY, ("助詞", "特殊"))
        if predicate and args:
            lines.append(predicate + args)
    return Sample(_text_with_parentheses(document, path), "\n".join(lines))


def to_coreference(document, path: Path) -> Sample:
    """Mentions of one entity on one line, separated by spaces, over the document without its
    parenthetical sentences (upstream rebuilds the document from the remaining sentences)."""
    filtered = _without_parentheses(document)
    groups: dict[tuple[int, ...], list] = defaultdict(list)
    for bp in filtered.base_phrases:
        if not bp.entities:
            continue
        key = tuple(sorted(entity.eid for entity in bp.entities))
        if bp not in groups[key]:
            groups[key].append(bp)
    lines = [" ".join(base_phrase_text(bp) for bp in sorted(bps, key=lambda bp: bp.global_index))
             for bps in groups.values() if len(bps) >= 2]
    return Sample(filtered.text, "\n".join(lines))


def _without_parentheses(document):
    from rhoknp import Document

    kept = [s for s in document.sentences if not _is_parenthetical(s)]
    if len(kept) == len(document.sentences):
        return document
    with _quiet_rhoknp():
        return Document.from_sentences(kept)


CONVERTERS = {"wiki_reading": to_reading, "wiki_ner": to_ner, "wiki_dependency": to_dependency,
              "wiki_pas": to_pas, "wiki_coreference": to_coreference}


# --- parsing, once per document ----------------------------------------------------------------------------

@contextmanager
def _quiet_rhoknp() -> Iterator[None]:
    """rhoknp logs a warning for every annotation it cannot place (hundreds on WAC); they say nothing a user
    can act on, so they are silenced while we read."""
    logger = logging.getLogger("rhoknp")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _knp_error(path: Path, text: str, exc: Exception):
    """The error for a file rhoknp refused (it ends with EOS: parse_knp checked that first), at the line rhoknp
    names when it names one."""
    m = re.match(r"malformed line: (.*)", str(exc), re.S)
    if m:
        bad = m.group(1)
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip() == bad.strip():
                return malformed(path, n, f"not a valid KNP line: {line[:80]!r}")
        return malformed(path, None, f"not valid KNP (malformed line {bad[:80]!r})")
    return malformed(path, None, f"not valid KNP ({type(exc).__name__}: {exc})")


def parse_knp(path: Path):
    """rhoknp Document of a KNP file; a corrupt file raises MalformedDataError naming the file and line."""
    from rhoknp import Document

    text = read_text(path)
    lines = text.rstrip("\n").split("\n")
    if lines[-1].strip() != "EOS":  # rhoknp accepts a file cut at a sentence boundary: a truncated copy
        raise malformed(path, len(lines), "the file does not end with EOS (it looks truncated)")
    try:
        with _quiet_rhoknp():
            return Document.from_knp(text)
    except (ValueError, IndexError, KeyError, AssertionError, AttributeError) as e:
        raise _knp_error(path, text, e) from None


def doc_samples(path: Path) -> dict[str, Sample]:
    """All five tasks' samples of one document, from a single parse."""
    document = parse_knp(path)
    return {name: CONVERTERS[name](document, path) for name in TASKS}


def _worker(path_str: str):
    # Returns plain data (or the error's message and hint): exceptions with hints do not survive pickling.
    from jleval.errors import JlevalError

    try:
        return path_str, doc_samples(Path(path_str)), None
    except JlevalError as e:
        return path_str, None, (type(e).__name__, e.message, e.hint)


_CACHE: dict[tuple[str, int, int], dict[str, Sample]] = {}
_PARALLEL_MIN = 64  # below this many documents, worker start-up costs more than it saves


def _key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def corpus_samples(paths: list[Path], workers: int | None = None) -> dict[Path, dict[str, Sample]]:
    """doc_samples for every path, from the cache where the file is unchanged, else parsed (in parallel)."""
    keys = {p: _key(p) for p in paths}
    todo = sorted({str(p) for p in paths if keys[p] not in _CACHE})
    workers = workers if workers is not None else min(len(os.sched_getaffinity(0)), 8)
    from jleval import errors

    for path_str, samples, err in _parse_all(todo, workers):
        if err is not None:
            kind, message, hint = err
            raise getattr(errors, kind, errors.MalformedDataError)(message, hint)
        _CACHE[keys[Path(path_str)]] = samples
    return {p: _CACHE[keys[p]] for p in paths}


def _parse_all(paths: list[str], workers: int) -> list:
    """_worker's result for every path: in `workers` processes when there are documents enough to pay for
    starting them."""
    if len(paths) < _PARALLEL_MIN or workers <= 1:
        return [_worker(p) for p in paths]
    import multiprocessing

    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return list(pool.map(_worker, paths, chunksize=max(1, len(paths) // (workers * 8))))


# --- splits and converters ---------------------------------------------------------------------------------

def split_documents(raw: RawFiles, split: str) -> list[Path]:
    """The KNP files of an official split, sorted by document id (duplicates once, as upstream's download)."""
    id_file = raw.path(id_path(split))
    knp_root = raw.path(KNP_DIR)
    ids: dict[str, int] = {}
    for n, line in enumerate(read_text(id_file).splitlines(), start=1):
        doc_id = line.strip()
        if not doc_id:
            continue
        if not re.fullmatch(r"wiki\d{8}", doc_id):
            raise malformed(id_file, n, f"not a WAC document id: {doc_id[:40]!r}")
        ids.setdefault(doc_id, n)
    paths = []
    for doc_id in sorted(ids):
        p = knp_root / doc_id[:8] / f"{doc_id}.knp"
        if not p.is_file():
            raise malformed(id_file, ids[doc_id], f"document {doc_id} has no KNP file ({p} is missing)")
        paths.append(p)
    return paths


def _convert(task: str, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    per_split = {split: split_documents(raw, split) for split in splits}
    docs = corpus_samples([p for paths in per_split.values() for p in paths])
    out: Splits = {}
    for split, paths in per_split.items():
        out[split] = [s for s in (docs[p][task] for p in paths) if s.output.strip() != ""]
    return out


def reading(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    return _convert("wiki_reading", raw, splits)


def ner(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    return _convert("wiki_ner", raw, splits)


def dependency(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    return _convert("wiki_dependency", raw, splits)


def pas(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    return _convert("wiki_pas", raw, splits)


def coreference(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    return _convert("wiki_coreference", raw, splits)
