"""Translation speed against the search's settings, side by side in one process.

    python -m bench.bench_decoding --model_dir=runs/multi30k-bench-en-de
    python -m bench.bench_decoding --model_dir=D --beam_sizes=5 --batch_sizes=64,128 --rounds=5

For every beam size, decode batch size (sentences), compaction setting (the
search dropping finished sentences' rows, nmt.decode.search) and decode precision
(`--decode_precision`: fp32, bf16_output, bf16), it builds a Translator on
the model dir's best checkpoint and translates the test set: the first pass
("after loading", tracing included, as bench/benchmark.py counts it; the first
setting also pays the process's one-time warm-up) and then
`--rounds` warm passes. The warm passes of all settings alternate round by
round, so a change in the machine's load hits every setting alike; the table
gives the median of each setting and its ratio to the first setting of its beam
size. Lines that differ from that first setting's output are counted: compaction
must change none; another batch size may change a few, because a matmul over
other rows can round differently; a lower precision changes some. With
--reference, each setting's first-pass output is also scored (cased sacreBLEU);
tune on val (`--source=data/multi30k/val.en.gz --reference=data/multi30k/val.de.gz`).
One Markdown table (or --json, one JSON object) is printed.
"""
import dataclasses
import gzip
import json
import os
import statistics
import time

from absl import app, flags

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DEFAULT_TEST = os.path.join(ROOT, "data", "multi30k", "test_2016_flickr.en.gz")

FLAGS = flags.FLAGS


def define_flags():
    """This tool's flags; importing the module defines none."""
    flags.DEFINE_string("model_dir", None, "Model dir to translate with.")
    flags.DEFINE_string("source", DEFAULT_TEST, "Source lines (plain or .gz).")
    flags.DEFINE_list("beam_sizes", ["5", "1"], "Beam sizes (1: greedy search).")
    flags.DEFINE_list("batch_sizes", ["64"], "Decode batch sizes, in sentences.")
    flags.DEFINE_list("compact", ["true", "false"], "Compaction settings to compare.")
    flags.DEFINE_list("precisions", ["fp32"], "Decode precisions to compare (fp32, "
                      "bf16_output, bf16).")
    flags.DEFINE_string("reference", None, "Reference lines: score each setting's output.")
    flags.DEFINE_integer("rounds", 3, "Warm passes per setting (alternating).")
    flags.DEFINE_boolean("json", False, "Print one JSON object instead of Markdown.")
    flags.mark_flag_as_required("model_dir")


@dataclasses.dataclass(frozen=True)
class Setting:
    beam_size: int
    batch_size: int
    compact: bool
    precision: str = "fp32"

    def name(self):
        return (f"beam {self.beam_size}, batch {self.batch_size}, "
                f"{'compact' if self.compact else 'all rows'}, {self.precision}")


def settings_grid(beam_sizes, batch_sizes, compact, precisions=("fp32",)):
    """Every combination, grouped by beam size; the first of each group is its baseline."""
    return [Setting(int(beam), int(batch), _bool(c), p)
            for beam in beam_sizes for batch in batch_sizes for c in compact for p in precisions]


def _bool(text):
    if text.lower() not in ("true", "false"):
        raise ValueError(f"--compact takes true or false (got {text!r})")
    return text.lower() == "true"


def read_lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def timed(translator, lines):
    start = time.perf_counter()
    out = translator.translate_text(lines)
    return time.perf_counter() - start, out


def measure(translators, lines, rounds, references=None):
    """translators {Setting: Translator} -> {Setting: row dict}, warm passes alternating;
    with references, each row has the first pass's cased BLEU."""
    first, outputs, warm = {}, {}, {s: [] for s in translators}
    for setting, translator in translators.items():
        first[setting], outputs[setting] = timed(translator, lines)
    for _ in range(rounds):
        for setting, translator in translators.items():
            warm[setting].append(timed(translator, lines)[0])
    rows, baselines = {}, {}
    for setting in translators:
        baseline = baselines.setdefault(setting.beam_size, setting)
        median = statistics.median(warm[setting])
        rows[setting] = {
            "setting": setting.name(), **dataclasses.asdict(setting),
            "after_loading_s": first[setting],
            "after_loading_sentences_per_s": len(lines) / first[setting],
            "warm_median_s": median, "warm_s": warm[setting],
            "warm_sentences_per_s": len(lines) / median,
            "warm_speedup_vs_baseline": statistics.median(warm[baseline]) / median,
            "lines_differing_from_baseline": sum(
                a != b for a, b in zip(outputs[setting], outputs[baseline])),
        }
        if references is not None:
            import sacrebleu
            rows[setting]["bleu"] = sacrebleu.corpus_bleu(outputs[setting], [references]).score
    return rows


def markdown(result):
    lines = [f"Model: {result['model_dir']}; {result['lines']} lines of {result['source']}; "
             f"{result['rounds']} warm rounds; load average {result['load_start']:.2f} at start, "
             f"{result['load_end']:.2f} at end.", "",
             "| setting | after loading (sent/s) | warm median (sent/s) | warm × baseline "
             "| lines ≠ baseline | BLEU |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        bleu = f"{r['bleu']:.2f}" if "bleu" in r else "n/a"
        lines.append(f"| {r['setting']} | {r['after_loading_sentences_per_s']:.0f} | "
                     f"{r['warm_sentences_per_s']:.0f} | {r['warm_speedup_vs_baseline']:.2f} | "
                     f"{r['lines_differing_from_baseline']} | {bleu} |")
    return "\n".join(lines)


def main(argv):
    del argv
    from nmt import model_dir as model_dir_lib
    from nmt.decode.translate import Translator

    config, model, src_vocab, tgt_vocab = model_dir_lib.load(FLAGS.model_dir, "best")
    lines = read_lines(FLAGS.source)
    references = read_lines(FLAGS.reference) if FLAGS.reference else None
    grid = settings_grid(FLAGS.beam_sizes, FLAGS.batch_sizes, FLAGS.compact, FLAGS.precisions)
    translators = {
        s: Translator(model, src_vocab, tgt_vocab,
                      dataclasses.replace(config.decode, beam_size=s.beam_size, num_hypotheses=1,
                                          batch_size=s.batch_size, batch_tokens=0,
                                          decode_precision=s.precision),
                      compact=s.compact)
        for s in grid}
    load_start = os.getloadavg()[0]
    rows = measure(translators, lines, FLAGS.rounds, references)
    result = {"model_dir": FLAGS.model_dir, "source": FLAGS.source, "reference": FLAGS.reference,
              "lines": len(lines),
              "rounds": FLAGS.rounds, "load_start": load_start, "load_end": os.getloadavg()[0],
              "rows": list(rows.values())}
    print(json.dumps(result, indent=1) if FLAGS.json else markdown(result))


if __name__ == "__main__":
    define_flags()
    app.run(main)
