"""Knowledge distillation on Multi30k: teachers side by side, then one student.

    python recipes/multi30k_distilled.py              # en->de, runs/multi30k-distilled-en-de
    python recipes/multi30k_distilled.py --tgt=fr

1. One sentencepiece vocabulary for every run (the teachers decode as an ensemble).
2. --teachers runs of `multi30k.py --preset=best` with seeds 1, 2, ..., side by side for
   --teacher_minutes each, every one pinned to its own core when there are enough.
3. The student: `multi30k.py --preset=best --distil_from=TEACHERS` for --student_minutes.
   The teachers' ensemble translates the training source (nmt/distill.py); the student
   trains on those pairs and the original ones, starting from the weights of the
   teacher with the best dev BLEU (--student_init=teacher) or from scratch, then is
   scored with --pick_on_val.

Each stage is a run dir under --out_dir; the same command resumes an interrupted one.
The student's results.json and table are the recipe's result. Quality is tuned on
val only; the test sets are for reporting.
"""
import json
import os
import subprocess
import sys

from absl import app, flags, logging

from nmt import config as config_lib, corpus as corpus_lib, model_dir as model_dir_lib
from nmt import vocab as vocab_lib
from nmt.cli import common

RECIPES = os.path.dirname(os.path.abspath(__file__))
RECIPE = os.path.join(RECIPES, "multi30k.py")
TRAIN_PREFIX = os.path.join(RECIPES, "..", "data", "multi30k", "train")

FLAGS = flags.FLAGS
flags.DEFINE_string("src", "en", "Source language.")
flags.DEFINE_string("tgt", "de", "Target language.")
flags.DEFINE_string("out_dir", None, "Where the runs go (default runs/multi30k-distilled-SRC-TGT).")
flags.DEFINE_integer("teachers", 2, "Teacher runs, side by side.")
flags.DEFINE_float("teacher_minutes", 60, "Training time of each teacher.")
flags.DEFINE_float("student_minutes", 75, "Training time of the student.")
flags.DEFINE_enum("student_init", "teacher", ["teacher", "scratch"],
                  "The student starts from the weights of the teacher with the best dev "
                  "BLEU, or from random ones.")
flags.DEFINE_float("student_learning_rate", 0.0005, "With --student_init=teacher: the "
                   "student's constant learning rate (about where the teachers' rsqrt decay "
                   "ended).")


def shared_vocab_dir(out_dir, data_config):
    """out_dir/vocab: the sentencepiece model every run copies (trained if missing)."""
    directory = os.path.join(out_dir, "vocab")
    corpus = corpus_lib.read_parallel(corpus_lib.find_corpus_file(TRAIN_PREFIX, FLAGS.src),
                                      corpus_lib.find_corpus_file(TRAIN_PREFIX, FLAGS.tgt))
    vocab_lib.ensure_vocabs(directory, corpus.src, corpus.tgt, data_config.vocab_size,
                            joint=data_config.joint_vocab, model_type=data_config.sp_model_type)
    return directory


def recipe_command(out_dir, *extra):
    return [sys.executable, RECIPE, "--preset=best", f"--src={FLAGS.src}", f"--tgt={FLAGS.tgt}",
            f"--out_dir={out_dir}", *extra]


def pinned_to(core):
    """A preexec_fn that keeps the child process on one CPU core."""
    return lambda: os.sched_setaffinity(0, {core})


def train_teachers(out_dir, vocab_dir, data_config):
    """Runs the teachers side by side; -> their run dirs. A failed one is fatal."""
    cores = sorted(os.sched_getaffinity(0))
    pin = len(cores) >= FLAGS.teachers
    dirs, processes = [], []
    for i in range(FLAGS.teachers):
        teacher_dir = os.path.join(out_dir, f"teacher{i + 1}")
        model_dir_lib.copy_vocabs(vocab_dir, teacher_dir, data_config)
        command = recipe_command(teacher_dir, f"--seed={i + 1}", "--noscore_test_sets",
                                 f"--max_time_minutes={FLAGS.teacher_minutes}")
        log_path = os.path.join(out_dir, f"teacher{i + 1}.log")
        logging.info("teacher %d%s: %s (log %s)", i + 1, f" on core {cores[i]}" if pin else "",
                     " ".join(command), log_path)
        with open(log_path, "a", encoding="utf-8") as log:
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                              preexec_fn=pinned_to(cores[i]) if pin else None))
        dirs.append(teacher_dir)
    failed = [i + 1 for i, p in enumerate(processes) if p.wait() != 0]
    if failed:
        raise model_dir_lib.ModelDirError(
            f"{os.path.join(out_dir, f'teacher{failed[0]}.log')}: teacher {failed[0]} failed "
            f"(its last lines say why); rerun the same command to resume")
    return dirs


def best_dev_bleu(run_dir):
    """The highest dev BLEU in a run's log.jsonl (-1 if it has none)."""
    with open(os.path.join(run_dir, model_dir_lib.LOG_FILE), encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return max((r["bleu"] for r in records if r.get("kind") == "eval"), default=-1.0)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")

    def run():
        out_dir = FLAGS.out_dir or os.path.join("runs", f"multi30k-distilled-{FLAGS.src}-{FLAGS.tgt}")
        data_config = config_lib.DataConfig(src=FLAGS.src, tgt=FLAGS.tgt)
        vocab_dir = shared_vocab_dir(out_dir, data_config)
        teachers = train_teachers(out_dir, vocab_dir, data_config)
        student = recipe_command(os.path.join(out_dir, "student"),
                                 f"--distil_from={','.join(teachers)}", "--pick_on_val",
                                 f"--max_time_minutes={FLAGS.student_minutes}")
        if FLAGS.student_init == "teacher":
            best = max(teachers, key=best_dev_bleu)
            student += [f"--init_from={best}",
                        f"--learning_rate={FLAGS.student_learning_rate}", "--warmup_steps=0",
                        "--decay=none"]
        logging.info("student: %s", " ".join(student))
        sys.exit(subprocess.call(student))

    common.run_main("multi30k_distilled", run)


if __name__ == "__main__":
    app.run(main)
