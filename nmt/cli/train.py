r"""nmt-train: train (or resume) a model in --model_dir.

    nmt-train --train_prefix=data/train --dev_prefix=data/dev --src=en --tgt=es \
        --preset=default --model_dir=runs/en-es

Reads DATA.SRC and DATA.TGT (plain or .gz; line N of each is one pair). The
config is built as: defaults < --preset (default: default) < --config JSON file
< flags; every config flag overrides one field of nmt.config. absl's
--flagfile=FILE reads flags from a file, one per line. Re-running the same
command resumes from the last checkpoint in --model_dir; --checkpoint=PATH resumes
from an older checkpoint of the run instead (a damaged newest one names it).

--validate_only checks the training corpus (nmt/data/validation.py), prints the
report and exits: status 0 if it can be trained on, 1 if not. Training runs the
same check first, skips and reports recoverable problems (empty, whitespace-only,
over-long lines, control characters) and stops on fatal ones before anything
is trained.
"""
import sys

from absl import app, flags

from nmt.cli import common
from nmt.cli import flags as flags_lib
from nmt.data import validation

FLAGS = flags.FLAGS
flags_lib.define_model_dir("Model dir to write (or resume): config.json, vocabularies, "
                           "checkpoints, log.jsonl; needed except with --validate_only.",
                           required=False)
flags.DEFINE_alias("out_dir", "model_dir")
flags_lib.define_checkpoint(training=True)
CONFIG_FLAGS = flags_lib.define_run_config_flags()
flags.DEFINE_boolean("validate_only", False,
                     "Check the training corpus, print a report and exit: status 0 if it can be "
                     "trained on, 1 if not (no --model_dir needed).")
flags_lib.in_section("data", "validate_only")
flags_lib.in_section("general", "out_dir")
flags.register_validator("model_dir", lambda value: value or FLAGS["validate_only"].value,
                         message="--model_dir is required (except with --validate_only)")
MAIN_FLAGS = ("train_prefix", "dev_prefix", "test_prefix", "src", "tgt", "vocab_size",
              "validate_only", "num_units", "num_layers", "encoder_type", "attention",
              "batch_size", "learning_rate", "num_train_steps", "max_time_minutes",
              "steps_per_eval", "beam_size", "length_penalty")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.validate_only:  # text alone: no TensorFlow
        common.run_main("nmt-train", validate_only)
    from nmt.training import trainer

    def train():
        from nmt.model import devices
        config = flags_lib.run_config(CONFIG_FLAGS)
        devices.split_cpu(config.train.num_cpu_devices)  # before TensorFlow sets up devices
        result = trainer.train(config, FLAGS.model_dir, FLAGS.checkpoint)
        if result is not None:
            print(f"dev BLEU {result.bleu:.2f}, chrF {result.chrf:.2f}, "
                  f"ppl {result.perplexity:.2f}")

    common.run_main("nmt-train", train, user_errors=(trainer.TrainingError,))


def validate_only():
    """Checks the training corpus, prints the report, exits 0 if it can be trained on."""
    report = validation.check_data(flags_lib.run_config(CONFIG_FLAGS).data).report
    print(report.format())
    sys.exit(0 if report.ok else 1)


def run():
    common.app_run(main, "nmt-train", __doc__, MAIN_FLAGS)


if __name__ == "__main__":
    run()
