"""Fault injection for nmt-train: kills, full disks, refused writes and two trainers.

    python -m bench.fault_injection --kills=50 --work_dir=/tmp/faults   # full size
    python -m bench.fault_injection --kills=4 --json                    # a quick look

Every scenario trains a tiny model on a Multi30k slice (CPU, deterministic) and
breaks it, then reruns the same command until it finishes, and checks:
  - after a kill, the rerun resumes from the newest complete checkpoint that the
    state file names (or starts anew if there is none) and says so;
  - after a write error (ENOSPC or EACCES), the command exits 1 with one line,
    and what was saved before is intact;
  - a second trainer on the run dir exits 1 naming the holder of its lock;
  - the finished run's weights and optimizer slots equal an unbroken run's exactly,
    its log holds each step once, and config.json and the vocabulary are unchanged.
Kills land at random moments (SIGKILL from outside) and at each step of a save:
after the data file, after the index, before and after the state file (the
NMT_FAULT_INJECTION hook of nmt.files.fault_point makes the trainer kill itself).
Bytes lost counts the bytes of files that were whole before a fault and are
changed or gone after it: config.json, the vocabulary, the checkpoints the state
file named and the log records of the steps they hold.
"""
import collections
import errno
import gzip
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import tempfile
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STEPS, PER_CHECKPOINT = 12, 3
# Where a save can be cut: the data file written but no index, both written, the
# files synced but the state file not yet rewritten, and the state file rewritten.
SAVE_STAGES = ("ckpt.data", "ckpt.index", "ckpt.state", "ckpt.saved")
OTHER_STAGES = ("log", "write:config.json")
WRITE_ERRORS = (("ENOSPC", "ckpt.index"), ("EACCES", "ckpt.data"), ("ENOSPC", "log"),
                ("EACCES", "write:config.json"))
Outcome = collections.namedtuple("Outcome", ["kind", "where", "ok", "detail", "bytes_lost"])


def write_corpus(directory, lines=300):
    """The first `lines` Multi30k en-de training pairs as plain files; -> the prefix."""
    os.makedirs(directory, exist_ok=True)
    for lang in ("en", "de"):
        source = os.path.join(REPO, "data", "multi30k", f"train.{lang}.gz")
        with gzip.open(source, "rt", encoding="utf-8") as f:
            head = [next(f) for _ in range(lines)]
        with open(os.path.join(directory, f"train.{lang}"), "w", encoding="utf-8") as f:
            f.writelines(head)
    return os.path.join(directory, "train")


def train_command(prefix, out_dir):
    return [sys.executable, "-m", "nmt.cli.train", f"--train_prefix={prefix}",
            f"--out_dir={out_dir}", "--src=en", "--tgt=de", "--num_units=16",
            "--embedding_size=16", "--num_layers=1", "--vocab_size=400",
            "--max_src_len=60", "--max_tgt_len=60", "--batch_size=32",
            f"--num_train_steps={STEPS}", "--steps_per_stats=1",
            f"--steps_per_checkpoint={PER_CHECKPOINT}", "--steps_per_eval=0",
            # One graph per batch shape: a resumed process computes each step with the
            # graph an unbroken one uses (else its first steps differ in the last bits).
            "--nojit_compile", "--deterministic", "--num_cpu_devices=1"]


def run(command, fault=None, kill_after=None, timeout=900):
    """Runs command (with NMT_FAULT_INJECTION=fault); SIGKILLs it after kill_after
    seconds if given. -> (returncode, stderr)."""
    env = {**os.environ, "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("NMT_FAULT_INJECTION", None)
    if fault:
        env["NMT_FAULT_INJECTION"] = fault
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=REPO)
    try:
        if kill_after is not None:
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


Snapshot = collections.namedtuple("Snapshot", ["files", "named", "newest", "log"])


def snapshot(out_dir):
    """What a fault must not damage: {path: (sha256, bytes)} of config.json, the
    vocabulary and the files of the checkpoints the state file names; those prefixes,
    the newest, and (sha256, bytes) of the log records of steps up to the newest."""
    from nmt import model_dir as model_dir_lib
    state = model_dir_lib.read_checkpoint_state(os.path.join(out_dir, "ckpt"))
    paths = [os.path.join(out_dir, n) for n in ("config.json", "spm.model")]
    named, newest = set(), None
    if state is not None:
        newest, named = state.model_checkpoint_path, set(state.all_model_checkpoint_paths)
        for prefix in named:
            directory, name = os.path.split(prefix)
            paths += [os.path.join(directory, f) for f in os.listdir(directory)
                      if f.startswith(name + ".")]
    files = {p: _digest(p) for p in paths if os.path.exists(p)}
    return Snapshot(files, named, newest, _log_records(out_dir, _step(newest)))


