"""Export a model dir as a TensorFlow SavedModel that translates raw strings.

The `serving_default` signature takes `inputs`, a 1-D batch of strings, and
returns {"translations": [batch] string, "scores": [batch] float32}: the best
hypothesis of the same search nmt-translate runs (DecodeConfig of the model dir
with any overrides), and its score. Tokenisation is in the graph, with
tensorflow-text's SentencepieceTokenizer on the model dir's sentencepiece
models (their bytes are graph constants), so a client sends text, not ids.

Loading the SavedModel needs TensorFlow and `import tensorflow_text` (it
registers the sentencepiece ops), not nmt. See docs/export.md.
"""
import json
import os
import shutil

import tensorflow as tf

from nmt.data.vocab import BOS_ID, PAD_ID

EXTRA_DIR = "assets.extra"  # config.json, spm models and export.json, for reference


def _tensorflow_text():
    try:
        import tensorflow_text
    except ImportError:
        raise ImportError("export needs tensorflow-text (the version matching your "
                          "TensorFlow): pip install 'nmt-lstm[export]'") from None
    return tensorflow_text


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class ServingModule(tf.Module):
    """A Seq2Seq (or Ensemble) with its tokenizers; `serve(inputs)` is the signature."""

    def __init__(self, model, src_vocab, tgt_vocab, decode_config):
        if decode_config.mbr:
            raise ValueError("the SavedModel serves the beam's best hypothesis; MBR reranking "
                             "runs in nmt-translate only: export without --mbr")
        super().__init__(name="nmt_serving")
        text = _tensorflow_text()
        self.model = model
        self.src_tokenizer = text.SentencepieceTokenizer(model=_read_bytes(src_vocab.path))
        self.tgt_tokenizer = (self.src_tokenizer if tgt_vocab.path == src_vocab.path else
                              text.SentencepieceTokenizer(model=_read_bytes(tgt_vocab.path)))
        c = decode_config
        # as nmt.decode.translate.Translator
        max_length = int(c.max_length_ratio * c.max_input_len) + 10

        @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, "inputs")])
        def serve(inputs):
            # ragged [batch, (len)]
            pieces = self.src_tokenizer.tokenize(inputs)[:, :c.max_input_len]
            src_len = tf.cast(pieces.row_lengths(), tf.int32)  # [batch]
            src = tf.cast(pieces.to_tensor(default_value=PAD_ID), tf.int32)  # [batch, time]
            src = tf.pad(src, [[0, 0], [0, tf.maximum(1 - tf.shape(src)[1], 0)]])  # time >= 1
            nonempty = src_len > 0  # empty lines: decoded from one PAD, output replaced by ""
            out = model.translate(src, tf.maximum(src_len, 1), beam_size=c.beam_size,
                                  length_penalty=c.length_penalty,
                                  coverage_penalty=c.coverage_penalty, num_hypotheses=1,
                                  max_length=max_length, max_length_ratio=c.max_length_ratio)
            ids = tf.RaggedTensor.from_tensor(out.ids[:, 0, :], lengths=out.lengths[:, 0])
            ids = tf.ragged.boolean_mask(ids, (ids != PAD_ID) & (ids != BOS_ID))  # as Vocab.decode
            text_out = self.tgt_tokenizer.detokenize(ids)  # [batch]
            return {"translations": tf.where(nonempty, text_out, ""),
                    "scores": tf.where(nonempty, out.scores[:, 0], 0.0)}

        self.serve = serve


def export(model_dirs, export_dir, which="best", decode_overrides=None):
    """Writes the SavedModel of model_dirs ("A" or "A,B" for an ensemble) to export_dir."""
    import nmt
    from nmt import config as config_lib, model_dir as model_dir_lib
    from nmt.decode.ensemble import load_ensemble
    config, model, src_vocab, tgt_vocab = load_ensemble(model_dirs, which)
    config = config_lib.override(config, decode_overrides or {}).validate()
    module = ServingModule(model, src_vocab, tgt_vocab, config.decode)
    tf.saved_model.save(module, export_dir, signatures={"serving_default": module.serve})
    extra = os.path.join(export_dir, EXTRA_DIR)
    os.makedirs(extra, exist_ok=True)
    first_dir = model_dirs.split(",")[0]
    shutil.copy(os.path.join(first_dir, model_dir_lib.CONFIG_FILE), extra)
    for vocab in {src_vocab.path, tgt_vocab.path}:
        shutil.copy(vocab, extra)
    model_dir_lib.write_json_atomic(os.path.join(extra, "export.json"), {
        "model_dirs": model_dirs.split(","), "checkpoint": which,
        "decode": json.loads(config.to_json())["decode"],
        "versions": {"nmt": nmt.__version__, "tensorflow": tf.__version__,
                     "tensorflow_text": _tensorflow_text().__version__}})
    return export_dir
