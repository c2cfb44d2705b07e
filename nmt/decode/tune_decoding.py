"""Decoding settings compared on a run's dev set only (nmt-tune-decoding).

Every combination of beam size, GNMT length penalty, coverage penalty and,
optionally, minimum Bayes risk reranking (nmt.decode.mbr; beams of 2 or more) is scored
on the dev set (sacreBLEU cased BLEU, lower-cased BLEU, chrF), for the
--checkpoint model and, with --average_last=K,..., for the mean of the last K
checkpoints in RUN_DIR/ckpt (nmt.training.average_checkpoints.average_model; a K larger than the
number of checkpoints is skipped and said so). Test sets are never read.

Each distinct search runs once: settings that give the same translations by
construction share one (greedy search ignores the length penalty, see
nmt.model.seq2seq.uses_greedy_search; a model whose weights equal an earlier one's is
not decoded again); their rows say which row they copy.

Writes a Markdown and a JSON table (default RUN_DIR/tuning.md and
RUN_DIR/tuning.json, both whole or not at all). The best setting is the row
with the highest cased BLEU (the first such row on a tie).

`score_with_val_pick` (nmt-score-run --pick_on_val, recipes/multi30k.py) scores every
shipped set with that row's model and setting, so the reported test figures
come from choices made on val alone; a mean of checkpoints is first written
out as a model dir of its own, RUN_DIR/averaged, that nmt-translate can load.
"""
import dataclasses
import datetime
import hashlib
import itertools
import os

from absl import logging

from nmt import model_dir as model_dir_lib
from nmt import run_dir as run_dir_lib
from nmt.decode import score_run
from nmt.decode.translate import Translator
from nmt.model.seq2seq import uses_greedy_search
from nmt.model_dir import ModelDirError
from nmt.training import average_checkpoints


def weights_fingerprint(model):
    """A digest of the model's trainable weights: equal digests, equal translations."""
    digest = hashlib.sha1()
    for v in model.trainable_variables:
        digest.update(v.numpy().tobytes())
    return digest.hexdigest()


def model_variants(run_dir, checkpoint, average_last):
    """Yields (label, k, model, checkpoint paths) for the --checkpoint model (k None), then
    the mean of each last k; also (label, k, None, reason) for a k that cannot be averaged."""
    path = model_dir_lib.checkpoint_path(run_dir, checkpoint)
    _, model, _, _ = model_dir_lib.load(run_dir, path)
    yield f"{checkpoint} ({_short(path)})", None, model, [path]
    for k in average_last:
        try:
            _, model, _, _, paths = average_checkpoints.average_model(run_dir, k)
        except ModelDirError as e:
            yield f"mean of last {k}", k, None, str(e)
            continue
        names = ", ".join(os.path.basename(p) for p in paths)
        yield f"mean of last {k} ({names})", k, model, paths


def _short(path):
    """ckpt/ckpt-3000 for RUN_DIR/ckpt/ckpt-3000."""
    return os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))


def grid(beam_sizes, length_penalties, coverage_penalties, mbr=(False,)):
    """Every (beam_size, length_penalty, coverage_penalty, mbr), beams varying slowest;
    mbr=True only with beams of 2 or more (it picks among the beam's hypotheses)."""
    return [combo for combo in itertools.product(beam_sizes, length_penalties,
                                                 coverage_penalties, mbr)
            if not (combo[3] and combo[0] < 2)]


def search_key(fingerprint, beam_size, length_penalty, coverage_penalty, mbr=False):
    """Settings with equal keys give equal translations (greedy ignores length_penalty)."""
    if uses_greedy_search(beam_size, 1, coverage_penalty):
        length_penalty = None
    return fingerprint, beam_size, length_penalty, coverage_penalty, mbr


def tune(run_dir, checkpoint="best", data_dir=None, beam_sizes=(1, 5, 10),
         length_penalties=(0.0, 0.6, 1.0), coverage_penalties=(0.0, 0.2), average_last=(),
         output_md=None, output_json=None, mbr=(False,)):
    """Scores every setting on the dev set; writes both tables. -> (record, markdown)"""
    config = model_dir_lib.load_config(run_dir)
    src_vocab, tgt_vocab = model_dir_lib.load_vocabs(run_dir, config)
    dev = score_run.dev_set(score_run.resolve_data_dir(run_dir, config.data, data_dir), config.data)
    rows, skipped, done = [], [], {}  # done: search key -> index of the row that ran it
    for label, k, model, paths in model_variants(run_dir, checkpoint, average_last):
        if model is None:
            skipped.append(f"{label}: {paths}")
            continue
        fingerprint = weights_fingerprint(model)
        for beam, alpha, beta, rerank in grid(beam_sizes, length_penalties,
                                              coverage_penalties, mbr):
            row = {"model": label, "average_last": k, "checkpoints": paths, "beam_size": beam,
                   "length_penalty": alpha, "coverage_penalty": beta, "mbr": rerank}
            key = search_key(fingerprint, beam, alpha, beta, rerank)
            if key in done:
                source = rows[done[key]]
                row.update({k: source[k] for k in ("bleu", "bleu_lc", "chrf")},
                           translate_seconds=None, same_as=done[key])
            else:
                decode = config.replace(decode=dict(
                    beam_size=beam, length_penalty=alpha, coverage_penalty=beta,
                    num_hypotheses=1, mbr=rerank)).validate().decode
                result = score_run.translate_and_score(
                    Translator(model, src_vocab, tgt_vocab, decode), dev)
                row.update({k: getattr(result.scores, k) for k in ("bleu", "bleu_lc", "chrf")},
                           translate_seconds=round(result.seconds, 2), same_as=None)
                done[key] = len(rows)
                signatures = {k: v for k, v in result.scores._asdict().items()
                              if k.endswith("_signature")}
                logging.info("%s beam %d lp %g cp %g%s: BLEU %.2f (%.1f s)", label, beam,
                             alpha, beta, " MBR" if rerank else "", result.scores.bleu,
                             result.seconds)
            rows.append(row)
    if not rows:
        raise ModelDirError(f"{run_dir}: nothing to tune ({'; '.join(skipped)})")
    best = max(range(len(rows)), key=lambda i: (rows[i]["bleu"], -i))
    record = {"run_dir": os.path.abspath(run_dir), "checkpoint": checkpoint,
              "dev_set": dev.name,
              "dev_src": os.path.abspath(dev.src_path), "dev_ref": os.path.abspath(dev.ref_path),
              "run_decode": dataclasses.asdict(config.decode),
              "date": datetime.date.today().isoformat(), "signatures": signatures,
              "rows": rows, "best": best, "skipped": skipped}
    markdown = format_markdown(record)
    score_run.write_tables(markdown, record,
                           output_md or os.path.join(run_dir, run_dir_lib.TUNING_MD),
                           output_json or os.path.join(run_dir, run_dir_lib.TUNING_JSON))
    return record, markdown


