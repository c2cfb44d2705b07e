"""Tests for nmt/training/summaries.py and the trainer's records: TensorBoard tags, run.json."""
import glob
import json
import os
import types

import numpy as np
import tensorflow as tf

from tests.conftest import tiny_corpus
from nmt import config as config_lib, model_dir as model_dir_lib
from nmt.training import summaries, trainer

TRAIN_TAGS = {"loss", "perplexity", "learning_rate", "gradient_norm", "tokens_per_s"}
DEV_SCALARS = {"loss", "perplexity", "bleu", "chrf", "attention_mode_share"}
DEV_IMAGES = {f"attention/{i}" for i in range(summaries.NUM_ATTENTION_EXAMPLES)}


def event_values(directory):
    """{tag: [(step, plugin name, value), ...]} of the summaries under directory."""
    tags = {}
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor)
                tags.setdefault(value.tag, []).append(
                    (event.step, value.metadata.plugin_data.plugin_name, tensor))
    return tags


def event_tags(directory):
    """{tag: [step, ...]} of every summary in the event files under directory."""
    return {tag: [v[0] for v in values] for tag, values in event_values(directory).items()}


def test_records_and_attention_become_summaries(tiny_model_dir, tmp_path):
    model_dir, _, _ = tiny_model_dir
    _, model, src_vocab, tgt_vocab = model_dir_lib.load(model_dir, "last")
    writer = summaries.Summaries(str(tmp_path))
    writer.write_record({"kind": "train", "step": 10, "epoch": 1, "loss": 3.0, "ppl": 20.0,
                         "lr": 1e-3, "grad_norm": 1.5, "tokens_per_s": 900.0, "elapsed_s": 3.0})
    writer.write_record({"kind": "eval", "step": 20, "loss": 2.5, "perplexity": 12.2,
                         "bleu": 3.0, "chrf": 20.0, "attention_mode_share": 0.2})
    writer.write_record({"kind": "something else", "step": 30})
    src, tgt = tiny_corpus(5)
    writer.write_attention(20, model, src_vocab, tgt_vocab, types.SimpleNamespace(src=src, tgt=tgt))
    writer.close()
    train = event_tags(os.path.join(str(tmp_path), "tensorboard", "train"))
    dev = event_tags(os.path.join(str(tmp_path), "tensorboard", "dev"))
    assert set(train) == TRAIN_TAGS and all(steps == [10] for steps in train.values())
    assert set(dev) == DEV_SCALARS | DEV_IMAGES and all(steps == [20] for steps in dev.values())
    values = event_values(os.path.join(str(tmp_path), "tensorboard", "dev"))
    step, plugin, bleu = values["bleu"][0]
    assert plugin == "scalars" and bleu == np.float32(3.0)
    step, plugin, image = values["attention/0"][0]
    src_pieces = len(src_vocab.encode(src[:1])[0])
    tgt_steps = len(tgt_vocab.encode(tgt[:1])[0]) + 1
    assert plugin == "images" and image.shape == (3,)
    assert [int(image[0]), int(image[1])] == [src_pieces * summaries.CELL_PIXELS,
                                             tgt_steps * summaries.CELL_PIXELS]
    decoded = tf.image.decode_png(image[2]).numpy()
    assert decoded.shape == (tgt_steps * summaries.CELL_PIXELS,
                             src_pieces * summaries.CELL_PIXELS, 1)


def test_attention_image_shape_and_range():
    weights = np.array([[1.0, 0.0, 0.0], [0.25, 0.75, 0.0]])
    image = summaries.attention_image(weights)
    assert image.shape == (2 * summaries.CELL_PIXELS, 3 * summaries.CELL_PIXELS, 1)
    assert image.dtype == np.uint8
    assert image[0, 0, 0] == 255 and image[0, -1, 0] == 0
    assert image[summaries.CELL_PIXELS, summaries.CELL_PIXELS, 0] == round(0.75 * 255)


def tiny_run_config(tmp_path):
    """A 4-step run on a tiny corpus written to tmp_path, evaluated at its last step."""
    src, tgt = tiny_corpus(200)
    for name, lines in (("train.en", src), ("train.de", tgt), ("dev.en", src[:6]),
                        ("dev.de", tgt[:6])):
        with open(tmp_path / name, "w") as f:
            f.writelines(line + "\n" for line in lines)
    return config_lib.Config().replace(
        data=dict(train_prefix=str(tmp_path / "train"), dev_prefix=str(tmp_path / "dev"),
                  vocab_size=400, batch_size=16, max_src_len=20, max_tgt_len=20),
        model=dict(num_units=16, embedding_size=16, num_encoder_layers=1,
                   num_decoder_layers=1),
        train=dict(num_train_steps=4, steps_per_stats=2, steps_per_eval=4,
                   steps_per_checkpoint=4, jit_compile=False),
        decode=dict(beam_size=1, max_input_len=20, max_length_ratio=1.0))


def test_training_writes_summaries_and_run_record(tmp_path):
    config = tiny_run_config(tmp_path)
    run_dir = str(tmp_path / "run")
    result = trainer.train(config, run_dir)
    train = event_tags(os.path.join(run_dir, "tensorboard", "train"))
    dev = event_tags(os.path.join(run_dir, "tensorboard", "dev"))
    assert set(train) == TRAIN_TAGS and train["loss"] == [2, 4]
    assert set(dev) == DEV_SCALARS | DEV_IMAGES and dev["bleu"] == [4]

    with open(os.path.join(run_dir, model_dir_lib.RUN_FILE)) as f:
        record = json.load(f)
    assert record["versions"]["tensorflow"] == tf.__version__
    assert set(record["versions"]) >= {"nmt", "tensorflow", "sentencepiece"}
    assert isinstance(record["command"], list) and record["train_seconds"] > 0
    assert record["scores"]["dev"]["bleu"] == result.bleu
    assert record["scores"]["dev"]["bleu_signature"].startswith("nrefs:1|case:mixed")
