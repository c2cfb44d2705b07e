"""A run's checkpoints on disk: saving them durably, and checking them before use.

A state file (DIR/ckpt/checkpoint, DIR/best/checkpoint) names a directory's
checkpoints, the newest first in meaning; a checkpoint is a prefix with an .index
file and .data-NNNNN-of-NNNNN shards. `check_checkpoint` says what is missing or
cut before anything is restored, and `resume_path` picks the checkpoint a run
resumes from, refusing a damaged one with the ways to recover.
"""
import glob
import os

import tensorflow as tf

from nmt import files
from nmt.files import fault_point, fsync_path
from nmt.run_dir import BEST_DIR, CKPT_DIR, STATE_FILE, ModelDirError, first_line

# Checkpoint keys of the embedding tables: their rows are the vocabulary sizes.
EMBEDDING_KEYS = (("source", "model/src_embedding/table/.ATTRIBUTES/VARIABLE_VALUE"),
                  ("target", "model/tgt_embedding/table/.ATTRIBUTES/VARIABLE_VALUE"))


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


def check_run_dir(run_dir, rewinding=False):
    """Whether run_dir holds a run to resume (its ckpt/ has a state file). One-line
    ModelDirError if a state file of ckpt/ or best/ is unreadable or names files
    outside its directory; the managers would delete old checkpoints by these names.
    rewinding: ckpt/'s state file is about to be rewritten (`rewind`), so not read."""
    read_checkpoint_state(os.path.join(run_dir, BEST_DIR))
    ckpt_dir = os.path.join(run_dir, CKPT_DIR)
    if rewinding:
        return True
    try:
        return read_checkpoint_state(ckpt_dir) is not None
    except ModelDirError as e:
        advice = _recovery(ckpt_dir, _complete_checkpoints(ckpt_dir))
        raise ModelDirError(f"{e}; {advice}") from None


def resume_path(ckpt_dir):
    """The checkpoint a run resumes from: the one ckpt_dir's state file names, complete;
    None if there is no state file (a new run). A damaged one is a one-line
    ModelDirError saying how to recover, never a silent new run (which would sweep
    the old checkpoints and replace best/)."""
    state = read_checkpoint_state(ckpt_dir)  # a damaged file: check_run_dir says so first
    if state is None:
        return None
    try:
        check_checkpoint(state.model_checkpoint_path)
    except ModelDirError as e:
        older = [p for p in _complete_checkpoints(ckpt_dir)
                 if step_of(p) < step_of(state.model_checkpoint_path)]
        raise ModelDirError(f"{e}; {_recovery(ckpt_dir, older)}") from None
    return state.model_checkpoint_path


def _recovery(ckpt_dir, complete):
    """The ways out of a damaged ckpt_dir, naming its newest complete checkpoint."""
    older = (f"resume from a complete checkpoint with --checkpoint={complete[-1]}, "
             if complete else "")
    return f"the run cannot resume: restore the file, {older}or train in a new --model_dir"


def _complete_checkpoints(ckpt_dir):
    """The complete checkpoints in ckpt_dir, oldest first, named or not."""
    indexes = glob.glob(os.path.join(glob.escape(ckpt_dir), "ckpt-*.index"))
    prefixes = [p[:-len(".index")] for p in indexes]
    return sorted((p for p in prefixes if step_of(p) is not None and _is_complete(p)), key=step_of)


def step_of(prefix):
    """The step of a checkpoint prefix DIR/ckpt-STEP (None if it is not one)."""
    number = os.path.basename(prefix).rpartition("-")[2]
    return int(number) if number.isdigit() else None


def check_rewind(ckpt_dir, path):
    """The absolute prefix of `path` if it is a complete checkpoint of ckpt_dir; else a
    one-line ModelDirError (another run's, best/'s, which has no optimizer state, or a
    missing or cut one)."""
    path = os.path.abspath(path)
    if os.path.dirname(path) != os.path.abspath(ckpt_dir) or step_of(path) is None:
        raise ModelDirError(f"--checkpoint={path}: not a checkpoint of this run; resume from "
                            f"one in {ckpt_dir}, such as {os.path.join(ckpt_dir, 'ckpt-1000')}")
    check_checkpoint(path)
    return path


