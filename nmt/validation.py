"""Checking a parallel training corpus before training: nothing lost silently.

`check_parallel(src_path, tgt_path, max_line_chars)` reads both files once
(nmt.corpus) and returns a `Checked(report, corpus)`: a `Report` of every
problem found, each with a count and the first few line numbers, and the
pairs fit for training (None when a fatal problem was found).

Fatal problems (training cannot start; `load_training_corpus` raises a
one-line CorpusError, `nmt-train --validate_only` exits with status 1):
  same_file      the source and target paths are one file (os.path.samefile)
  binary         NUL bytes: not a text file
  invalid_utf8   bytes that are not UTF-8 (training never guesses an encoding)
  line_counts    the two files have different numbers of lines
  empty_corpus   a file without lines, or no pair left after skipping
Recoverable problems (the whole pair is skipped and counted):
  empty          an empty line
  whitespace     a line of whitespace only
  too_long       more than max_line_chars characters (DataConfig.max_line_chars)
  control        control characters: C0 except tab, DEL, C1 (e.g. "\\x1b[31m")
Lengths in sentencepiece pieces are filtered later (data.encode_corpus).
"""
import collections
import os
import re
from typing import List

from absl import logging

from nmt import corpus as corpus_lib

NUM_EXAMPLES = 5  # line numbers shown per problem

SAME_FILE, BINARY, INVALID_UTF8, LINE_COUNTS, EMPTY_CORPUS = (
    "same_file", "binary", "invalid_utf8", "line_counts", "empty_corpus")
EMPTY, WHITESPACE, TOO_LONG, CONTROL = "empty", "whitespace", "too_long", "control"
FATAL = (SAME_FILE, BINARY, INVALID_UTF8, LINE_COUNTS, EMPTY_CORPUS)
RECOVERABLE = (EMPTY, WHITESPACE, TOO_LONG, CONTROL)
_LABELS = {EMPTY: "empty lines", WHITESPACE: "whitespace-only lines",
           TOO_LONG: "over-long lines", CONTROL: "lines with control characters"}
_CONTROL = re.compile("[\x01-\x08\x0b-\x1f\x7f-\x9f]")  # NUL counts as binary, tab is fine

# One kind of problem in one file (path is "SRC / TGT" for pair-level ones).
#   count:   lines (or pairs) affected; lines: the first NUM_EXAMPLES line numbers, 1-based
#   detail:  more about the first occurrence, e.g. "byte 0xe9 at column 3"
Problem = collections.namedtuple("Problem", ["kind", "path", "count", "lines", "detail"])


def describe(problem: Problem) -> str:
    """One line naming the file, the problem, how often and where."""
    p = problem
    where = ", ".join(map(str, p.lines)) + (", ..." if p.count > len(p.lines) else "")
    if p.kind in RECOVERABLE:
        return f"{p.path}: {_LABELS[p.kind]}{p.detail}: {p.count} (lines {where})"
    if p.kind == INVALID_UTF8:
        return (f"{p.path}:{p.lines[0]}: invalid UTF-8 ({p.detail}); "
                f"lines with invalid UTF-8: {p.count} (lines {where})")
    if p.kind == BINARY:
        return f"{p.path}: not a text file: lines with NUL bytes: {p.count} (lines {where})"
    return p.detail  # same_file, line_counts, empty_corpus: the detail says it all


class Report(collections.namedtuple("Report", ["src_path", "tgt_path", "num_pairs",
                                               "num_kept", "problems"])):
    """What `check_parallel` found.

    num_pairs: lines per file (of the source when the counts differ);
    num_kept: pairs fit for training (0 when there is a fatal problem).
    """
    __slots__ = ()

    @property
    def fatal(self) -> List[Problem]:
        return [p for p in self.problems if p.kind in FATAL]

    @property
    def ok(self) -> bool:
        """Whether training can start on this corpus."""
        return not self.fatal

    def error_message(self) -> str:
        """The first fatal problem as one line (and how many more there are)."""
        fatal = self.fatal
        more = f" (and {len(fatal) - 1} more fatal problems)" if len(fatal) > 1 else ""
        return describe(fatal[0]) + more

    def format(self) -> str:
        """The report for people, several lines."""
        out = [f"corpus check: {self.src_path} / {self.tgt_path}: {self.num_pairs} pairs"]
        for p in self.problems:
            out.append(f"  {'FATAL' if p.kind in FATAL else 'skipped'}: {describe(p)}")
        if self.ok:
            out.append(f"  trainable: {self.num_kept} pairs kept, "
                       f"{self.num_pairs - self.num_kept} skipped")
        else:
            out.append(f"  NOT trainable: {len(self.fatal)} fatal problem(s)")
        return "\n".join(out)


# check_parallel's result: the report and, when it is ok, the kept pairs.
Checked = collections.namedtuple("Checked", ["report", "corpus"])


