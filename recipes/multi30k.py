"""Train a preset on the shipped Multi30k data, then score every shipped set.

    python recipes/multi30k.py                       # default preset, en->de
    python recipes/multi30k.py --preset=tiny         # smoke run, a few minutes
    python recipes/multi30k.py --tgt=fr --dropout=0.2
    python recipes/multi30k.py --distilled           # best en->de: teachers, then a student

The presets are nmt's (nmt/presets.py, as in nmt-train --preset); --config and
any config flag (see --helpfull) override them. This recipe adds the Multi30k
paths, scoring on every shipped set (--pick_on_val: choices on val only) and
the distillation mode: --distilled is a pipeline of `best` runs
(nmt/training/distill_pipeline.py): --teachers runs side by side, whose ensemble
translates the training source for one student; every config flag given is
passed to each run. Quality is tuned on val only; test_2016_flickr is for
reporting.
"""
import os
import subprocess
import sys
import time

from absl import app, flags, logging

from nmt.cli import common  # first: imports TensorFlow without its start-up lines
from nmt import model_dir as model_dir_lib
from nmt.cli import flags as flags_lib
from nmt.decode import score_run
from nmt.decode import tune_decoding
from nmt.model import devices
from nmt.training import distill, distill_pipeline
from nmt.training import distribute, trainer as training

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "multi30k")
DISTILLED_PRESET = "best"  # every stage of --distilled: two teachers and the student

FLAGS = flags.FLAGS
flags_lib.define_model_dir("Model dir (default runs/multi30k-PRESET-SRC-TGT).", required=False)
flags.DEFINE_alias("out_dir", "model_dir")
flags.DEFINE_bool("distilled", False, "Sequence-level knowledge distillation: --teachers "
                  f"{DISTILLED_PRESET} runs side by side, then a {DISTILLED_PRESET} student "
                  "trained on their ensemble's translations of the training source.")
flags.DEFINE_bool("score_test_sets", True, "After training, score the best checkpoint on every "
                  "shipped set (off: training and its val evaluations only, e.g. for ablations).")
flags.DEFINE_bool("pick_on_val", True, "Before scoring, pick the model (the best checkpoint "
                  "or the mean of the last 5) and the length penalty (0.6 or 1.0) on val, and "
                  "score every set with val's pick (nmt.decode.tune_decoding.score_with_val_pick; "
                  "about a minute). Off: score the best checkpoint as it is.")
flags.DEFINE_list("distil_from", [], "Teacher model dirs (several: an ensemble). Sequence-level "
                  "knowledge distillation: they translate the training source into "
                  "MODEL_DIR/distilled/ and this run trains on that (nmt/training/distill.py), "
                  "with the first teacher's vocabulary.")
flags.DEFINE_bool("distil_keep_original", True, "With --distil_from: train on the teachers' "
                  "pairs followed by the original ones (off: the teachers' pairs only).")
flags.DEFINE_integer("teachers", 2, "--distilled: teacher runs, side by side.")
flags.DEFINE_integer("teacher_seed", 1, "--distilled: teacher i (from 0) trains with "
                     "seed teacher_seed + i; --seed is the student's.")
flags.DEFINE_float("teacher_minutes", 60, "--distilled: training time of each teacher.")
flags.DEFINE_float("student_minutes", 75, "--distilled: training time of the student.")
flags.DEFINE_enum("student_init", "teacher", ["teacher", "scratch"], "--distilled: "
                  "the student starts from the weights of the teacher with the best dev "
                  "BLEU, or from random ones.")
flags.DEFINE_float("student_learning_rate", 0.0005, "--distilled with "
                   "--student_init=teacher: the student's constant learning rate (about "
                   "where the teachers' rsqrt decay ended).")
flags_lib.in_section("decode", "score_test_sets", "pick_on_val")
flags_lib.in_section("train", "distilled", "distil_from", "distil_keep_original", "teachers",
                     "teacher_seed", "teacher_minutes", "student_minutes", "student_init",
                     "student_learning_rate")
CONFIG_FLAGS = flags_lib.define_run_config_flags(
    skip={"data.train_prefix", "data.dev_prefix", "data.test_prefix"})
PATHS = {"data.train_prefix": os.path.join(DATA_DIR, "train"),
         "data.dev_prefix": os.path.join(DATA_DIR, "val"),
         "data.test_prefix": os.path.join(DATA_DIR, "test_2016_flickr")}


