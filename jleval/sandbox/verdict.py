"""From what the fork server saw to a verdict: status and one-line reason (parent side, pure).

The server (`_server.py`) only isolates and supervises. For each program it reports the facts: whether it stopped
the program itself (`stopped`: "timeout" at the wall clock, "output" at the output cap), the supervisor's exit code
(`exit`: 128 + n for a signal n, None when lost), the first line the harness wrote on its result pipe (`record`),
the captured output, the time, and how the memory limit was shared out (`memory_split`). `decide` turns them into
one of STATUSES, and applies llm-jp-eval's pylint rule to pylint's text output.
"""
from __future__ import annotations

import json
import signal

from jleval.sandbox._server import _HARNESS_ERROR

#: why the server stopped a program -> (status, reason with the limits filled in)
_STOPPED = {"timeout": ("timeout", "wall-clock limit of {timeout_s} s exceeded"),
            "output": ("killed", "output exceeded {output_bytes} bytes")}
#: what the harness's JSON record says went wrong -> (status, reason with {stage}, {detail} and {memory} filled in)
_RECORD_VERDICTS = {"failed": ("failed", "assertion failed in {stage}: {detail}"),
                    "memory": ("memory", "memory limit of {memory} hit in {stage}"),
                    "exit": ("error", "{stage} called exit ({detail}) before the tests finished")}
_OTHER_RECORD = ("error", "{stage}: {detail}")


def pylint_rule(text: str) -> tuple[bool, list[str]]:
    """llm-jp-eval's pylint_check rule on pylint's text output: drop the "***** Module" line and the trailing
    empty string, then fail if the second whitespace token of any non-blank line contains "E"; a line with a
    single token raises there (upstream's try), which also fails. Returns (valid, the message ids)."""
    lines = text.split("\n")[1:-1]
    try:
        valid = not any("E" in line.split()[1] for line in lines if line.split())
    except IndexError:
        valid = False
    msg_ids = [line.split()[1].rstrip(":") for line in lines if len(line.split()) > 1 and ": " in line]
    return valid, msg_ids


def decide(req: dict, facts: dict) -> dict:
    """{status, reason, elapsed_s, output, output_bytes[, pylint]} for one request and the server's facts."""
    base = {"elapsed_s": round(facts["elapsed_s"], 4), "output": facts["output"], "output_bytes": facts["output_bytes"]}
    return {**base, **(_stopped(req["limits"], facts.get("stopped")) or _harness_report(req, facts)
                       or _exit_verdict(req["limits"], facts))}


def _stopped(lim: dict, stopped: str | None) -> dict | None:
    if stopped not in _STOPPED:
        return None
    status, reason = _STOPPED[stopped]
    return {"status": status, "reason": reason.format(**lim)}


def _harness_report(req: dict, facts: dict) -> dict | None:
    """The verdict the harness's record gives: a pass (with the nonce), pylint's output, or a JSON record."""
    first, code, nonce = facts["record"].split("\n", 1)[0], facts["exit"], req["nonce"]
    if first.startswith("{"):
        return _record_verdict(first, code, req["limits"], facts.get("memory_split"))
    if code != 0:  # a pass or pylint's output counts only from a program that then exited cleanly
        return None
    if first.startswith(f"PASS {nonce} "):
        return _pass_count(int(first.split()[2]), len(req.get("tests", ())))
    if first.startswith(f"PYLINT {nonce} "):
        try:
            return _pylint_verdict(json.loads(first.split(" ", 2)[2])["output"])
        except (ValueError, KeyError, TypeError):  # cut at the record cap
            return {"status": "error", "reason": "pylint's output was too large to read"}
    return None


def _pass_count(ran: int, expected: int) -> dict:
    if ran == expected:
        return {"status": "passed", "reason": f"all {ran} tests passed"}
    return {"status": "error", "reason": f"only {ran} of {expected} tests ran"}


def _pylint_verdict(text: str) -> dict:
    valid, msg_ids = pylint_rule(text)
    info = {"valid": valid, "messages": msg_ids, "output": text[:4000]}
    if valid:
        status, reason = "passed", "no error-level message"
    else:
        status, reason = "failed", "pylint reported: " + ", ".join(m for m in msg_ids if "E" in m)[:300]
    return {"status": status, "reason": reason, "pylint": info}


def _record_verdict(first: str, code: int | None, lim: dict, split: list | None) -> dict | None:
    try:
        rec = json.loads(first)
    except ValueError:
        return None
    if not isinstance(rec, dict):
        return None
    if code == _HARNESS_ERROR and rec.get("stage") == "sandbox setup":
        return {"status": "killed", "reason": f"the sandbox could not set the program up: {rec.get('detail', '?')}"}
    if code != 1:
        return None
    kind, stage, detail = (str(rec.get(k, "?")) for k in ("kind", "stage", "detail"))
    status, template = _RECORD_VERDICTS.get(kind, _OTHER_RECORD)
    reason = template.format(stage=stage, detail=detail, memory=f"{lim['memory_mb']} MiB{_split_note(lim, split)}")
    return {"status": status, "reason": reason.rstrip(": ") if kind == "failed" else reason}  # (a bare assert: no ": ")


def _split_note(lim: dict, split: list | None) -> str:
    if not split or split[1] >= int(lim["memory_mb"]):
        return ""
    return f" ({split[1]} MiB for each of up to {split[0]} processes)"


def _exit_verdict(lim: dict, facts: dict) -> dict:
    """The verdict from how the program ended, when the harness said nothing that decides it."""
    code = facts["exit"]
    if code is None:
        return {"status": "killed", "reason": "the sandbox lost track of the program"}
    if code == _HARNESS_ERROR + 1 and not facts["record"]:
        return {"status": "killed", "reason": "the sandbox could not set up the program's isolation "
                "(namespaces, mounts or the temp dir); the program did not run"}
    if code > 128:
        return _signal_verdict(code - 128, lim, facts["elapsed_s"])
    if code < 0:
        return {"status": "killed", "reason": f"killed by signal {-code}"}
    if code == 0:
        return {"status": "error", "reason": "the program exited before the tests finished"}
    return {"status": "error", "reason": f"the program exited with status {code} before the tests finished"}


def _signal_verdict(sig: int, lim: dict, elapsed: float) -> dict:
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and elapsed >= float(lim["cpu_s"])):
        return {"status": "timeout", "reason": f"CPU-time limit of {lim['cpu_s']} s exceeded"}
    if sig == signal.SIGXFSZ:
        return {"status": "killed", "reason": f"file-size limit of {lim['fsize_mb']} MiB exceeded"}
    name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
    return {"status": "killed", "reason": f"killed by {name}"}
