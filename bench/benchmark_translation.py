"""The benchmark's translation figures: speed after loading and warm, by source length,
and a whole nmt-translate command's wall time and peak memory."""
import dataclasses
import os
import shutil
import subprocess
import sys
import time

import numpy as np

from nmt import model_dir as model_dir_lib
from nmt.data import corpus as corpus_lib
from nmt.data.vocab import EOS_ID
from nmt.decode import metrics
from nmt.decode.translate import Translator

LENGTH_BUCKETS = ((1, 10), (11, 15), (16, 20), (21, 30), (31, 10_000))  # source pieces


def load_translator(model_dir, decode, beam_size):
    """A Translator on model_dir's best (else last) checkpoint with `decode` settings."""
    _, model, src_vocab, tgt_vocab = model_dir_lib.load(model_dir, "best")
    decode = dataclasses.replace(decode, beam_size=beam_size, num_hypotheses=1)
    return Translator(model, src_vocab, tgt_vocab, decode)


def timed_translate(translator, lines):
    """-> (seconds, hypotheses as strings, output pieces EOS excluded)."""
    start = time.perf_counter()
    results = translator.translate(lines)
    seconds = time.perf_counter() - start
    pieces = sum(sum(1 for i in r[0].ids if i != EOS_ID) for r in results)
    return seconds, [r[0].text for r in results], pieces


def run_translation(model_dir, src_path, ref, decode, work_dir, results, label=""):
    """Beam 5 and greedy over the test set (src_path; ref: its references), in process
    (cold, then warm) and as a command; the figures are named `beam5{label}_...` and
    `greedy{label}_...`."""
    src = corpus_lib.read_lines(src_path)
    for mode, beam_size in ((f"beam5{label}", 5), (f"greedy{label}", 1)):
        translator = load_translator(model_dir, decode, beam_size)
        seconds, hyps, pieces = timed_translate(translator, src)  # includes tracing
        warm_seconds, _, _ = timed_translate(translator, src)
        results.update({f"{mode}_s": seconds, f"{mode}_sentences_per_s": len(src) / seconds,
                        f"{mode}_tokens_per_s": pieces / seconds,
                        f"{mode}_warm_sentences_per_s": len(src) / warm_seconds,
                        f"{mode}_warm_tokens_per_s": pieces / warm_seconds,
                        f"{mode}_mean_output_pieces": pieces / len(src),
                        f"{mode}_bleu": metrics.score(hyps, ref).bleu})
        command_s, rss_mb = time_command(model_dir, src_path, beam_size, decode, work_dir)
        results.update({f"{mode}_command_s": command_s, f"{mode}_command_rss_mb": rss_mb})
        if mode == "beam5" and not label:
            results["translate_by_length"] = translation_by_length(translator, src)


def translation_by_length(translator, src):
    """Warm beam search per source-length bucket -> rows of lines, lengths, speed."""
    lengths = [len(x) for x in translator.src_vocab.encode(src)]
    rows = []
    for low, high in LENGTH_BUCKETS:
        lines = [s for s, n in zip(src, lengths) if low <= n <= high]
        if not lines:
            continue
        seconds, _, pieces = timed_translate(translator, lines)
        rows.append({"src_pieces": f"{low}-{high}" if high < 10_000 else f">={low}",
                     "lines": len(lines), "mean_src_pieces": float(np.mean(
                         [n for n in lengths if low <= n <= high])),
                     "mean_output_pieces": pieces / len(lines), "seconds": seconds,
                     "sentences_per_s": len(lines) / seconds,
                     "ms_per_sentence": 1000 * seconds / len(lines)})
    return rows


def time_command(model_dir, src_path, beam_size, decode, work_dir):
    """Wall time and peak RSS (MiB) of a whole nmt-translate run on src_path.

    The RSS comes from GNU time, as in the peer harness: a child forked from this big
    process would report this process's RSS as its own peak.
    """
    command = shutil.which("nmt-translate")
    stats = os.path.join(work_dir, "command.time")
    argv = ["/usr/bin/time", "-o", stats, "-f", "%M"] + (
        [command] if command else [sys.executable, "-m", "nmt.cli.translate"]) + [
        f"--model_dir={model_dir}", f"--input={src_path}",
        f"--output={os.path.join(work_dir, f'command.beam{beam_size}.txt')}",
        f"--beam_size={beam_size}", f"--length_penalty={decode.length_penalty}",
        f"--decode_batch_size={decode.batch_size}", f"--decode_precision={decode.decode_precision}"]
    with open(os.path.join(work_dir, "command.log"), "ab") as log:
        start = time.perf_counter()
        run = subprocess.run(argv, stdout=log, stderr=log)
        seconds = time.perf_counter() - start
    if run.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({run.returncode}); see {log.name}")
    with open(stats) as f:
        return seconds, int(f.read().split()[-1]) / 1024
