"""Runs the peer harness (OpenNMT-tf, JoeyNMT) and parses its figures.

The harness is the folder `--peers_dir` names (a flag of bench/benchmark.py), else
$NMT_PEERS_DIR, else ../shared/bench/peers beside the checkout. bench/benchmark.py
--peers calls `run_peer` for each peer, one at a time:

    bash HARNESS/train.sh PEER SECONDS  ->  "PEER: steps A->B in N s: X steps/s,
                                             Y sentences/s, Z target pieces/s"
    bash HARNESS/translate.sh PEER      ->  "PEER beam5: 1000 lines, T s after loading
                                             (R sentences/s), whole command M:SS.ss,
                                             peak RSS K MiB, BLEU B"
                                            (and the same line for greedy)

The harness prints no output lengths; target pieces/s of translation is computed
here from its hypothesis files ($PEERS/run-PEER/test.MODE.sp, one line of
space-separated pieces per sentence).
"""
import os
import re
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_HARNESS = os.path.join(REPO, "..", "shared", "bench", "peers")
PEERS_DIR = os.environ.get("PEERS", "/tmp/nmt-peers")  # where the harness writes, as it reads it
PEERS = ("onmt", "joey")

TRAIN_LINE = re.compile(r"^(\w+): steps (\d+)->(\d+) in (\d+) s: ([\d.]+) steps/s, "
                        r"(\d+) sentences/s, (\d+) target pieces/s", re.M)
TRANSLATE_LINE = re.compile(r"^(\w+) (beam5|greedy): (\d+) lines, (\S+) s after loading "
                            r"\((\S+) sentences/s\), whole command (\S+), peak RSS (\d+) MiB, "
                            r"BLEU (\S+)", re.M)


class PeerError(RuntimeError):
    """The harness failed or printed nothing parseable."""


def clock_seconds(text):
    """'1:02.5' or '1:02:03' (GNU time's wall clock) -> seconds."""
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def parse_train(output):
    """train.sh stdout -> {steps_per_s, sentences_per_s, train_tokens_per_s}."""
    match = TRAIN_LINE.search(output)
    if not match:
        raise PeerError(f"no throughput line in train.sh output: {output.strip()[-300:]!r}")
    return {"train_steps_per_s": float(match.group(5)),
            "train_sentences_per_s": float(match.group(6)),
            "train_tokens_per_s": float(match.group(7))}


def parse_translate(output):
    """translate.sh stdout -> {MODE_sentences_per_s, MODE_s, MODE_command_s, MODE_command_rss_mb,
    MODE_bleu} for MODE in beam5, greedy (whatever lines are present)."""
    figures = {}
    for m in TRANSLATE_LINE.finditer(output):
        mode = m.group(2)
        figures.update({f"{mode}_s": float(m.group(4)),
                        f"{mode}_sentences_per_s": float(m.group(5)),
                        f"{mode}_command_s": clock_seconds(m.group(6)),
                        f"{mode}_command_rss_mb": float(m.group(7)),
                        f"{mode}_bleu": float(m.group(8))})
    if not figures:
        raise PeerError(f"no result line in translate.sh output: {output.strip()[-300:]!r}")
    return figures


def output_pieces(path):
    """Target pieces in a hypothesis file of space-separated pieces (EOS is never written)."""
    with open(path, encoding="utf-8") as f:
        return sum(len(line.split()) for line in f)


def harness_dir(peers_dir=None):
    """The harness folder: peers_dir, else $NMT_PEERS_DIR, else the default beside the checkout."""
    return os.path.normpath(peers_dir or os.environ.get("NMT_PEERS_DIR") or DEFAULT_HARNESS)


def _bash(harness, script, *args, timeout):
    path = os.path.join(harness, script)
    if not os.path.isfile(path):
        raise PeerError(f"--peers_dir={harness}: no {script} there (the peer harness's folder; "
                        "set --peers_dir or NMT_PEERS_DIR)")
    run = subprocess.run(["bash", path, *map(str, args)],
                         capture_output=True, text=True, timeout=timeout)
    if run.returncode:
        raise PeerError(f"{script} {' '.join(map(str, args))} failed ({run.returncode}): "
                        f"{(run.stderr or run.stdout).strip()[-300:]}")
    return run.stdout


def ensure_prepared(harness):
    """Runs prepare.sh (sentencepiece + encoded data) unless $PEERS/data is ready."""
    if not os.path.exists(os.path.join(PEERS_DIR, "data", "mean_target_pieces.txt")):
        _bash(harness, "prepare.sh", timeout=900)
    with open(os.path.join(PEERS_DIR, "data", "mean_target_pieces.txt")) as f:
        return float(f.read())


def train_peer(harness, peer, seconds):
    """Trains `peer` for `seconds` -> its training figures (+ "raw": the harness output)."""
    train_out = _bash(harness, "train.sh", peer, seconds, timeout=seconds + 600)
    return {**parse_train(train_out), "raw": train_out.strip()}


def run_peer(harness, peer, seconds):
    """Trains `peer` for `seconds`, translates test_2016_flickr; -> figures dict (+ raw output)."""
    figures = train_peer(harness, peer, seconds)
    translate_out = _bash(harness, "translate.sh", peer, timeout=1800)
    figures.update(parse_translate(translate_out))
    for mode in ("beam5", "greedy"):
        hyp = os.path.join(PEERS_DIR, f"run-{peer}", f"test.{mode}.sp")
        if f"{mode}_s" in figures and os.path.exists(hyp):
            figures[f"{mode}_tokens_per_s"] = output_pieces(hyp) / figures[f"{mode}_s"]
    figures["raw"] = f"{figures['raw']}\n{translate_out.strip()}"
    return figures