def recipe_config():
    """The preset, --config and flags (nmt-train's precedence) on the Multi30k paths."""
    return flags_lib.run_config(CONFIG_FLAGS).replace(
        data={key.split(".")[1]: path for key, path in PATHS.items()}).validate()


def stage_command(model_dir, *extra):
    """A `best` run of this recipe in model_dir, with the config flags the user gave."""
    given = [FLAGS[name].serialize() for name in [*CONFIG_FLAGS, "config", "num_layers"]
             if FLAGS[name].value is not None]
    return [sys.executable, os.path.abspath(__file__), f"--preset={DISTILLED_PRESET}", *given,
            f"--model_dir={model_dir}", *extra]


def run_distilled(config, out_dir):
    """--distilled: the teachers side by side, then the student; -> its exit code."""
    vocab_dir = distill_pipeline.shared_vocab_dir(out_dir, config.data.train_prefix, config.data)
    teachers = distill_pipeline.train_teachers(stage_command, out_dir, vocab_dir, config.data,
                                               FLAGS.teachers, FLAGS.teacher_minutes,
                                               FLAGS.teacher_seed)
    student = distill_pipeline.student_command(
        stage_command, os.path.join(out_dir, "student"), teachers, FLAGS.student_minutes,
        FLAGS.student_init, FLAGS.student_learning_rate)
    logging.info("student: %s", " ".join(student))
    return subprocess.call(student)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")

    def run():
        if FLAGS.distilled:
            FLAGS.preset = DISTILLED_PRESET
        config = recipe_config()
        devices.split_cpu(config.train.num_cpu_devices)  # before TensorFlow sets up devices
        preset = "distilled" if FLAGS.distilled else FLAGS.preset
        out_dir = FLAGS.model_dir or os.path.join(
            "runs", f"multi30k-{preset}-{config.data.src}-{config.data.tgt}")
        if FLAGS.distilled and not FLAGS.distil_from:
            sys.exit(run_distilled(config, out_dir))
        start = time.time()
        if FLAGS.distil_from:
            prefix = distill.build_corpus(FLAGS.distil_from, config.data.train_prefix,
                                          config.data.src, config.data.tgt, out_dir,
                                          keep_original=FLAGS.distil_keep_original)
            config = config.replace(data={"train_prefix": prefix})
            model_dir_lib.copy_vocabs(FLAGS.distil_from[0], out_dir, config.data)
        trainer = training.Trainer(config, out_dir)
        trainer.run()
        if not distribute.is_chief(trainer.strategy):  # the chief scores the shared run
            logging.info("not the chief: training done, the chief scores %s", out_dir)
            return
        if trainer.stop_signal is not None:  # interrupted: resumable, not finished
            logging.warning("training interrupted: not scoring; run the same command to resume")
            return
        minutes = (time.time() - start) / 60
        records = model_dir_lib.read_log(out_dir)
        speeds = [r["tokens_per_s"] for r in records if r["kind"] == "train"]
        tokens_per_s = sorted(speeds)[len(speeds) // 2] if speeds else float("nan")
        params = sum(int(v.shape.num_elements()) for v in trainer.model.trainable_variables)
        if not FLAGS.score_test_sets:
            logging.info("--noscore_test_sets: not scoring; val evaluations are in %s",
                         os.path.join(out_dir, model_dir_lib.LOG_FILE))
            return
        if FLAGS.pick_on_val:
            tuned, record, markdown = tune_decoding.score_with_val_pick(out_dir, data_dir=DATA_DIR)
            record["picked_on_val"] = tuned["rows"][tuned["best"]]
        else:
            record, markdown = score_run.score_run_dir(out_dir, "best", data_dir=DATA_DIR)
        result = {"preset": preset, "src": config.data.src, "tgt": config.data.tgt,
                  "train_minutes": minutes, "train_tokens_per_s": tokens_per_s,
                  "parameters": params, "scores": record}
        model_dir_lib.write_json_atomic(os.path.join(out_dir, "results.json"), result)
        logging.info("results in %s", os.path.join(out_dir, "results.json"))
        print(markdown)
        print(f"\ntraining wall time {minutes:.1f} min, {tokens_per_s:.0f} target tokens/s, "
              f"{params / 1e6:.2f} M parameters")

    common.run_main("multi30k", run)


if __name__ == "__main__":
    common.app_run(main, "multi30k.py", __doc__, ("preset", "tgt", "pick_on_val", "distilled"))
