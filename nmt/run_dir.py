"""A run directory's layout, and the checks that keep it one run's.

    DIR/config.json       the Config with its version (nmt.config.CONFIG_VERSION)
    DIR/spm.model         joint sentencepiece model (or spm.src.model + spm.tgt.model),
                          each with its readable .vocab listing
    DIR/ckpt/             the last checkpoints (tf.train.CheckpointManager, keep k);
                          DIR/ckpt/checkpoint is the state file naming them
    DIR/best/             the checkpoint with the best dev BLEU (its own state file)
    DIR/log.jsonl         one JSON record per progress line and evaluation
    DIR/run.json          command, versions and scores of the finished run
    DIR/train.lock        held (fcntl.flock) by the nmt-train writing DIR
    DIR/tensorboard/      TensorBoard summaries (nmt.training.summaries)
    DIR/corpus_cache/     the binarised training corpus (nmt.data.corpus_cache)
    DIR/scores/, DIR/scores.md, DIR/scores.json, DIR/tuning.md, DIR/tuning.json
                          what nmt-score-run and nmt-tune-decoding write
    DIR/averaged/         a model dir: the mean of the checkpoints tuning picked
    DIR/.NAME.PID.ID.tmp  a file being written whole (nmt.files); one left by a
                          killed process goes when the run dir is next opened

Every file here is written whole or not at all (nmt.files), and a checkpoint that
a state file names is never written again. A run's identity is its model and
data settings (config.json) and its vocabularies: a resumed run must match both.
"""
import contextlib
import hashlib
import json
import os
import sys

import tensorflow as tf

from nmt import config as config_lib
from nmt import files
from nmt.data import vocab as vocab_lib
from nmt.errors import ModelDirError  # noqa: F401  (raised here, importable from here)

CONFIG_FILE = "config.json"
CKPT_DIR = "ckpt"
BEST_DIR = "best"
LOG_FILE = "log.jsonl"
RUN_FILE = "run.json"
LOCK_FILE = "train.lock"
STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's pointer to the newest checkpoint
SUMMARY_DIR = "tensorboard"
CORPUS_CACHE_DIR = "corpus_cache"
SCORES_DIR, SCORES_MD, SCORES_JSON = "scores", "scores.md", "scores.json"
TUNING_MD, TUNING_JSON = "tuning.md", "tuning.json"
AVERAGED_DIR = "averaged"  # the mean of the checkpoints that tuning on val picked


def first_line(error):
    """An exception's first line of text (its type's name if it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def open_for_writing(run_dir):
    """Makes run_dir if needed and removes what killed writers left in it: temporary
    files of processes that are gone (nmt.files.remove_stale_temporaries)."""
    os.makedirs(run_dir, exist_ok=True)
    for directory in (run_dir, os.path.join(run_dir, CKPT_DIR), os.path.join(run_dir, BEST_DIR)):
        files.remove_stale_temporaries(directory)


@contextlib.contextmanager
def writing(where):
    """A failed write (disk full, no permission) becomes a one-line ModelDirError:
    what was saved before stays whole, and the same command resumes from it."""
    try:
        yield
    except OSError as e:
        raise ModelDirError(
            f"{e.filename or where}: cannot write ({e.strerror or e}); the checkpoints "
            f"saved before are intact: fix this and rerun the same command") from None
    except tf.errors.OpError as e:
        raise ModelDirError(
            f"{where}: cannot write a checkpoint ({e.message.splitlines()[0]}); the "
            f"checkpoints saved before are intact: fix this and rerun the same command") from None


def write_json_atomic(path, obj):
    """Writes JSON (an object, or a JSON string) to `path`, whole or not at all."""
    files.atomic_write(path, (obj if isinstance(obj, str) else json.dumps(obj, indent=2)) + "\n")


# Data settings that only say how the run's vocabulary is first trained. Once it
# exists its fingerprint is the run's identity, so a resume under other values keeps
# the run's own (and a changed default does not lock users out of their runs).
VOCAB_MAKING = ("spm_sample_size", "spm_threads")


def save_config(model_dir, config):
    """Writes config.json; if one exists, its model and data setup must match `config`,
    and its VOCAB_MAKING values are kept."""
    config = check_config(model_dir, config)
    write_json_atomic(os.path.join(model_dir, CONFIG_FILE), config.to_json())


def check_config(model_dir, config):
    """One-line ModelDirError if model_dir's config.json has other model or data settings;
    -> `config` with the run's own VOCAB_MAKING values."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if os.path.exists(path):
        old = config_lib.load_config(path)
        config = config.replace(data={k: getattr(old.data, k) for k in VOCAB_MAKING})
        for section in ("model", "data"):
            if getattr(old, section) != getattr(config, section):
                changed = [k for k, v in vars(getattr(config, section)).items()
                           if getattr(getattr(old, section), k) != v]
                raise ModelDirError(f"{path}: this model dir was made with other {section} "
                                    f"settings ({', '.join(changed)}); use a new --model_dir")
    return config


