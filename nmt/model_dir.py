"""The model directory: everything translate and evaluate need, in one place.

    DIR/config.json       the Config with its version (nmt.config.CONFIG_VERSION)
    DIR/spm.model         joint sentencepiece model (or spm.src.model + spm.tgt.model)
    DIR/ckpt/             the last checkpoints (tf.train.CheckpointManager, keep k)
    DIR/best/             the checkpoint with the best dev BLEU
    DIR/log.jsonl         one JSON record per progress line and evaluation
    DIR/run.json          command, versions and scores of the finished run
    DIR/train.lock        held (fcntl.flock) by the nmt-train writing DIR

Every file here is written whole or not at all (nmt.files), and a checkpoint that
a state file names is never written again.

Loading reads JSON and TensorFlow checkpoints only: no pickle, no code.
Before restoring, `load` checks the checkpoint named by DIR/best/checkpoint (or
DIR/ckpt/checkpoint): its .index and .data files exist and are not shorter than
the index says, and its embedding tables fit the vocabularies in DIR; each
problem is a one-line ModelDirError saying what is wrong.
"""
import collections
import contextlib
import glob
import hashlib
import json
import os
import sys

import tensorflow as tf

from nmt import config as config_lib
from nmt import files
from nmt.files import fault_point, fsync_path
from nmt import vocab as vocab_lib
from nmt.model import build_model

CONFIG_FILE = "config.json"
CKPT_DIR = "ckpt"
BEST_DIR = "best"
LOG_FILE = "log.jsonl"
RUN_FILE = "run.json"
LOCK_FILE = "train.lock"
STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's pointer to the newest checkpoint
# Checkpoint keys of the embedding tables: their rows are the vocabulary sizes.
EMBEDDING_KEYS = (("source", "model/src_embedding/table/.ATTRIBUTES/VARIABLE_VALUE"),
                  ("target", "model/tgt_embedding/table/.ATTRIBUTES/VARIABLE_VALUE"))


class ModelDirError(ValueError):
    """The model dir is missing, incomplete or incompatible."""


def save_durably(manager, checkpoint_number, stage="ckpt"):
    """manager.save(checkpoint_number) made to survive a power loss; -> the new prefix.

    tf.train.CheckpointManager fsyncs nothing (TensorFlow 2.21). Here the new
    checkpoint's .index and .data files and their directory are fsynced in a
    write callback, which runs before the manager's own callback rewrites the
    state file: the state file never names a checkpoint that is not on disk. The
    state file and the directory are fsynced after it. A checkpoint of this number
    that the state file already names is kept as it is, not written again: a kill
    while overwriting it would leave the state file naming a torn checkpoint.
    `stage` names the fault points of this save (nmt.files.fault_point).
    """
    named = {os.path.abspath(p) for p in manager.checkpoints}
    existing = os.path.abspath(os.path.join(manager.directory, f"ckpt-{checkpoint_number}"))
    if existing in named:
        return existing

    def sync_checkpoint_files(save_path):
        # The data files are written before the index: a fault there finds no index.
        fault_point(f"{stage}.data", save_path, before=lambda: os.remove(save_path + ".index"))
        fault_point(f"{stage}.index", save_path)
        for path in glob.glob(glob.escape(save_path) + ".*"):  # .index, .data-*
            fsync_path(path)
        fsync_path(os.path.dirname(save_path))
        fault_point(f"{stage}.state", save_path)

    options = tf.train.CheckpointOptions(experimental_write_callbacks=[sync_checkpoint_files])
    path = manager.save(checkpoint_number=checkpoint_number, options=options)
    fsync_path(os.path.join(manager.directory, STATE_FILE))
    fsync_path(manager.directory)
    fault_point(f"{stage}.saved", path)
    return path


def read_checkpoint_state(directory):
    """The CheckpointState of directory's state file, or None if it has none. One-line
    ModelDirError if the file is empty or unreadable, or names a checkpoint outside
    `directory` (a `..` or an absolute path): a manager deletes old checkpoints by
    these names."""
    state_file = os.path.join(directory, STATE_FILE)
    if not os.path.exists(state_file):
        return None
    try:
        state = tf.train.get_checkpoint_state(directory)
    except (ValueError, tf.errors.OpError):  # ValueError: an empty or pathless state
        state = None
    if state is None or not state.model_checkpoint_path:
        raise ModelDirError(f"{state_file}: unreadable checkpoint state file")
    home = os.path.abspath(directory)
    for path in [state.model_checkpoint_path, *state.all_model_checkpoint_paths]:
        if os.path.dirname(os.path.abspath(path)) != home:
            raise ModelDirError(f"{state_file}: names a checkpoint outside {directory} "
                                f"({path}); refusing to read or delete it")
    return state


def write_json_atomic(path, obj):
    """Writes JSON (an object, or a JSON string) to `path`, whole or not at all."""
    files.atomic_write(path, (obj if isinstance(obj, str) else json.dumps(obj, indent=2)) + "\n")


def save_config(model_dir, config):
    """Writes config.json; if one exists, its model and data setup must match `config`."""
    check_config(model_dir, config)
    write_json_atomic(os.path.join(model_dir, CONFIG_FILE), config.to_json())


