"""TensorBoard summaries of a run: `tensorboard --logdir=DIR/tensorboard`.

    DIR/tensorboard/train   loss, perplexity, learning_rate, gradient_norm, tokens_per_s
    DIR/tensorboard/dev     loss, perplexity, bleu, chrf, attention_mode_share;
                            attention/0..2 images

Scalars come from the records the trainer writes to log.jsonl (one source for
both). At every evaluation, the attention of the first NUM_ATTENTION_EXAMPLES
dev pairs (reference teacher-forced, Seq2Seq.alignments) is drawn as a
grayscale image: source pieces across, target pieces (and EOS) down, white =
all attention.

TensorFlow no longer installs TensorBoard, whose package implements
tf.summary.scalar/image. So this module writes the same records itself with
the core `tf.summary.write` and the plugin metadata TensorBoard's scalar and
image plugins read (plugin "scalars": a float32 scalar; plugin "images": a
string vector [width, height, png...]); viewing them needs only `pip install
tensorboard` on whatever machine runs TensorBoard.
"""
import os

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from nmt.data.batching import pad_batch
from nmt.data.vocab import BOS_ID
from nmt.run_dir import SUMMARY_DIR

NUM_ATTENTION_EXAMPLES = 3
CELL_PIXELS = 8  # each (target, source) cell is drawn as CELL_PIXELS x CELL_PIXELS

# log.jsonl record field -> TensorBoard tag, per record kind ("train" or "eval").
TAGS = {
    "train": {"loss": "loss", "ppl": "perplexity", "lr": "learning_rate",
              "grad_norm": "gradient_norm", "tokens_per_s": "tokens_per_s"},
    "eval": {"loss": "loss", "perplexity": "perplexity", "bleu": "bleu", "chrf": "chrf",
             "attention_mode_share": "attention_mode_share"},
}
WRITER_OF_KIND = {"train": "train", "eval": "dev"}


class Summaries:
    """Summary writers under DIR/tensorboard, created on first use."""

    def __init__(self, run_dir):
        self.root = os.path.join(run_dir, SUMMARY_DIR)
        self._writers = {}

    def writer(self, name):
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(os.path.join(self.root, name))
        return self._writers[name]

    def write_record(self, record):
        """A log.jsonl record ({"kind", "step", ...}) -> its scalars; other kinds are ignored."""
        tags = TAGS.get(record.get("kind"))
        if tags is None:
            return
        writer = self.writer(WRITER_OF_KIND[record["kind"]])
        with writer.as_default(step=int(record["step"])):
            for field, tag in tags.items():
                if record.get(field) is not None:
                    write_scalar(tag, float(record[field]))
        writer.flush()

    def write_attention(self, step, model, src_vocab, tgt_vocab, pairs):
        """Attention images of the first NUM_ATTENTION_EXAMPLES pairs of a parallel corpus
        (anything with .src and .tgt line lists) under dev/attention/i."""
        src_lines = list(pairs.src[:NUM_ATTENTION_EXAMPLES])
        tgt_lines = list(pairs.tgt[:NUM_ATTENTION_EXAMPLES])
        weights = attention_weights(model, src_vocab.encode(src_lines), tgt_vocab.encode(tgt_lines))
        writer = self.writer("dev")
        with writer.as_default(step=int(step)):
            for i, w in enumerate(weights):
                write_image(f"attention/{i}", attention_image(w),
                            description=f"source: {src_lines[i]}\n\ntarget: {tgt_lines[i]}")
        writer.flush()

    def close(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def _metadata(plugin_name, data_class, description=""):
    # The plugins' content protos at version 0 serialise to b"".
    return summary_pb2.SummaryMetadata(
        summary_description=description, data_class=data_class,
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin_name, content=b""))


def write_scalar(tag, value, description=""):
    """What tensorboard's tf.summary.scalar writes, at the default writer's step."""
    tf.summary.write(tag, tf.constant(value, tf.float32),
                     metadata=_metadata("scalars", summary_pb2.DATA_CLASS_SCALAR, description))


def write_image(tag, image, description=""):
    """What tensorboard's tf.summary.image writes for one `[height, width, channels]` uint8
    image."""
    png = tf.image.encode_png(image)
    tensor = tf.stack([tf.as_string(tf.shape(image)[1]), tf.as_string(tf.shape(image)[0]), png])
    tf.summary.write(tag, tensor, metadata=_metadata(
        "images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE, description))


def attention_weights(model, src_ids, tgt_ids):
    """Teacher-forced attention of each pair: a list of `[len(tgt) + 1, len(src)]` arrays
    (the last row is the EOS step)."""
    src, src_len = pad_batch(src_ids)
    tgt_in, _ = pad_batch([[BOS_ID] + list(t) for t in tgt_ids])
    weights = model.alignments(tf.constant(src), tf.constant(src_len), tf.constant(tgt_in)).numpy()
    return [weights[i, :len(t) + 1, :len(s)] for i, (s, t) in enumerate(zip(src_ids, tgt_ids))]


def attention_image(weights):
    """`[tgt, src]` weights in [0, 1] -> uint8 image `[tgt * CELL, src * CELL, 1]`."""
    pixels = np.clip(np.asarray(weights, np.float32), 0.0, 1.0) * 255.0
    pixels = np.kron(pixels, np.ones([CELL_PIXELS, CELL_PIXELS], np.float32))
    return pixels.round().astype(np.uint8)[:, :, None]