def load_config(model_dir):
    if not os.path.isdir(model_dir):
        raise ModelDirError(f"{model_dir}: no such model dir")
    path = os.path.join(model_dir, CONFIG_FILE)
    try:
        return config_lib.load_config(path)
    except config_lib.ConfigError as e:
        raise ModelDirError(str(e)) from None
    except (AttributeError, TypeError) as e:  # JSON of another shape than a Config's
        raise ModelDirError(f"{path}: not a config written by nmt-train ({e})") from None


class VocabRecord(tf.Module):
    """A fingerprint of the run's vocabularies, saved in every training checkpoint:
    a resumed run must cut text into the pieces its weights were trained on."""

    def __init__(self, src_vocab, tgt_vocab):
        super().__init__(name="vocab")
        self.paths = sorted({src_vocab.path, tgt_vocab.path})
        digest = hashlib.sha256(src_vocab.fingerprint() + b"\0" + tgt_vocab.fingerprint())
        self.expected = digest.hexdigest()
        self.fingerprint = tf.Variable(self.expected, dtype=tf.string, trainable=False)

    def check(self, checkpoint):
        """One-line ModelDirError if the restored fingerprint is another vocabulary's."""
        saved = self.fingerprint.numpy().decode()
        if saved != self.expected:
            raise ModelDirError(f"{' and '.join(self.paths)}: not the vocabulary {checkpoint} "
                                f"was trained with; put the run's own sentencepiece models "
                                f"back, or train in a new --model_dir")


def vocab_names(data_config):
    """The sentencepiece model names a run with this DataConfig keeps in its dir."""
    return ([vocab_lib.JOINT_NAME] if data_config.joint_vocab
            else [vocab_lib.SRC_NAME, vocab_lib.TGT_NAME])


def load_vocabs(model_dir, config):
    """-> (src_vocab, tgt_vocab) saved in the model dir."""
    names = vocab_names(config.data) * (2 if config.data.joint_vocab else 1)
    vocabs = []
    for name in names:
        path = os.path.join(model_dir, name + ".model")
        if not os.path.exists(path):
            raise ModelDirError(f"{path}: sentencepiece model missing")
        vocabs.append(_load_vocab(path))
    return vocabs[0], vocabs[1]


def copy_vocabs(from_dir, to_dir, data_config):
    """Puts from_dir's sentencepiece models into to_dir (a run that starts from
    from_dir's weights must read text with the same pieces). Ones already in to_dir
    must cut text alike (Vocab.fingerprint), else a one-line ModelDirError."""
    os.makedirs(to_dir, exist_ok=True)
    for name in vocab_names(data_config):
        for suffix in (".model", ".vocab"):
            source, target = (os.path.join(d, name + suffix) for d in (from_dir, to_dir))
            if not os.path.exists(source):
                if suffix == ".vocab":  # a readable listing only; the .model is what counts
                    continue
                raise ModelDirError(f"{source}: sentencepiece model missing")
            if os.path.exists(target):
                if suffix == ".model" and not _same_vocab(source, target):
                    raise ModelDirError(f"{target}: differs from {source}; a run started "
                                        f"from {from_dir} needs its vocabularies")
                continue
            with open(source, "rb") as f:
                files.atomic_write(target, f.read())


def _same_vocab(path_a, path_b):
    """Whether two sentencepiece model files cut text alike (Vocab.fingerprint); a file
    that does not load is a ModelDirError saying so."""
    return _load_vocab(path_a).fingerprint() == _load_vocab(path_b).fingerprint()


def _load_vocab(path):
    try:
        return vocab_lib.Vocab.load(path)
    except Exception as e:  # sentencepiece raises OSError/RuntimeError on bad files
        raise ModelDirError(f"{path}: cannot load sentencepiece model "
                            f"({first_line(e)})") from None


def write_run_record(model_dir, train_seconds, scores=None):
    """DIR/run.json: the command (sys.argv), versions of nmt, TensorFlow, sentencepiece
    and sacreBLEU, the training time, and `scores` (each with its sacreBLEU signature)."""
    import sacrebleu
    import sentencepiece

    import nmt
    record = {"command": list(sys.argv),
              "versions": {"nmt": nmt.__version__, "tensorflow": tf.__version__,
                           "sentencepiece": sentencepiece.__version__,
                           "sacrebleu": sacrebleu.__version__},
              "train_seconds": train_seconds, "scores": scores}
    write_json_atomic(os.path.join(model_dir, RUN_FILE), record)
