"""A model's scores on the parallel sets a data dir ships, written as Markdown and JSON.

The sets are found on disk (nmt.data.corpus.find_parallel_sets): every `NAME.SRC[.gz]`
with a `NAME.TGT[.gz]`, except the training set. The set the run used as its dev
set (DataConfig.dev_prefix, else "val") has the role "dev": choices may be made
on it. Every other set has the role "test": for reporting only.

Scores are nmt.decode.metrics's (sacreBLEU cased BLEU, lower-cased BLEU, chrF), each
with its signature. `score_run_dir` (nmt-score-run) translates every set with
a run dir's model, writes the hypotheses (DIR/scores/NAME.TGT.hyp), a Markdown
and a JSON table (DIR/scores.md, DIR/scores.json); every file is written whole
or not at all.
"""
import collections
import dataclasses
import datetime
import json
import os
import time

from absl import logging

from nmt import config as config_lib, model_dir as model_dir_lib
from nmt import run_dir as run_dir_lib
from nmt.data import corpus, textio
from nmt.decode import metrics
from nmt.decode.translate import Translator

DEV, TEST = "dev", "test"
DEFAULT_DEV_NAME = "val"
DEFAULT_TRAIN_NAME = "train"

# name: the file prefix's base name; role: DEV or TEST; src_path, ref_path: the two sides.
EvalSet = collections.namedtuple("EvalSet", ["name", "role", "src_path", "ref_path"])

# One translated and scored set: hypotheses (one per source line), nmt.decode.metrics.Scores,
# the source sentence count and the seconds translation took.
SetResult = collections.namedtuple("SetResult", ["hypotheses", "scores", "sentences", "seconds"])

SCORE_COLUMNS = (("BLEU (cased)", "bleu"), ("BLEU (lower-cased)", "bleu_lc"), ("chrF", "chrf"))


def data_dir_of(data_config):
    """The directory of the run's dev (else test, else train) prefix; "" if it has none."""
    for prefix in (data_config.dev_prefix, data_config.test_prefix, data_config.train_prefix):
        if prefix:
            return os.path.dirname(os.path.abspath(prefix))
    return ""


def resolve_data_dir(run_dir, data_config, data_dir=None):
    """data_dir if given, else the run's (`data_dir_of`); a one-line error if missing."""
    data_dir = data_dir or data_dir_of(data_config)
    if not data_dir:
        raise corpus.CorpusError(f"{run_dir}/config.json names no data prefixes: "
                                 f"give --data_dir")
    if not os.path.isdir(data_dir):
        raise corpus.CorpusError(f"{data_dir}: the run's data dir is missing: give --data_dir")
    return data_dir


def eval_sets(data_dir, data_config):
    """Every parallel set in data_dir for the run's direction except its training set:
    the dev set first, then the test sets by name. -> [EvalSet]"""
    dev_name = os.path.basename(data_config.dev_prefix) or DEFAULT_DEV_NAME
    train_names = {DEFAULT_TRAIN_NAME, os.path.basename(data_config.train_prefix)}
    found = corpus.find_parallel_sets(data_dir, data_config.src, data_config.tgt)
    sets = [EvalSet(name, DEV if name == dev_name else TEST, src, ref)
            for name, (src, ref) in found.items() if name not in train_names]
    if not sets:
        raise corpus.CorpusError(f"{data_dir}: no {data_config.src}-{data_config.tgt} sets "
                                 f"besides training (NAME.{data_config.src}[.gz] with "
                                 f"NAME.{data_config.tgt}[.gz])")
    return sorted(sets, key=lambda s: (s.role != DEV, s.name))


def dev_set(data_dir, data_config):
    """The dev EvalSet in data_dir; a CorpusError if there is none."""
    for eval_set in eval_sets(data_dir, data_config):
        if eval_set.role == DEV:
            return eval_set
    name = os.path.basename(data_config.dev_prefix) or DEFAULT_DEV_NAME
    raise corpus.CorpusError(f"{data_dir}: no dev set {name}.{data_config.src}[.gz] with "
                             f"{name}.{data_config.tgt}[.gz]")


def translate_and_score(translator, eval_set):
    """Translates eval_set's source with an nmt.decode.translate.Translator and scores the best
    hypotheses against its references. -> SetResult"""
    src = corpus.read_lines(eval_set.src_path, on_bad_utf8=corpus.REPLACE)
    refs = corpus.read_lines(eval_set.ref_path, on_bad_utf8=corpus.REPLACE)
    if len(src) != len(refs):
        raise corpus.CorpusError(f"{eval_set.src_path} has {len(src)} lines but "
                                 f"{eval_set.ref_path} has {len(refs)}")
    start = time.time()
    hypotheses = [textio.one_line(t) for t in translator.translate_text(src)]
    seconds = time.time() - start
    return SetResult(hypotheses, metrics.score(hypotheses, refs), len(src), seconds)