def check_config(model_dir, config):
    """One-line ModelDirError if model_dir's config.json has other model or data settings."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if os.path.exists(path):
        old = config_lib.load_config(path)
        for section in ("model", "data"):
            if getattr(old, section) != getattr(config, section):
                changed = [k for k, v in vars(getattr(config, section)).items()
                           if getattr(getattr(old, section), k) != v]
                raise ModelDirError(f"{path}: this model dir was made with other {section} "
                                    f"settings ({', '.join(changed)}); use a new --model_dir")


def check_run_dir(run_dir):
    """Whether run_dir holds a run to resume (its ckpt/ has a state file). One-line
    ModelDirError if a state file of ckpt/ or best/ is unreadable or names files
    outside its directory; the managers would delete old checkpoints by these names."""
    read_checkpoint_state(os.path.join(run_dir, BEST_DIR))
    return read_checkpoint_state(os.path.join(run_dir, CKPT_DIR)) is not None


def resume_path(ckpt_dir):
    """The checkpoint a run resumes from: the one ckpt_dir's state file names, complete;
    None if there is no state file (a new run). A damaged one is a one-line
    ModelDirError saying how to recover, never a silent new run (which would sweep
    the old checkpoints and replace best/)."""
    state_file = os.path.join(ckpt_dir, STATE_FILE)
    older = []
    try:
        state = read_checkpoint_state(ckpt_dir)
        if state is None:
            return None
        older = [p for p in state.all_model_checkpoint_paths[::-1]
                 if p != state.model_checkpoint_path and _is_complete(p)]
        check_checkpoint(state.model_checkpoint_path)
    except ModelDirError as e:
        advice = (f"name an older complete one ({os.path.basename(older[0])}) as "
                  f"model_checkpoint_path in {state_file}, " if older else "")
        raise ModelDirError(f"{e}; the run cannot resume: restore the file, {advice}or "
                            f"train in a new --model_dir") from None
    return state.model_checkpoint_path


def _is_complete(path):
    try:
        check_checkpoint(path)
    except ModelDirError:
        return False
    return True


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


def vocab_names(data_config):
    """The sentencepiece model names a run with this DataConfig keeps in its dir."""
    return ([vocab_lib.JOINT_NAME] if data_config.joint_vocab
            else [vocab_lib.SRC_NAME, vocab_lib.TGT_NAME])


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
                            f"({_first_line(e)})") from None


def checkpoint_path(model_dir, which="best"):
    """The checkpoint prefix to load. `which`: "best" (falls back to the latest one if
    DIR/best has none), "last" or "latest" (the newest in DIR/ckpt), or a path: a
    checkpoint prefix (DIR/ckpt/ckpt-3000) or a directory with a checkpoint state
    file. The prefix is the one the state file names, whether its files exist or
    not (`check_checkpoint` says what is missing)."""
    if which not in ("best", "last", "latest"):
        return _checkpoint_at(which)
    order = [BEST_DIR, CKPT_DIR] if which == "best" else [CKPT_DIR]
    for sub in order:
        state = read_checkpoint_state(os.path.join(model_dir, sub))
        if state is not None:
            return state.model_checkpoint_path
    raise ModelDirError(f"{model_dir}: no checkpoint found (train first)")


def _checkpoint_at(path):
    """A checkpoint given by path: a directory's newest one, else the prefix itself."""
    if not os.path.isdir(path):
        if not glob.glob(glob.escape(path) + ".*"):  # no .index, no .data: not a checkpoint
            raise ModelDirError(f"{path}: no such checkpoint (give best, last, latest, a "
                                f"checkpoint prefix such as DIR/ckpt/ckpt-3000, or a "
                                f"directory with a checkpoint state file)")
        return path
    state = read_checkpoint_state(path)
    if state is None:
        raise ModelDirError(f"{path}: no checkpoint state file in this directory")
    return state.model_checkpoint_path


def check_checkpoint(path, src_vocab=None, tgt_vocab=None):
    """One-line ModelDirError if the checkpoint at prefix `path` has a missing or
    truncated .index or .data file, or (given vocabs) embeddings of other sizes."""
    index = path + ".index"
    if not os.path.isfile(index):
        raise ModelDirError(f"{index}: checkpoint index file missing")
    shards = sorted(glob.glob(glob.escape(path) + ".data-?????-of-?????"))
    if not shards:
        raise ModelDirError(f"{path}.data-00000-of-00001: checkpoint data file missing")
    expected = [f"{path}.data-{i:05d}-of-{shards[0][-5:]}" for i in range(int(shards[0][-5:]))]
    missing = sorted(set(expected) - set(shards))
    if missing:
        raise ModelDirError(f"{missing[0]}: checkpoint data file missing")
    try:
        reader = tf.train.load_checkpoint(path)
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    except (tf.errors.OpError, ValueError) as e:
        raise ModelDirError(f"{index}: checkpoint index file truncated or corrupt "
                            f"({_first_line(e)})") from None
    # The data files hold every tensor's bytes (strings add more): a shorter one was cut.
    least = sum(_num_elements(shapes[k]) * dtypes[k].size for k in shapes
                if dtypes[k] != tf.string)
    size = sum(os.path.getsize(s) for s in expected)
    if size < least:
        raise ModelDirError(f"{expected[0] if len(expected) == 1 else path + '.data-*'}: "
                            f"checkpoint data truncated ({size} bytes, the index lists at "
                            f"least {least})")
    for (side, key), vocab in zip(EMBEDDING_KEYS, (src_vocab, tgt_vocab)):
        if vocab is not None and key in shapes and shapes[key][0] != vocab.size:
            raise ModelDirError(f"{path}: made for other vocabularies: its {side} embedding "
                                f"has {shapes[key][0]} rows, {vocab.path} has {vocab.size} "
                                f"pieces")


