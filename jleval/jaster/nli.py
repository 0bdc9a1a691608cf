"""NLI converters: Jamp, JaNLI, JNLI, JSeM, JSICK."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from jleval.jaster.base import (
    RawFiles,
    Sample,
    Splits,
    asked,
    check_label,
    malformed,
    read_text,
    split_8_1_1,
    split_9_1,
    tsv_rows,
)
from jleval.tasks import TaskSpec

JAMP_TRAIN = "jamp/dataset/train_all.tsv"
JAMP_TEST = "jamp/dataset/test_2.tsv"


def _jamp_rows(path, labels: Sequence[str]) -> list[Sample]:
    # columns: num, premise, hypothesis, gold_label, ...; upstream splits on tabs and skips the header
    return [Sample(f"前提：{row[1]}\n仮説：{row[2]}", check_label(labels, row[3], path, n))
            for n, row in tsv_rows(path, min_cols=4)]


def jamp(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    out: Splits = {}
    if "train" in splits or "dev" in splits:
        out["train"], out["dev"] = split_9_1(_jamp_rows(raw.path(JAMP_TRAIN), spec.label_list))
    if "test" in splits:
        out["test"] = _jamp_rows(raw.path(JAMP_TEST), spec.label_list)
    return out


# --- JaNLI -------------------------------------------------------------------------------------------------

JANLI = "janli/janli.tsv"


def janli(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    """JaNLI: rows whose last column (`split`) is "test" are the test split, in file order; every other row
    goes to the train pool, shuffled (seed 42) and cut 90/10 into train/dev. Columns: idx, sentence_A_Ja,
    sentence_B_Ja, entailment_label_Ja, heuristics, number_of_NPs, semtag, split."""
    pool: list[Sample] = []
    test: list[Sample] = []
    path = raw.path(JANLI)
    for n, row in tsv_rows(path, min_cols=4):
        sample = Sample(f"前提：{row[1]}\n仮説：{row[2]}", check_label(spec.label_list, row[3], path, n))
        (test if row[-1].strip() == "test" else pool).append(sample)
    out: Splits = {}
    if "train" in splits or "dev" in splits:
        out["train"], out["dev"] = split_9_1(pool)
    if "test" in splits:
        out["test"] = test
    return out


# --- JSeM --------------------------------------------------------------------------------------------------

#: The 22 JSeM v1.0 files, in upstream's order (the order matters: the pool is shuffled after concatenation).
JSEM_FILES = (
    "Adjectives", "Adverb", "Attitudes", "AuxiliaryVerb", "CaseParticle", "Comparatives", "CompoundAdjective",
    "CompoundVerb", "Conditional", "Conjunction", "Coordination", "Ellipsis", "GeneralizedQuantifier",
    "Modality", "NP", "NewAdjective", "NominalAnaphora", "Plurals", "Question", "TemporalReference",
    "Toritate", "Verbs",
)
#: Answers upstream leaves out: acceptability judgements, not inference labels (and the 11 empty ones).
JSEM_DROPPED = frozenset({"", "infelicitous", "unacceptable", "weakacceptable"})


def jsem_path(name: str) -> str:
    return f"jsem/data/v1.0/{name}.xml"


def parse_xml(path: Path) -> ET.Element:
    """The root of an XML file; a parse error names the file and the line. External DTDs are not loaded."""
    try:
        return ET.fromstring(read_text(path))
    except ET.ParseError as e:
        raise malformed(path, e.position[0], f"not well-formed XML ({str(e).split(':')[0]})") from None


def _script(elem: ET.Element | None, path: Path, where: str) -> str:
    # upstream reads the files with xmltodict, which strips surrounding whitespace from text
    node = elem.find("script") if elem is not None else None
    if node is None:
        raise malformed(path, None, f"{where} has no <script>")
    return (node.text or "").strip()


def _jsem_rows(path: Path, labels: Sequence[str]) -> list[Sample]:
    root = parse_xml(path)
    if root.tag != "jsem-dataset":
        raise malformed(path, None, f"expected a <jsem-dataset> root element, found <{root.tag}>")
    samples = []
    for problem in root.findall("problem"):
        where = f"problem jsem_id={problem.get('jsem_id')!r}"
        if "answer" not in problem.attrib:
            raise malformed(path, None, f"{where} has no answer attribute")
        answer = problem.get("answer", "")
        if answer in JSEM_DROPPED:
            continue
        premises = problem.findall("p")
        if not premises:
            raise malformed(path, None, f"{where} has no premise <p>")
        premise = "".join(_script(p, path, where) for p in premises)
        hypothesis = _script(problem.find("h"), path, where)
        label = check_label(labels, answer, path, None, f"{where}: ")
        samples.append(Sample(f"前提：{premise}\n仮説：{hypothesis}", label))
    return samples


def jsem(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    """JSeM: the problems of the 22 files (upstream's file order), answers in JSEM_DROPPED left out, premises
    (several <p>) concatenated; one pool shuffled (seed 42) and cut 80/10/10."""
    pool = [s for name in JSEM_FILES for s in _jsem_rows(raw.path(jsem_path(name)), spec.label_list)]
    train, dev, test = split_8_1_1(pool)
    return asked({"train": train, "dev": dev, "test": test}, splits)


# --- JSICK -------------------------------------------------------------------------------------------------

JSICK_TRAIN = "jsick/jsick/train.tsv"
JSICK_TEST = "jsick/jsick/test.tsv"


def _jsick_rows(path: Path, labels: Sequence[str]) -> list[Sample]:
    # columns 8, 9, 10: sentence_A_Ja, sentence_B_Ja, entailment_label_Ja
    return [Sample(f"前提：{row[8]}\n仮説：{row[9]}", check_label(labels, row[10], path, n))
            for n, row in tsv_rows(path, min_cols=11)]


def jsick(spec: TaskSpec, raw: RawFiles, splits: tuple[str, ...]) -> Splits:
    """JSICK: train.tsv shuffled (seed 42) and cut 90/10 into train/dev; test.tsv in file order."""
    out: Splits = {}
    if "train" in splits or "dev" in splits:
        out["train"], out["dev"] = split_9_1(_jsick_rows(raw.path(JSICK_TRAIN), spec.label_list))
    if "test" in splits:
        out["test"] = _jsick_rows(raw.path(JSICK_TEST), spec.label_list)
    return out