def rewind(ckpt_dir, path):
    """Makes the complete checkpoint `path` of ckpt_dir the newest its state file names,
    so that the run resumes from it; -> its prefix. The named checkpoints older than it
    stay named; the newer ones leave the state file but not the disk: the manager
    sweeps only named checkpoints, and the resumed run saves over a newer one only
    when it reaches the same step. check_rewind's errors for a wrong `path`."""
    path = check_rewind(ckpt_dir, path)
    try:
        state = read_checkpoint_state(ckpt_dir)
    except ModelDirError:  # an unreadable state file: this rewrite replaces it
        state = None
    kept = [] if state is None else [p for p in state.all_model_checkpoint_paths
                                     if step_of(p) is not None and step_of(p) < step_of(path)]
    # The manager keeps only the named checkpoints whose save time it knows.
    lines = [f"model_checkpoint_path: \"{os.path.basename(path)}\""]
    lines += [f"all_model_checkpoint_paths: \"{os.path.basename(p)}\"" for p in kept + [path]]
    saved = [os.path.getmtime(p + ".index") for p in kept + [path]]
    lines += [f"all_model_checkpoint_timestamps: {t!r}" for t in saved]
    lines.append(f"last_preserved_timestamp: {min(saved) - 1.0!r}")
    files.atomic_write(os.path.join(ckpt_dir, STATE_FILE), "\n".join(lines) + "\n")
    return path


def set_abandoned_best_aside(out_dir, step):
    """After a rewind to `step`: a best/ saved at a later step belongs to the abandoned
    steps, so it moves whole to DIR/best-abandoned-STEP (never deleted, never mistaken
    for this history's best); -> that directory, or None if best/ is of this history."""
    best = os.path.join(out_dir, BEST_DIR)
    try:
        state = read_checkpoint_state(best)
    except ModelDirError:
        state = None
    best_step = None if state is None else step_of(state.model_checkpoint_path)
    if best_step is None or best_step <= step:
        return None
    aside = os.path.join(out_dir, f"{BEST_DIR}-abandoned-{best_step}")
    if os.path.exists(aside):  # a second rewind past the same best: keep both
        aside += f".{len(glob.glob(glob.escape(aside) + '*'))}"
    os.rename(best, aside)
    fsync_path(out_dir)
    return aside


def _is_complete(path):
    try:
        check_checkpoint(path)
    except ModelDirError:
        return False
    return True


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
                            f"({first_line(e)})") from None
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



def restore_model(model, path):
    """Loads model weights from a checkpoint prefix; one-line error if it does not fit,
    is corrupt, vanished, cannot be read, or needs more memory than there is."""
    try:
        status = tf.train.Checkpoint(model=model).read(path)
        status.expect_partial().assert_existing_objects_matched()
    except tf.errors.DataLossError as e:  # e.g. a checksum mismatch
        raise ModelDirError(f"{path}: checkpoint data corrupt ({first_line(e)})") from None
    except tf.errors.ResourceExhaustedError as e:
        raise ModelDirError(f"{path}: out of memory while restoring the checkpoint "
                            f"({first_line(e)})") from None
    except (tf.errors.InvalidArgumentError, ValueError, AssertionError) as e:
        raise ModelDirError(f"{path}: checkpoint does not fit this model "
                            f"({first_line(e)})") from None
    except tf.errors.OpError as e:  # missing files, I/O errors
        raise ModelDirError(f"{path}: cannot read the checkpoint ({first_line(e)})") from None




def checkpoint_has(path, prefix):
    """Whether the checkpoint at `path` saved any variable under `prefix` (False if its
    index cannot be read: restoring it then fails with the one-line error)."""
    try:
        names = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError):
        return False
    return any(name.startswith(prefix) for name in names)