def _step(prefix):
    return int(prefix.rsplit("-", 1)[1]) if prefix else 0


def _digest(path):
    with open(path, "rb") as f:
        data = f.read()
    return hashlib.sha256(data).hexdigest(), len(data)


def _log_records(out_dir, step):
    """(sha256, bytes) of the whole log lines of steps up to `step`."""
    path = os.path.join(out_dir, "log.jsonl")
    kept = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            kept = [line for line in f
                    if line.endswith("\n") and json.loads(line).get("step", 0) <= step]
    data = "".join(kept).encode()
    return hashlib.sha256(data).hexdigest(), len(data)


def bytes_lost(before, out_dir):
    """Bytes of `before` (a snapshot) changed or gone in out_dir now. A checkpoint
    the state file no longer names, older than its newest, was swept, not lost."""
    after = snapshot(out_dir)
    lost = 0
    for path, (digest, size) in before.files.items():
        prefix = re.sub(r"\.(index|data-\d{5}-of-\d{5})$", "", path)
        if prefix != path and prefix not in after.named and _step(prefix) < _step(after.newest):
            continue  # swept by the manager after a newer save
        if path not in after.files or after.files[path][0] != digest:
            lost += size
    if _log_records(out_dir, _step(before.newest)) != before.log:
        lost += before.log[1]
    return lost


def expected_start(out_dir):
    """The line a rerun must log: where it resumes (the newest complete checkpoint the
    state file names) or that it starts anew."""
    from nmt import model_dir as model_dir_lib
    path = model_dir_lib.resume_path(os.path.join(out_dir, "ckpt"))
    return f"resuming from {path} at step {_step(path)} " if path else "starting a new run"


# Saved values that differ between any two runs: wall time, saves (a rerun saves again).
NOT_COMPARED = ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE",
                "progress/train_seconds/.ATTRIBUTES/VARIABLE_VALUE")


