"""Loading a model dir: everything translate and evaluate need, in one call.

Loading reads JSON and TensorFlow checkpoints only: no pickle, no code.
Before restoring, `load` checks the checkpoint named by DIR/best/checkpoint (or
DIR/ckpt/checkpoint): its .index and .data files exist and are not shorter than
the index says, and its embedding tables fit the vocabularies in DIR; each
problem is a one-line ModelDirError saying what is wrong.

The layout of a run dir and its identity checks are nmt.run_dir's, its
checkpoints' checks nmt.checkpoint_files', its log nmt.run_log's; their public
names are importable from here too.
"""
import collections
import contextlib
import glob
import hashlib
import os

from nmt.checkpoint_files import (  # noqa: F401  (public names of the model dir)
    EMBEDDING_KEYS, check_checkpoint, check_run_dir, checkpoint_path, read_checkpoint_state,
    restore_model, resume_path, save_durably)
from nmt.model.seq2seq import build_model
from nmt.run_dir import (  # noqa: F401
    BEST_DIR, CKPT_DIR, CONFIG_FILE, LOCK_FILE, LOG_FILE, RUN_FILE, STATE_FILE, ModelDirError,
    VocabRecord, check_config, copy_vocabs, load_config, load_vocabs, save_config,
    vocab_names, write_json_atomic, write_run_record)
from nmt.run_log import LogError, read_log, trim_log  # noqa: F401

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
            # Files that changed, or vanished before `before` was taken (the state file
            # names a newer checkpoint by then): a save and its sweep ran meanwhile.
            if attempt + 1 < _LOAD_ATTEMPTS and (_file_identity(path) != before
                                                 or checkpoint_path(model_dir, which) != path):
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