AVERAGED_DIR = run_dir_lib.AVERAGED_DIR


def score_with_val_pick(run_dir, data_dir=None, length_penalties=(0.6, 1.0),
                        average_last=(5,), mbr=(False,)):
    """Tunes the length penalty, the model (RUN_DIR/best or the mean of the last k
    checkpoints) and, with mbr=(False, True), MBR reranking on the dev set at the run's
    beam size and coverage penalty, then scores
    every shipped set with the dev set's pick (report.score_run_dir), writing
    RUN_DIR/scores.{md,json} and RUN_DIR/scores/. -> (tune record, score record, markdown)"""
    decode = model_dir_lib.load_config(run_dir).decode
    tuned, _ = tune(run_dir, "best", data_dir, beam_sizes=[decode.beam_size],
                    length_penalties=length_penalties,
                    coverage_penalties=[decode.coverage_penalty], average_last=average_last,
                    mbr=mbr)
    pick = tuned["rows"][tuned["best"]]
    model_dir, checkpoint = run_dir, "best"
    if pick["average_last"] is not None:
        model_dir, checkpoint = os.path.join(run_dir, AVERAGED_DIR), "latest"
        average_checkpoints.average_checkpoints(run_dir, pick["average_last"], model_dir)
    record, markdown = score_run.score_run_dir(
        model_dir, checkpoint, data_dir,
        {"beam_size": pick["beam_size"], "length_penalty": pick["length_penalty"],
         "coverage_penalty": pick["coverage_penalty"], "mbr": pick["mbr"]},
        output_md=os.path.join(run_dir, run_dir_lib.SCORES_MD),
        output_json=os.path.join(run_dir, run_dir_lib.SCORES_JSON),
        hyp_dir=os.path.join(run_dir, run_dir_lib.SCORES_DIR))
    note = (f"Picked on {tuned['dev_set']} only (RUN_DIR/tuning.md, row {tuned['best']}): "
            f"{pick['model']}, length penalty {pick['length_penalty']}"
            f"{', MBR' if pick['mbr'] else ''}.")
    return tuned, record, note + "\n\n" + markdown


def format_markdown(record):
    """The Markdown report of a tune record: the table, the best row, signatures."""
    table = [[i, r["model"], r["beam_size"], r["length_penalty"], r["coverage_penalty"],
              "yes" if r.get("mbr") else "no",
              *(f"{r[key]:.2f}" for _, key in score_run.SCORE_COLUMNS),
              f"{r['translate_seconds']:.1f}" if r["same_as"] is None
              else f"same search as row {r['same_as']}"]
             for i, r in enumerate(record["rows"])]
    best = record["rows"][record["best"]]
    d = record["run_decode"]
    return "\n".join([
        f"Decoding settings on `{record['dev_set']}` (the dev set) of `{record['run_dir']}`, "
        f"{record['date']}",
        "",
        score_run.markdown_table(
            ["row", "model", "beam", "length penalty", "coverage penalty", "MBR",
             *(name for name, _ in score_run.SCORE_COLUMNS), "translate s"], table),
        "",
        f"Best (highest cased BLEU): row {record['best']}: {best['model']}, beam "
        f"{best['beam_size']}, length penalty {best['length_penalty']}, coverage penalty "
        f"{best['coverage_penalty']}{', MBR' if best.get('mbr') else ''}: "
        f"BLEU {best['bleu']:.2f} (cased), {best['bleu_lc']:.2f} "
        f"(lower-cased), chrF {best['chrf']:.2f}.",
        f"The run's own setting: beam {d['beam_size']}, length penalty {d['length_penalty']}, "
        f"coverage penalty {d['coverage_penalty']}.",
        *(f"Skipped: {s}" for s in record["skipped"]),
        "",
        "sacreBLEU signatures:",
        *score_run.signature_lines(record["signatures"]),
    ])