def final_weights(out_dir):
    """{name: array} of every saved value of the run's newest checkpoint (weights, Adam
    slots, progress counters, dropout generators, vocabulary fingerprint)."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(out_dir, "ckpt")))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k not in NOT_COMPARED}


def same_as_reference(out_dir, reference):
    """'' if the finished run equals the unbroken one, else what differs."""
    import numpy as np
    weights = final_weights(out_dir)
    if set(weights) != set(reference):
        return f"saved names differ: {sorted(set(weights) ^ set(reference))[:3]}"
    for key, value in reference.items():
        if not np.array_equal(weights[key], value):
            return f"{key} differs from the unbroken run"
    from nmt import model_dir as model_dir_lib
    steps = [r["step"] for r in model_dir_lib.read_log(out_dir) if r["kind"] == "train"]
    if steps != list(range(1, STEPS + 1)):
        return f"log steps {steps} are not 1..{STEPS} once each"
    return ""


Fault = collections.namedtuple("Fault", ["kind", "where", "env", "seconds"])


def run_chain(command, out_dir, faults, reference):
    """Runs command once per fault on one run dir (each run is also the rerun after the
    fault before it), then once clean. -> ([Outcome] of the faults, then of the finish;
    the faults not run: a kill that came after the run ended ends the chain early).

    Each run must start where the run dir says (expected_start) if it got as far as
    saying where it starts; a kill must exit -9, a write error 1 with one line; and
    nothing whole before a fault may be damaged after it."""
    outcomes = _Outcomes()
    faults = list(faults)
    for i, fault in enumerate(faults + [None]):
        try:
            expect = expected_start(out_dir)
        except Exception as e:  # a damaged run dir: the fault before lost it
            outcomes.append(Outcome("resume", "run dir", False, str(e), 0))
            return outcomes, []
        before = snapshot(out_dir)
        code, err = run(command, fault=fault and fault.env, kill_after=fault and fault.seconds)
        problem = _start_problem(err, expect) or _exit_problem(fault, code, err)
        lost = bytes_lost(before, out_dir)
        if fault is None:
            problem = problem or same_as_reference(out_dir, reference)
            outcomes.append(Outcome("finish", "", not problem and not lost, problem, lost))
        elif fault.kind == "kill" and code == 0:  # a random moment after the end
            outcomes.append(Outcome("kill", fault.where, None, "finished first", lost))
            problem = problem or same_as_reference(out_dir, reference)
            outcomes.append(Outcome("finish", "", not problem, problem, lost))
            return outcomes, faults[i + 1:]
        else:
            outcomes.append(Outcome(fault.kind, fault.where, not problem and not lost,
                                    problem, lost))
    return outcomes, []


def run_all(faults, chain, run_one, retries=2):
    """Runs `faults` in chains of `chain` on fresh run dirs; run_one(index, faults) ->
    run_chain's pair. A kill that came after its run ended is tried again, at the head
    of a fresh chain (from step 0, where every save and every moment is ahead), up to
    `retries` times; the faults a chain did not reach go with it. -> [Outcome]"""
    queue, outcomes, tries, index = list(faults), [], collections.Counter(), 0
    while queue:
        batch, queue = queue[:chain], queue[chain:]
        chain_outcomes, unrun = run_one(index, batch)
        index += 1
        outcomes += chain_outcomes
        missed = [f for f, o in zip(batch, chain_outcomes) if o.kind == "kill" and o.ok is None]
        again = [f for f in missed if tries[f] < retries]
        tries.update(again)
        queue = again + unrun + queue
    return outcomes


class _Outcomes(list):
    """A list of Outcomes that prints each one to stderr as it comes (a long run's progress)."""

    def append(self, outcome):
        print(f"{outcome.kind} at {outcome.where or '-'}: "
              f"{'ok' if outcome.ok else 'not counted' if outcome.ok is None else 'FAILED'}"
              f"{', ' + outcome.detail if outcome.detail else ''}, {outcome.bytes_lost} bytes "
              f"lost", file=sys.stderr, flush=True)
        super().append(outcome)


def _start_problem(err, expect):
    said = [line for line in err.splitlines()
            if "resuming from" in line or "starting a new run" in line]
    if said and expect not in said[0]:
        return f"expected {expect!r}, the run said {said[0].split('] ')[-1]!r}"
    return ""


def _exit_problem(fault, code, err):
    lines = err.strip().splitlines()
    last = lines[-1] if lines else ""
    if fault is None:
        return "" if code == 0 else f"exit {code}: {last!r}"
    if fault.kind == "kill":
        return "" if code in (0, -signal.SIGKILL) else f"exit {code}: {last!r}"
    if code != 1 or "Traceback" in err or not last.startswith("nmt-train: error: "):
        return f"exit {code}, last line {last!r}"
    if os.strerror(getattr(errno, fault.kind)) not in last:
        return f"the error line does not say why: {last!r}"
    return ""


def two_trainers_scenario(command, out_dir, reference):
    """A second trainer while the first holds the lock: exit 1 naming the first."""
    env = {**os.environ, "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": ""}
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=env, cwd=REPO)
    lock = os.path.join(out_dir, "train.lock")
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not (os.path.exists(lock) and os.path.getsize(lock)):
            time.sleep(0.05)
        code, err = run(command)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    last = (err.strip().splitlines() or [""])[-1]
    problem = ""
    if code == 0:
        problem = "the first trainer finished before the second started"
    elif code != 1 or f"is in use by process {first.pid} on " not in last:
        problem = f"second trainer: exit {code}, {last!r}"
    outcomes = [Outcome("two trainers", "run dir", not problem, problem, 0)]
    return outcomes + run_chain(command, out_dir, [], reference)[0]


def plan(kills, seconds, rng, write_errors=True):
    """`kills` kill faults: first one at each save stage (in the first, second, ...
    save of a run) and at the other fault points, then at random moments up to
    `seconds` (an unbroken run's time); with write_errors, each of WRITE_ERRORS."""
    points = [f"{stage}#{n}" for n in (1, 2, 3) for stage in SAVE_STAGES]
    points += [f"log#{rng.randint(1, STEPS)}", "write:config.json#1"]
    faults = [Fault("kill", p, f"kill@{p}", None) for p in points[:kills]]
    while len(faults) < kills:
        moment = rng.uniform(0.1, 1.0) * seconds
        faults.append(Fault("kill", f"random {moment:.1f} s", None, moment))
    if write_errors:
        faults += [Fault(error, f"{point}#1", f"{error}@{point}#1", None)
                   for error, point in WRITE_ERRORS]
    rng.shuffle(faults)
    return faults