def markdown_table(headers, rows):
    """A Markdown table: headers is a list of strings, rows lists of cell strings."""
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def signature_lines(signatures):
    """Markdown lines naming the sacreBLEU signature of each score column."""
    return [f"- BLEU (cased): `{signatures['bleu_signature']}`",
            f"- BLEU (lower-cased): `{signatures['bleu_lc_signature']}`",
            f"- chrF (cased): `{signatures['chrf_signature']}`"]


def write_tables(markdown, record, md_path, json_path):
    """Writes markdown to md_path and record as JSON to json_path, each to a temporary
    file renamed over the old one; both are complete before either is renamed, so an
    error (e.g. a NaN score, which JSON cannot hold) leaves the old files as they were."""
    text = json.dumps(record, indent=2, sort_keys=False, allow_nan=False) + "\n"
    with textio.atomic_output(json_path) as json_out, textio.atomic_output(md_path) as md_out:
        md_out.write(markdown.rstrip("\n") + "\n")
        json_out.write(text)


def score_run_dir(run_dir, checkpoint="best", data_dir=None, decode_overrides=None,
              output_md=None, output_json=None, hyp_dir=None):
    """decode_overrides: {"beam_size": 10, ...} (None values keep the run's).
    Translates and scores every shipped set (see the module docstring); writes the
    hypotheses and both tables. -> (record, markdown)"""
    path = model_dir_lib.checkpoint_path(run_dir, checkpoint)
    config, model, src_vocab, tgt_vocab = model_dir_lib.load(run_dir, path)
    overrides = {f"decode.{k}": v for k, v in (decode_overrides or {}).items() if v is not None}
    config = config_lib.override(config, overrides).validate()
    data_dir = resolve_data_dir(run_dir, config.data, data_dir)
    sets = eval_sets(data_dir, config.data)
    hyp_dir = hyp_dir or os.path.join(run_dir, run_dir_lib.SCORES_DIR)
    os.makedirs(hyp_dir, exist_ok=True)
    translator = Translator(model, src_vocab, tgt_vocab, config.decode)
    entries = []
    for eval_set in sets:
        result = translate_and_score(translator, eval_set)
        hyp_path = os.path.join(hyp_dir, f"{eval_set.name}.{config.data.tgt}.hyp")
        with textio.atomic_output(hyp_path) as out:
            out.writelines(h + "\n" for h in result.hypotheses)
        logging.info("%s: BLEU %.2f (%d sentences, %.1f s)", eval_set.name,
                     result.scores.bleu, result.sentences, result.seconds)
        entries.append({"name": eval_set.name, "role": eval_set.role,
                        "src": os.path.abspath(eval_set.src_path),
                        "ref": os.path.abspath(eval_set.ref_path),
                        "hypotheses": os.path.abspath(hyp_path),
                        "sentences": result.sentences, **result.scores._asdict(),
                        "translate_seconds": round(result.seconds, 2)})
    record = {"run_dir": os.path.abspath(run_dir), "checkpoint": path,
              "data_dir": os.path.abspath(data_dir), "src": config.data.src,
              "tgt": config.data.tgt, "decode": dataclasses.asdict(config.decode),
              "date": datetime.date.today().isoformat(), "sets": entries}
    markdown = format_run_scores(record)
    write_tables(markdown, record,
                 output_md or os.path.join(run_dir, run_dir_lib.SCORES_MD),
                 output_json or os.path.join(run_dir, run_dir_lib.SCORES_JSON))
    return record, markdown


def format_run_scores(record):
    """The Markdown report of a score_run record: settings, table, signatures."""
    d = record["decode"]
    rows = [[e["name"], e["role"], e["sentences"],
             *(f"{e[key]:.2f}" for _, key in SCORE_COLUMNS)] for e in record["sets"]]
    first = record["sets"][0]
    return "\n".join([
        f"Scores of `{record['run_dir']}` ({record['src']}->{record['tgt']}), "
        f"{record['date']}",
        "",
        f"- checkpoint: `{record['checkpoint']}`",
        f"- decoding: beam {d['beam_size']}, length penalty {d['length_penalty']}, "
        f"coverage penalty {d['coverage_penalty']}"
        f"{', MBR reranking of the beam' if d.get('mbr') else ''}",
        f"- data: `{record['data_dir']}`; role dev = the run's dev set (tune on it), "
        f"test = report only",
        "",
        markdown_table(["set", "role", "sentences", *(name for name, _ in SCORE_COLUMNS)],
                       rows),
        "",
        "sacreBLEU signatures (BLEU cased and lower-cased, chrF cased):",
        *signature_lines(first),
    ])
