"""Checking a parallel training corpus before training: nothing lost silently.

`ParallelScan(src_path, tgt_path, max_line_chars, max_line_bytes)` streams both
files once, side by side (nmt.data.corpus.iter_raw_lines), yielding the pairs fit for
training; its `report` then lists every problem found, each with a count and the
first few line numbers. `check_parallel` does the same and keeps the pairs in
memory: it returns a `Checked(report, corpus)` (corpus None when a problem is
fatal). Memory stays flat however long the files are.

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
  over_bytes     more than max_line_bytes bytes (DataConfig.max_line_bytes): cut at
                 read time, before decoding, and never held whole in memory
Lengths in sentencepiece pieces are filtered later (data.encode_corpus).
"""
import collections
import itertools
import os
import re
from typing import Iterator, List, Optional, Tuple

from absl import logging

from nmt.data import corpus as corpus_lib

NUM_EXAMPLES = 5  # line numbers shown per problem

SAME_FILE, BINARY, INVALID_UTF8, LINE_COUNTS, EMPTY_CORPUS = (
    "same_file", "binary", "invalid_utf8", "line_counts", "empty_corpus")
EMPTY, WHITESPACE, TOO_LONG, CONTROL, OVER_BYTES = (
    "empty", "whitespace", "too_long", "control", "over_bytes")
FATAL = (SAME_FILE, BINARY, INVALID_UTF8, LINE_COUNTS, EMPTY_CORPUS)
RECOVERABLE = (EMPTY, WHITESPACE, TOO_LONG, CONTROL, OVER_BYTES)
_LABELS = {EMPTY: "empty lines", WHITESPACE: "whitespace-only lines",
           TOO_LONG: "over-long lines", CONTROL: "lines with control characters",
           OVER_BYTES: "lines over the byte limit"}
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
        self.num_lines = 0

    def add(self, kind, number, detail=""):
        self.counts[kind] += 1
        if len(self.lines[kind]) < NUM_EXAMPLES:
            self.lines[kind].append(number)
        self.details.setdefault(kind, detail)

    def problems(self, path, kinds):
        return [Problem(k, path, self.counts[k], tuple(self.lines[k]), self.details[k])
                for k in kinds if self.counts[k]]


def _fast_texts(block: List[bytes], max_len: int) -> Optional[List[str]]:
    """The texts of a block of lines when none is binary, invalid UTF-8, over max_len
    bytes or has control characters (the common case, checked on the block at once);
    else None."""
    if max(map(len, block)) > max_len:
        return None
    joined = b"\n".join(block)
    if b"\0" in joined:
        return None
    try:
        text = joined.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if _CONTROL.search(text) else text.split("\n")


def _checked_lines(path: str, max_line_chars: int, max_line_bytes: Optional[int],
                   tally: _Tally) -> Iterator[Optional[str]]:
    """Streams one file: per line its text, "" when it is skipped as empty or
    whitespace-only, None when skipped for another reason; problems go to `tally`."""
    fast_limit = min(max_line_chars, max_line_bytes or max_line_chars)  # bytes >= chars
    number = 0
    for block in corpus_lib.iter_raw_blocks(path, max_line_bytes):
        texts = _fast_texts(block, fast_limit)
        if texts is None:
            for line in block:
                number += 1
                yield _check_line(line, number, max_line_chars, max_line_bytes, tally)
            continue
        for text in texts:
            number += 1
            if text and not text.isspace():
                yield text
            else:
                tally.add(EMPTY if not text else WHITESPACE, number)
                yield ""
    tally.num_lines = number


def _check_line(line: bytes, number: int, max_line_chars: int, max_line_bytes: Optional[int],
                tally: _Tally) -> Optional[str]:
    """One line's text, "" (skipped: empty or whitespace) or None (skipped: other)."""
    if max_line_bytes is not None and len(line) > max_line_bytes:
        tally.add(OVER_BYTES, number, f" (over {max_line_bytes} bytes, cut unread)")
        return None
    if b"\0" in line:
        tally.add(BINARY, number)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        tally.add(INVALID_UTF8, number, f"byte 0x{line[e.start]:02x} at column {e.start + 1}")
        text = line.decode("utf-8", errors="replace")
    if not text or text.isspace():
        tally.add(EMPTY if not text else WHITESPACE, number)
        return ""
    if len(text) > max_line_chars:
        tally.add(TOO_LONG, number, f" (over {max_line_chars} characters)")
        return None
    if _CONTROL.search(text):
        tally.add(CONTROL, number)
        return None
    return text


class ParallelScan:
    """One streaming pass over a sentence-aligned pair of files (see the module
    docstring). Iterating yields the kept pairs as (line number, src, tgt); after it,
    `report` is the `Report` and `skipped_empty` counts the pairs with an empty side.
    Nothing but the current lines is held."""

    def __init__(self, src_path: str, tgt_path: str, max_line_chars: int,
                 max_line_bytes: Optional[int] = None):
        self.src_path, self.tgt_path = src_path, tgt_path
        self.max_line_chars, self.max_line_bytes = max_line_chars, max_line_bytes
        self.report, self.skipped_empty = None, 0

    def __iter__(self) -> Iterator[Tuple[int, str, str]]:
        src_path, tgt_path = self.src_path, self.tgt_path
        pair = f"{src_path} / {tgt_path}"
        if os.path.samefile(src_path, tgt_path):
            detail = f"{src_path} and {tgt_path} are the same file; give two languages"
            self.report = Report(src_path, tgt_path, 0, 0,
                                 [Problem(SAME_FILE, pair, 1, (), detail)])
            return
        tallies = _Tally(), _Tally()
        src_lines, tgt_lines = (_checked_lines(path, self.max_line_chars, self.max_line_bytes, t)
                                for path, t in zip((src_path, tgt_path), tallies))
        kept = empty = 0
        for number, (s, t) in enumerate(itertools.zip_longest(src_lines, tgt_lines,
                                                              fillvalue=_END), start=1):
            if s and t and s is not _END and t is not _END:
                kept += 1
                yield number, s, t
            elif s == "" or t == "":
                empty += 1
        self.skipped_empty = empty
        self.report = _report(src_path, tgt_path, tallies, kept)


