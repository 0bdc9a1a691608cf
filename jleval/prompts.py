"""Prompt rendering: templates in prompts/ + few-shots (the first N train samples) -> the text a model sees.

The default template reproduces llm-jp-eval v1.4.1's Alpaca-JA prompt byte for byte. The chat template and
the BOS policy are applied by the backend (they belong to the tokenizer); this module decides the messages.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jleval import defaults
from jleval.errors import MissingRawFileError, UsageError
from jleval.fsutil import sha256_text
from jleval.resources import prompts_dir
from jleval.tasks import TaskSpec

BUILTIN_TEMPLATES = {
    "v1.4.1": ("llm-jp-eval-v1.4.1.j2", "llm-jp-eval-v1.4.1.j2"),
    "v2": ("llm-jp-eval-v2-ja.j2", "llm-jp-eval-v2-en.j2"),
}


@dataclass(frozen=True)
class Template:
    name: str
    sources: tuple[str, str]  # (ja, en) template text

    @property
    def sha256(self) -> str:
        return sha256_text("\0".join(self.sources))[:16]


@functools.cache
def load_template(name_or_path: str = defaults.TEMPLATE) -> Template:
    if name_or_path in BUILTIN_TEMPLATES:
        ja, en = BUILTIN_TEMPLATES[name_or_path]
        d = prompts_dir()
        return Template(name_or_path, ((d / ja).read_text(encoding="utf-8"), (d / en).read_text(encoding="utf-8")))
    path = Path(name_or_path)
    if not path.is_file():
        raise UsageError(f"template {name_or_path!r} is neither a built-in ({', '.join(BUILTIN_TEMPLATES)}) nor a file",
                         "pass --template v1.4.1, --template v2 or the path of a Jinja2 file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"template {path} is not UTF-8 text", "save the template file as UTF-8") from None
    return Template(str(path), (text, text))


@functools.cache
def _compiled(source: str):
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    try:
        tree = env.parse(source)
    except jinja2.TemplateSyntaxError as e:
        raise UsageError(f"prompt template has a syntax error at line {e.lineno}: {e.message}") from None
    other = next(tree.find_all((jinja2.nodes.Include, jinja2.nodes.Import, jinja2.nodes.FromImport,
                                jinja2.nodes.Extends)), None)
    if other is not None:
        raise UsageError(f"prompt template line {other.lineno}: a template cannot include, import or extend other "
                         "files", "put the whole prompt in one template file")
    return env.from_string(source)


def render(template: Template, spec: TaskSpec, few_shots: Sequence[dict], input_text: str,
           answer_pattern: str = "") -> str:
    """Render one prompt. Built-in templates end with "### 応答:" + newline, as upstream."""
    import jinja2

    source = template.sources[1 if spec.language == "en" else 0]
    try:
        return _compiled(source).render(instruction=spec.instruction, few_shots=list(few_shots), input=input_text,
                                        answer_pattern=answer_pattern)
    except jinja2.UndefinedError as e:
        raise UsageError(f"prompt template {template.name}: {e.message}",
                         "templates may use instruction, few_shots, input and answer_pattern") from None
    except UsageError as e:  # refused while compiling (a syntax error, an include): already one line and one fix
        raise UsageError(f"{template.name}: {e.message}", e.hint) from None
    except Exception as e:  # noqa: BLE001 - the user's template raised while rendering ({{ 1/0 }}, a filter on the wrong type...)
        raise UsageError(f"prompt template {template.name} failed while rendering: {type(e).__name__}: {e}",
                         "fix the template (it is rendered once per sample with instruction, few_shots, input "
                         "and answer_pattern)") from None


def load_eval_set(data_dir: Path, version: str, split: str, task: str) -> dict[str, Any]:
    path = Path(data_dir) / version / "evaluation" / split / f"{task}.json"
    if not path.is_file():
        raise MissingRawFileError(f"evaluation set {path} does not exist",
                                  f"run `jleval preprocess --tasks {task}` (with --raw-dir DIR offline) first")
    return json.loads(path.read_text(encoding="utf-8"))


def few_shots_for(data_dir: Path, version: str, spec: TaskSpec, n: int) -> list[dict]:
    """The first n samples of the task's train split, as upstream (the same shots for every item)."""
    n = spec.few_shots(n)
    if n == 0:
        return []
    if "train" not in spec.splits:
        raise UsageError(f"{spec.name} has no train split to take {n} few-shots from",
                         "pass --num-few-shots 0, or give the task a train split"
                         + (' (train = "FILE.jsonl" under [files])' if spec.files else ""))
    train = load_eval_set(data_dir, version, "train", spec.name)["samples"]
    if len(train) < n:
        raise UsageError(f"{spec.name}: the train split has {len(train)} samples, fewer than the {n} few-shots asked",
                         f"pass --num-few-shots {len(train)} or fewer")
    return train[:n]


def messages_for(prompt: str, system_prompt: str | None) -> tuple[tuple[str, str], ...]:
    """Chat mode: the rendered prompt becomes the user turn (as llm-jp-eval v2's inference does)."""
    msgs = [("system", system_prompt)] if system_prompt else []
    return tuple(msgs + [("user", prompt)])


def dump_record(spec: TaskSpec, template: Template, samples: Sequence[dict], prompts: Sequence[str],
                max_num_samples: int, config: dict[str, Any]) -> dict[str, Any]:
    """Upstream's `<task>.eval-prompt.json` dump format (llm-jp-eval v1.4.x scripts/dump_prompts.py)."""
    return {
        "target_dataset": spec.name,
        "output_length": spec.output_length,
        "max_num_samples": max_num_samples,
        "metrics": list(spec.metrics),
        "instruction": spec.instruction,
        "prompt_template": template.sources[1 if spec.language == "en" else 0],
        "answer_extract_pattern": "",
        "label_list": list(spec.label_list),
        "samples": [{"input": s["input"], "prompt": p, "gold": s["output"]} for s, p in zip(samples, prompts)],
        "config": config,
    }
