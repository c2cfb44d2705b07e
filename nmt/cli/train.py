"""nmt-train: train (or resume) a model in --out_dir.

    nmt-train --train_prefix=data/multi30k/train --dev_prefix=data/multi30k/val \
        --src=en --tgt=de --out_dir=runs/en-de

Every model flag overrides one field of nmt.config; run with --helpfull for all.
Re-running the same command resumes from the last checkpoint in --out_dir.
"""
from absl import app, flags

from nmt import devices, training
from nmt.cli import common
from nmt.cli.flags import define_config_flags, overrides_from_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", None, "Model dir: config, vocabularies, checkpoints, logs.")
flags.DEFINE_integer("num_layers", None, "Sets both num_encoder_layers and num_decoder_layers.")
CONFIG_FLAGS = define_config_flags(["data", "model", "train", "decode"],
                                   rename={"decode.batch_size": "decode_batch_size",
                                           "decode.batch_tokens": "decode_batch_tokens"})
flags.mark_flag_as_required("out_dir")


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
        devices.split_cpu(config.train.num_cpu_devices)  # before TensorFlow sets up devices
        result = training.train(config, FLAGS.out_dir)
        if result is not None:
            print(f"dev BLEU {result.bleu:.2f}, chrF {result.chrf:.2f}, ppl {result.perplexity:.2f}")

    common.run_main("nmt-train", run)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