def campaign(work_dir, kills, chain=5, seed=0, write_errors=True, two_trainers=True,
             faults=None):
    """Runs the unbroken reference, then the faults in chains of `chain` per run dir
    (or the given `faults`). -> the report (a dict)."""
    prefix = write_corpus(os.path.join(work_dir, "data"))
    reference_dir = os.path.join(work_dir, "unbroken")
    start = time.time()
    code, err = run(train_command(prefix, reference_dir))
    if code != 0:
        raise RuntimeError(f"the unbroken run failed: {err[-2000:]}")
    seconds = time.time() - start
    reference = final_weights(reference_dir)
    if faults is None:
        faults = plan(kills, seconds, random.Random(seed), write_errors)

    def run_one(index, batch):
        out_dir = os.path.join(work_dir, f"run{index}")
        return run_chain(train_command(prefix, out_dir), out_dir, batch, reference)

    outcomes = run_all(faults, chain, run_one)
    if two_trainers:
        out_dir = os.path.join(work_dir, "two")
        outcomes += two_trainers_scenario(train_command(prefix, out_dir), out_dir, reference)
    return report(outcomes, seconds)


def report(outcomes, seconds):
    kills = [o for o in outcomes if o.kind == "kill" and o.ok is not None]
    per_kind = collections.Counter(
        ("kill at " + o.where.split("#")[0] if o.kind == "kill" and "random" not in o.where
         else "kill at a random moment" if o.kind == "kill" else f"{o.kind} at {o.where}")
        for o in outcomes if o.kind != "finish" and o.ok is not None)
    return {"kills": len(kills), "kills_survived": sum(o.ok for o in kills),
            "kills_after_the_end": sum(o.kind == "kill" and o.ok is None for o in outcomes),
            "faults_per_kind": dict(sorted(per_kind.items())),
            "faults_handled": sum(bool(o.ok) for o in outcomes if o.kind != "finish"),
            "faults": sum(o.ok is not None for o in outcomes if o.kind != "finish"),
            "finished_runs_equal_to_unbroken": sum(bool(o.ok) for o in outcomes
                                                   if o.kind == "finish"),
            "finished_runs": sum(o.kind == "finish" for o in outcomes),
            "bytes_lost": sum(o.bytes_lost for o in outcomes),
            "unbroken_run_seconds": round(seconds, 1),
            "failures": [o._asdict() for o in outcomes if o.ok is False]}


def main(argv):
    del argv
    from absl import flags
    f = flags.FLAGS
    work_dir = f.work_dir or tempfile.mkdtemp(prefix="nmt-faults-")
    result = campaign(work_dir, f.kills, chain=f.chain, seed=f.seed)
    if f.json:
        print(json.dumps(result, indent=2))
        return
    print(f"kills survived: {result['kills_survived']} of {result['kills']} "
          f"({result['kills_after_the_end']} came after their run ended; each is tried again "
          "from step 0, twice at most)")
    print(f"faults handled: {result['faults_handled']} of {result['faults']}")
    for kind, count in result["faults_per_kind"].items():
        print(f"  {count:3d}  {kind}")
    print(f"finished runs equal to the unbroken run: "
          f"{result['finished_runs_equal_to_unbroken']} of {result['finished_runs']}")
    print(f"bytes lost: {result['bytes_lost']}")
    for failure in result["failures"]:
        print(f"FAILED {failure['kind']} at {failure['where']}: {failure['detail']}")


if __name__ == "__main__":
    from absl import app, flags
    flags.DEFINE_integer("kills", 50, "SIGKILLs: at each save stage and fault point, then "
                         "at random moments.")
    flags.DEFINE_integer("chain", 5, "Faults per run dir before the run is let finish.")
    flags.DEFINE_integer("seed", 0, "Seed of the random kill moments.")
    flags.DEFINE_string("work_dir", None, "Where the runs go (default: a new temp dir).")
    flags.DEFINE_boolean("json", False, "Print the report as JSON.")
    app.run(main)
