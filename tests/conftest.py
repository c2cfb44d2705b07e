"""Shared test setup: split the one CPU into logical devices before TensorFlow starts."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

NUM_LOGICAL_CPUS = 3


from nmt.model import devices  # noqa: E402

devices.split_cpu(NUM_LOGICAL_CPUS)  # as the trainer does for --num_cpu_devices


# ----------------------------------------------------------------------------
# A tiny model dir written by hand (config.json, spm.model, DIR/ckpt), shared by
# the tests of export, scoring, ensembles, checkpoint averaging, plots, summaries.

import gzip  # noqa: E402

import pytest  # noqa: E402

TINY_DATA = os.path.join(os.path.dirname(__file__), "..", "data", "multi30k")


def tiny_corpus(num_lines=200):
    """The first num_lines Multi30k (en, de) training pairs."""
    sides = []
    for lang in ("en", "de"):
        with gzip.open(os.path.join(TINY_DATA, f"train.{lang}.gz"), "rt", encoding="utf-8") as f:
            sides.append([next(f).rstrip("\n") for _ in range(num_lines)])
    return sides[0], sides[1]


def write_tiny_model_dir(model_dir, seeds=(0,), vocab_dir=None, beam_size=2):
    """A model dir with one checkpoint per seed in DIR/ckpt (the last is the latest).

    vocab_dir: copy its spm.model instead of training one (models sharing a vocabulary).
    Returns (config, model): the model holds the weights of the last checkpoint.
    """
    import shutil
    from nmt import config as config_lib, model_dir as model_dir_lib
    from nmt.data import vocab as vocab_lib
    from nmt.model.seq2seq import build_model
    os.makedirs(model_dir, exist_ok=True)
    if vocab_dir:
        shutil.copy(os.path.join(vocab_dir, "spm.model"), model_dir)
    else:
        src, tgt = tiny_corpus()
        vocab_lib.train_sentencepiece(src + tgt, os.path.join(model_dir, "spm"), vocab_size=300)
    config = config_lib.Config().replace(
        model=dict(num_units=16, embedding_size=16, num_encoder_layers=1, num_decoder_layers=1,
                   dropout=0.0),
        decode=dict(beam_size=beam_size, max_input_len=20, max_length_ratio=1.0))
    model_dir_lib.write_json_atomic(os.path.join(model_dir, "config.json"), config.to_json())
    vocab = vocab_lib.Vocab.load(os.path.join(model_dir, "spm.model"))
    model = build_model(config.model, vocab.size, vocab.size)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                         os.path.join(model_dir, "ckpt"), max_to_keep=10)
    for step, seed in enumerate(seeds, start=1):
        generator = tf.random.Generator.from_seed(seed)
        for v in model.trainable_variables:  # wide weights: peaked outputs, fewer near-ties
            v.assign(generator.uniform(v.shape, -0.5, 0.5))
        manager.save(checkpoint_number=step)
    return config, model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """(model_dir, config, model) of a tiny untrained joint-vocab model."""
    model_dir = str(tmp_path_factory.mktemp("tiny_model"))
    config, model = write_tiny_model_dir(model_dir)
    return model_dir, config, model


# --- A tiny Multi30k slice, shared by the CLI, training and translation tests. ---
import collections  # noqa: E402

import pytest  # noqa: E402

MULTI30K_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "multi30k")
SLICE_LINES = {"train": 300, "val": 50, "test_2016_flickr": 50}

# plain, gz: directories holding {train,val,test_2016_flickr}.{en,de}, plain and gzipped;
# prefix(name) -> the plain prefix of one set (e.g. ".../plain/train").
Multi30kSlice = collections.namedtuple("Multi30kSlice", ["plain", "gz"])


def _head(path, count):
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return [next(f) for _ in range(count)]


@pytest.fixture(scope="session")
def multi30k_slice(tmp_path_factory):
    """First 300 train and 50 val/test lines of the shipped Multi30k en/de."""
    root = tmp_path_factory.mktemp("multi30k")
    plain, gz = root / "plain", root / "gz"
    plain.mkdir()
    gz.mkdir()
    for name, count in SLICE_LINES.items():
        for lang in ("en", "de"):
            lines = _head(os.path.join(MULTI30K_DIR, f"{name}.{lang}.gz"), count)
            (plain / f"{name}.{lang}").write_text("".join(lines), encoding="utf-8", newline="")
            with gzip.open(gz / f"{name}.{lang}.gz", "wt", encoding="utf-8", newline="") as f:
                f.write("".join(lines))
    return Multi30kSlice(str(plain), str(gz))


# --- A tiny run dir with a data dir of several sets, for nmt-score-run and nmt-tune-decoding. ---
TinyRun = collections.namedtuple("TinyRun", ["run_dir", "data_dir"])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny model dir (checkpoints ckpt-1, ckpt-2) and a data dir holding train, val
    (plain source, gzipped target), test_a (gzipped source), test_b, an orphan source
    and a French set. References are the model's own translations (the run's decode
    config) on even lines and the real German on odd ones, so BLEU lies inside (0, 100)."""
    from nmt import model_dir as model_dir_lib
    from nmt.decode.translate import Translator
    root = tmp_path_factory.mktemp("tiny_run")
    run_dir, data_dir = str(root / "run"), root / "data"
    data_dir.mkdir()
    write_tiny_model_dir(run_dir, seeds=(1, 2))
    config, model, src_vocab, tgt_vocab = model_dir_lib.load(run_dir, "last")
    translator = Translator(model, src_vocab, tgt_vocab, config.decode)
    src, tgt = tiny_corpus(36)
    files = {"train": (0, 12, "train.en", "train.de"), "val": (12, 24, "val.en", "val.de.gz"),
             "test_a": (24, 30, "test_a.en.gz", "test_a.de"),
             "test_b": (30, 36, "test_b.en", "test_b.de")}
    for name, (start, end, src_name, tgt_name) in files.items():
        hyps = translator.translate_text(src[start:end])
        refs = [h if i % 2 == 0 else ref for i, (h, ref) in enumerate(zip(hyps, tgt[start:end]))]
        for file_name, lines in ((src_name, src[start:end]), (tgt_name, refs)):
            text = "".join(line + "\n" for line in lines)
            if file_name.endswith(".gz"):
                with gzip.open(data_dir / file_name, "wt", encoding="utf-8") as f:
                    f.write(text)
            else:
                (data_dir / file_name).write_text(text, encoding="utf-8")
    (data_dir / "orphan.en").write_text("A dog.\n", encoding="utf-8")
    (data_dir / "val.fr").write_text("Un chien.\n" * 12, encoding="utf-8")
    return TinyRun(run_dir, str(data_dir))