_END = object()  # zip_longest's fill after the shorter file's end


def _report(src_path, tgt_path, tallies, kept) -> Report:
    """The Report of a finished scan: each file's problems, then the pair-level ones."""
    (src_tally, tgt_tally), pair = tallies, f"{src_path} / {tgt_path}"
    num_src, num_tgt = src_tally.num_lines, tgt_tally.num_lines
    problems = []
    for kinds in ((BINARY, INVALID_UTF8), RECOVERABLE):
        problems += src_tally.problems(src_path, kinds) + tgt_tally.problems(tgt_path, kinds)
    if num_src != num_tgt:
        kept = 0
        problems.append(Problem(LINE_COUNTS, pair, 1, (), (
            f"line counts differ: {src_path} has {num_src} lines, "
            f"{tgt_path} has {num_tgt} lines")))
    for path, num_lines in ((src_path, num_src), (tgt_path, num_tgt)):
        if not num_lines:
            problems.append(Problem(EMPTY_CORPUS, path, 1, (), f"{path}: empty file, no lines"))
    if num_src and num_src == num_tgt and not kept:
        problems.append(Problem(EMPTY_CORPUS, pair, 1, (), (
            f"{pair}: no sentence pairs left to train on (all {num_src} were skipped)")))
    report = Report(src_path, tgt_path, num_src, kept, problems)
    return report if report.ok else report._replace(num_kept=0)


def check_parallel(src_path: str, tgt_path: str, max_line_chars: int,
                   max_line_bytes: Optional[int] = None) -> Checked:
    """Reads and checks a sentence-aligned pair of files (see the module docstring);
    the kept pairs are held in memory (`ParallelScan` streams them instead)."""
    scan = ParallelScan(src_path, tgt_path, max_line_chars, max_line_bytes)
    src, tgt, numbers = [], [], []
    for number, s, t in scan:
        numbers.append(number)
        src.append(s)
        tgt.append(t)
    if not scan.report.ok:
        return Checked(scan.report, None)
    return Checked(scan.report, corpus_lib.ParallelCorpus(src, tgt, numbers, scan.skipped_empty))


class MixtureReport(collections.namedtuple("MixtureReport", ["reports"])):
    """The `Report`s of several training corpora, read as one."""
    __slots__ = ()

    problems = property(lambda self: [p for r in self.reports for p in r.problems])
    fatal = property(lambda self: [p for r in self.reports for p in r.fatal])
    ok = property(lambda self: all(r.ok for r in self.reports))
    num_pairs = property(lambda self: sum(r.num_pairs for r in self.reports))
    num_kept = property(lambda self: sum(r.num_kept for r in self.reports))

    def error_message(self) -> str:
        return next(r for r in self.reports if not r.ok).error_message()

    def format(self) -> str:
        return "\n".join(r.format() for r in self.reports)


def training_files(data_config) -> List[Tuple[str, str, float]]:
    """(src_path, tgt_path, weight) of every corpus in DataConfig.train_prefix."""
    d = data_config
    return [(corpus_lib.find_corpus_file(s.prefix, d.src),
             corpus_lib.find_corpus_file(s.prefix, d.tgt), s.weight)
            for s in corpus_lib.parse_train_prefix(d.train_prefix)]


def check_data(data_config, keep_pairs: bool = False) -> Checked:
    """Checks DataConfig's training corpora in one streaming pass each. keep_pairs: the
    Checked's corpus holds their kept pairs (all corpora in order); else it is None."""
    d = data_config
    reports, parts = [], []
    for src_path, tgt_path, _ in training_files(d):
        if keep_pairs:
            report, part = check_parallel(src_path, tgt_path, d.max_line_chars, d.max_line_bytes)
            parts.append(part)
        else:
            scan = ParallelScan(src_path, tgt_path, d.max_line_chars, d.max_line_bytes)
            for _ in scan:
                pass
            report = scan.report
        reports.append(report)
    report = reports[0] if len(reports) == 1 else MixtureReport(reports)
    if not keep_pairs or not report.ok:
        return Checked(report, None)
    if len(parts) == 1:
        return Checked(report, parts[0])
    return Checked(report, corpus_lib.ParallelCorpus(
        *(sum((list(getattr(p, f)) for p in parts), []) for f in ("src", "tgt", "line_numbers")),
        sum(p.skipped_empty for p in parts)))


def log_report(report) -> None:
    """Logs a report (a warning when it found problems); CorpusError (one line) if fatal."""
    log = logging.info if not report.problems else logging.warning
    for line in report.format().splitlines():
        log("%s", line)
    if not report.ok:
        raise corpus_lib.CorpusError(report.error_message())


def load_training_corpus(data_config) -> corpus_lib.ParallelCorpus:
    """The checked training pairs, in memory; logs the report; CorpusError (one line) if
    fatal."""
    report, corpus = check_data(data_config, keep_pairs=True)
    log_report(report)
    return corpus