class _Tally:
    """Counts and first line numbers per kind for one file, bounded in memory."""

    def __init__(self):
        self.counts = collections.Counter()
        self.lines = collections.defaultdict(list)
        self.details = {}

    def add(self, kind, number, detail=""):
        self.counts[kind] += 1
        if len(self.lines[kind]) < NUM_EXAMPLES:
            self.lines[kind].append(number)
        self.details.setdefault(kind, detail)

    def problems(self, path, kinds):
        return [Problem(k, path, self.counts[k], tuple(self.lines[k]), self.details[k])
                for k in kinds if self.counts[k]]


def _scan(path: str, max_line_chars: int):
    """-> (decoded lines, bytearray of 1 per line to skip, _Tally) of one file."""
    tally, texts = _Tally(), []
    raw = corpus_lib.read_raw_lines(path)
    skip = bytearray(len(raw))
    for i, line in enumerate(raw):
        number = i + 1
        if b"\0" in line:
            tally.add(BINARY, number)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            tally.add(INVALID_UTF8, number,
                      f"byte 0x{line[e.start]:02x} at column {e.start + 1}")
            text = line.decode("utf-8", errors="replace")
        kind = None
        if not text:
            kind = EMPTY
        elif not text.strip():
            kind = WHITESPACE
        elif len(text) > max_line_chars:
            kind = TOO_LONG
        elif _CONTROL.search(text):
            kind = CONTROL
        if kind:
            tally.add(kind, number, f" (over {max_line_chars} characters)"
                      if kind == TOO_LONG else "")
            skip[i] = 1
        texts.append(text)
    return texts, skip, tally


def check_parallel(src_path: str, tgt_path: str, max_line_chars: int) -> Checked:
    """Reads and checks a sentence-aligned pair of files (see the module docstring)."""
    if os.path.samefile(src_path, tgt_path):
        detail = f"{src_path} and {tgt_path} are the same file; give two languages"
        problem = Problem(SAME_FILE, f"{src_path} / {tgt_path}", 1, (), detail)
        return Checked(Report(src_path, tgt_path, 0, 0, [problem]), None)
    src, src_skip, src_tally = _scan(src_path, max_line_chars)
    tgt, tgt_skip, tgt_tally = _scan(tgt_path, max_line_chars)
    problems = []
    for kinds in ((BINARY, INVALID_UTF8), RECOVERABLE):
        problems += src_tally.problems(src_path, kinds) + tgt_tally.problems(tgt_path, kinds)
    pair = f"{src_path} / {tgt_path}"
    if len(src) != len(tgt):
        problems.append(Problem(LINE_COUNTS, pair, 1, (), (
            f"line counts differ: {src_path} has {len(src)} lines, "
            f"{tgt_path} has {len(tgt)} lines")))
    kept = corpus_lib.ParallelCorpus([], [], [], 0)
    if len(src) == len(tgt):
        kept = _kept_pairs(src, tgt, src_skip, tgt_skip)
    for path, lines in ((src_path, src), (tgt_path, tgt)):
        if not lines:
            problems.append(Problem(EMPTY_CORPUS, path, 1, (), f"{path}: empty file, no lines"))
    if src and len(src) == len(tgt) and not kept.src:
        problems.append(Problem(EMPTY_CORPUS, pair, 1, (), (
            f"{pair}: no sentence pairs left to train on (all {len(src)} were skipped)")))
    report = Report(src_path, tgt_path, len(src), len(kept.src), problems)
    if not report.ok:
        return Checked(report._replace(num_kept=0), None)
    return Checked(report, kept)


def _kept_pairs(src, tgt, src_skip, tgt_skip) -> corpus_lib.ParallelCorpus:
    """The pairs where neither side is skipped; skipped_empty counts the pairs with an
    empty or whitespace-only side."""
    keep_src, keep_tgt, numbers, empty = [], [], [], 0
    for i, (s, t) in enumerate(zip(src, tgt)):
        if src_skip[i] or tgt_skip[i]:
            empty += not (s.strip() and t.strip())
            continue
        keep_src.append(s)
        keep_tgt.append(t)
        numbers.append(i + 1)
    return corpus_lib.ParallelCorpus(keep_src, keep_tgt, numbers, empty)


def check_data(data_config) -> Checked:
    """check_parallel on DataConfig's training files (train_prefix.src, train_prefix.tgt)."""
    d = data_config
    return check_parallel(corpus_lib.find_corpus_file(d.train_prefix, d.src),
                          corpus_lib.find_corpus_file(d.train_prefix, d.tgt), d.max_line_chars)


def load_training_corpus(data_config) -> corpus_lib.ParallelCorpus:
    """The checked training pairs; logs the report; CorpusError (one line) if fatal."""
    report, corpus = check_data(data_config)
    log = logging.info if not report.problems else logging.warning
    for line in report.format().splitlines():
        log("%s", line)
    if not report.ok:
        raise corpus_lib.CorpusError(report.error_message())
    return corpus