def _num_elements(shape):
    count = 1
    for dim in shape:
        count *= dim
    return count


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def restore_model(model, path):
    """Loads model weights from a checkpoint prefix; one-line error if it does not fit,
    is corrupt, vanished, cannot be read, or needs more memory than there is."""
    try:
        status = tf.train.Checkpoint(model=model).read(path)
        status.expect_partial().assert_existing_objects_matched()
    except tf.errors.DataLossError as e:  # e.g. a checksum mismatch
        raise ModelDirError(f"{path}: checkpoint data corrupt ({_first_line(e)})") from None
    except tf.errors.ResourceExhaustedError as e:
        raise ModelDirError(f"{path}: out of memory while restoring the checkpoint "
                            f"({_first_line(e)})") from None
    except (tf.errors.InvalidArgumentError, ValueError, AssertionError) as e:
        raise ModelDirError(f"{path}: checkpoint does not fit this model "
                            f"({_first_line(e)})") from None
    except tf.errors.OpError as e:  # missing files, I/O errors
        raise ModelDirError(f"{path}: cannot read the checkpoint ({_first_line(e)})") from None


# The checkpoint a model was restored from: its prefix, and the SHA-256 of its .index
# file, which holds a CRC32C of every tensor in the .data files (the content).
CheckpointId = collections.namedtuple("CheckpointId", ["path", "sha256"])
Loaded = collections.namedtuple("Loaded", ["config", "model", "src_vocab", "tgt_vocab",
                                           "checkpoint"])
_LOAD_ATTEMPTS = 3


def load(model_dir, which="best"):
    """-> (config, model, src_vocab, tgt_vocab) with weights restored."""
    return load_checkpoint(model_dir, which)[:4]


def load_checkpoint(model_dir, which="best"):
    """-> Loaded(config, model, src_vocab, tgt_vocab, checkpoint: CheckpointId).

    A trainer may save (and delete old checkpoints) meanwhile: if the files of the
    checkpoint changed or vanished during the restore, it starts over from the state
    file, so the weights always come from one whole checkpoint.
    """
    config = load_config(model_dir)
    src_vocab, tgt_vocab = load_vocabs(model_dir, config)
    model = build_model(config.model, src_vocab.size, tgt_vocab.size)
    for attempt in range(_LOAD_ATTEMPTS):
        path = checkpoint_path(model_dir, which)
        before = _file_identity(path)
        try:
            check_checkpoint(path, src_vocab, tgt_vocab)
            fingerprint = _index_sha256(path)
            restore_model(model, path)
        except ModelDirError:
            if attempt + 1 < _LOAD_ATTEMPTS and _file_identity(path) != before:
                continue
            raise
        if _file_identity(path) == before:
            return Loaded(config, model, src_vocab, tgt_vocab, CheckpointId(path, fingerprint))
    raise ModelDirError(f"{path}: the checkpoint changed {_LOAD_ATTEMPTS} times while it "
                        f"was read; try again when training has saved")


def _file_identity(path):
    """(name, inode, size, mtime) of each file of the checkpoint at prefix `path`."""
    identity = []
    for name in sorted(glob.glob(glob.escape(path) + ".*")):
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(name)
            identity.append((name, st.st_ino, st.st_size, st.st_mtime_ns))
    return identity


def _index_sha256(path):
    try:
        with open(path + ".index", "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        raise ModelDirError(f"{path}.index: cannot read ({e.strerror})") from None


def trim_log(model_dir, last_step):
    """Drops log.jsonl records of steps after last_step: a run killed after its last
    checkpoint logged steps that the resumed run does again. A torn line goes too."""
    path = os.path.join(model_dir, LOG_FILE)
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("step", 0) <= last_step:
            kept.append(line if line.endswith("\n") else line + "\n")
    if kept != lines:
        with files.atomic_open(path) as f:
            f.writelines(kept)


class LogError(ValueError):
    """A run's log.jsonl holds a line that is not a JSON record."""


def read_log(run_dir):
    """The records of DIR/log.jsonl, in order. A last line without its newline (a record
    being written, or torn by a kill) is skipped; any other line that is not a JSON
    record is a LogError naming the file and line."""
    path = os.path.join(run_dir, LOG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no training log (train first)")
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines) and not line.endswith("\n"):
                break
            raise LogError(f"{path}:{number}: not a JSON record") from None
    return records


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
