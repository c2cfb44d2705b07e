"""A run's log, DIR/log.jsonl: one JSON record per progress line and evaluation.

The trainer appends to it; `read_log` is the one reader (nmt-plot, reports, the
distillation recipe); `trim_log` drops the records that a resumed run writes again.
"""
import json
import os

from nmt import files
from nmt.errors import LogError  # noqa: F401  (raised here, importable from here)
from nmt.run_dir import LOG_FILE

def trim_log(model_dir, last_step):
    """Drops log.jsonl records of steps after last_step: a run killed after its last
    checkpoint logged steps that the resumed run does again. A torn line goes too."""
    path = os.path.join(model_dir, LOG_FILE)
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("step", 0) <= last_step:
            kept.append(line if line.endswith("\n") else line + "\n")
    if kept != lines:
        with files.atomic_open(path) as f:
            f.writelines(kept)


def read_log(run_dir):
    """The records of DIR/log.jsonl, in order. A last line without its newline (a record
    being written, or torn by a kill) is skipped; any other line that is not a JSON
    record is a LogError naming the file and line."""
    path = os.path.join(run_dir, LOG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no training log (train first)")
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines) and not line.endswith("\n"):
                break
            raise LogError(f"{path}:{number}: not a JSON record") from None
    return records
