"""nmt-train: train (or resume) a model in --out_dir.

    nmt-train --train_prefix=data/multi30k/train --dev_prefix=data/multi30k/val \
        --src=en --tgt=de --out_dir=runs/en-de

Every model flag overrides one field of nmt.config; run with --helpfull for all.
Re-running the same command resumes from the last checkpoint in --out_dir.

--validate_only checks the training corpus (nmt/validation.py), prints the
report and exits: status 0 if it can be trained on, 1 if not. Training runs the
same check first, skips and reports recoverable problems (empty, whitespace-only,
over-long lines, control characters) and stops on fatal ones before anything
is trained.
"""
import sys

from absl import app, flags

from nmt import devices, training, validation
from nmt.cli import common
from nmt.cli.flags import define_config_flags, overrides_from_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", None, "Model dir: config, vocabularies, checkpoints, logs.")
flags.DEFINE_integer("num_layers", None, "Sets both num_encoder_layers and num_decoder_layers.")
CONFIG_FLAGS = define_config_flags(["data", "model", "train", "decode"],
                                   rename={"decode.batch_size": "decode_batch_size",
                                           "decode.batch_tokens": "decode_batch_tokens"})
flags.DEFINE_boolean("validate_only", False,
                     "Check the training corpus, print a report and exit: status 0 if it can be "
                     "trained on, 1 if not (no --out_dir needed).")
flags.register_validator("out_dir", lambda value: value or FLAGS["validate_only"].value,
                         message="--out_dir is required (except with --validate_only)")


def config_from_flags():
    overrides = overrides_from_flags(CONFIG_FLAGS)
    if FLAGS.num_layers is not None:
        overrides.setdefault("model.num_encoder_layers", FLAGS.num_layers)
        overrides.setdefault("model.num_decoder_layers", FLAGS.num_layers)
    return common.build_config(overrides)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    def run():
        config = config_from_flags()
        if FLAGS.validate_only:
            report = validation.check_data(config.data).report
            print(report.format())
            sys.exit(0 if report.ok else 1)
        devices.split_cpu(config.train.num_cpu_devices)  # before TensorFlow sets up devices
        result = training.train(config, FLAGS.out_dir)
        if result is not None:
            print(f"dev BLEU {result.bleu:.2f}, chrF {result.chrf:.2f}, ppl {result.perplexity:.2f}")

    common.run_main("nmt-train", run, user_errors=(training.TrainingError,))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
