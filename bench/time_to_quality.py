"""Test BLEU against minutes of training, from checkpoints kept during a run.

    python -m bench.time_to_quality --run=en-de:RUN_DIR:KEPT_CKPT_DIR \
        --minutes=5,10,20,40,60 --output=docs/time-to-quality.png

A run's checkpoint manager keeps only the newest few; KEPT_CKPT_DIR holds copies of
every checkpoint taken as they appeared (CKPT_DIR itself works for a short run).
For each minute mark the last checkpoint saved by then is scored on the run's test
set with the run's decoding settings; its step's elapsed time comes from the run's
log. Prints a Markdown table and draws one line per run.

--points=FILE adds runs scored elsewhere, in the same JSON form as --output_json
writes: the peers' curves from bench/peer_time_to_quality.
"""
import glob
import json
import os
import re

from absl import app, flags

from nmt.cli import common  # noqa: F401  (first: imports TensorFlow quietly)
from nmt import model_dir as model_dir_lib
from nmt.decode import score_run as report
from nmt.decode.translate import Translator
from nmt.run_log import read_log

FLAGS = flags.FLAGS


def define_flags():
    """The script's flags; defined when it runs, so that tests can import it."""
    flags.DEFINE_multi_string("run", [], "LABEL:RUN_DIR[:CKPT_DIR] (CKPT_DIR: where every "
                              "checkpoint of the run was kept; default RUN_DIR/ckpt).")
    flags.DEFINE_list("minutes", ["5", "10", "20", "40", "60"], "Minute marks to score.")
    flags.DEFINE_string("test_set", "test_2016_flickr", "The set scored, by name in the run's "
                        "data dir.")
    flags.DEFINE_string("data_dir", None, "Where the sets are, if not where the run's config "
                        "says (a run trained from a checkout since moved).")
    flags.DEFINE_multi_string("points", [], "JSON points of more runs, as --output_json "
                              "writes them (bench/peer_time_to_quality writes the peers').")
    flags.DEFINE_string("output", None, "Picture (PNG) of BLEU against minutes.")
    flags.DEFINE_string("output_json", None, "The points as JSON.")


def checkpoint_steps(ckpt_dir):
    """{step: checkpoint path prefix} of every ckpt-STEP.index in ckpt_dir."""
    found = {}
    for index in glob.glob(os.path.join(ckpt_dir, "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
        if match:
            found[int(match.group(1))] = index[:-len(".index")]
    return found


def elapsed_minutes(run_dir):
    """{step: minutes of training at that step} from the run's training records."""
    return {r["step"]: r["elapsed_s"] / 60 for r in read_log(run_dir)
            if r["kind"] == "train"}


def checkpoints_at(marks, steps, minutes_at):
    """For each minute mark, (mark, step, minutes) of the last checkpoint saved by then."""
    timed = sorted((minutes_at[s], s) for s in steps if s in minutes_at)
    picked = []
    for mark in marks:
        before = [(m, s) for m, s in timed if m <= mark + 1e-9]
        if before:
            picked.append((mark, before[-1][1], before[-1][0]))
    return picked


def score_checkpoint(run_dir, path, test_set, data_dir=None):
    """Cased BLEU of the checkpoint at path on the run's set named test_set."""
    config, model, src_vocab, tgt_vocab = model_dir_lib.load(run_dir, path)
    data_dir = report.resolve_data_dir(run_dir, config.data, data_dir)
    sets = [s for s in report.eval_sets(data_dir, config.data) if s.name == test_set]
    if not sets:
        raise app.UsageError(f"--test_set={test_set}: no such set in {data_dir}")
    translator = Translator(model, src_vocab, tgt_vocab, config.decode)
    return report.translate_and_score(translator, sets[0]).scores.bleu


def run_points(label, run_dir, ckpt_dir, marks, test_set, data_dir=None):
    """[{run, mark, step, minutes, bleu}] for one run: one point per checkpoint, at the
    first mark that takes it."""
    steps = checkpoint_steps(ckpt_dir)
    points, scored = [], set()
    for mark, step, minutes in checkpoints_at(marks, steps, elapsed_minutes(run_dir)):
        if step in scored:
            continue
        scored.add(step)
        bleu = score_checkpoint(run_dir, steps[step], test_set, data_dir)
        print(f"{label}: {mark:g} min -> step {step} ({minutes:.1f} min): BLEU {bleu:.2f}",
              flush=True)
        points.append({"run": label, "mark": mark, "step": step,
                       "minutes": round(minutes, 2), "bleu": round(bleu, 2)})
    return points


def draw(points, output, test_set):
    """One line of BLEU against minutes per run, to an image."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    fig, axis = plt.subplots(figsize=(7, 4.2))
    for label in dict.fromkeys(p["run"] for p in points):
        mine = [p for p in points if p["run"] == label]
        axis.plot([p["minutes"] for p in mine], [p["bleu"] for p in mine], "o-", label=label)
    axis.set_xlabel("minutes of training")
    axis.set_ylabel(f"{test_set} BLEU (cased)")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)


def main(argv):
    del argv
    marks = [float(m) for m in FLAGS.minutes]
    points = []
    for spec in FLAGS.run:
        label, run_dir, *rest = spec.split(":")
        points += run_points(label, run_dir, rest[0] if rest else
                             os.path.join(run_dir, "ckpt"), marks, FLAGS.test_set,
                             FLAGS.data_dir)
    for path in FLAGS.points:
        with open(path) as f:
            points += json.load(f)
    print(report.markdown_table(["run", "minutes", "step", "test BLEU"],
                                [[p["run"], p["minutes"], p["step"], p["bleu"]]
                                 for p in points]))
    if FLAGS.output_json:
        with open(FLAGS.output_json, "w") as out:
            json.dump(points, out, indent=1)
    if FLAGS.output:
        draw(points, FLAGS.output, FLAGS.test_set)


if __name__ == "__main__":
    define_flags()
    app.run(main)
