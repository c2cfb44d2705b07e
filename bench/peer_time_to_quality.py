"""A peer's test BLEU against minutes of training, beside bench/time_to_quality's runs.

    python -m bench.peer_time_to_quality --peer=onmt --minutes=5,10,20,40,60 \
        --output_json=onmt.json [--peers_dir=HARNESS]

Trains the peer harness's benchmark model (OpenNMT-tf or JoeyNMT, its own config)
from scratch. At each minute mark, counted from the training command's start, it
copies the newest checkpoint the peer has saved. When the last mark has passed it
stops training, translates test_2016_flickr with beam 5 from each copy (the harness's
decoding settings) and scores it with sacreBLEU, cased, as the harness does. The JSON
holds {run, mark, minutes, step, bleu} per mark, the form bench/time_to_quality reads
with --points.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from absl import app, flags

from bench import bench_peers
from nmt.decode import metrics

FLAGS = flags.FLAGS
LABELS = {"onmt": "OpenNMT-tf (bench model)", "joey": "JoeyNMT (bench model)"}
# How often each peer saves: OpenNMT-tf by steps; JoeyNMT only when it validates, so it
# validates often, on a few dev sentences, and keeps every checkpoint it writes.
ONMT_SAVE_STEPS = 50
JOEY_VALIDATE_STEPS = 50
JOEY_DEV_SENTENCES = 16


def define_flags():
    """The script's flags; defined when it runs, so that tests can import it."""
    flags.DEFINE_enum("peer", None, list(bench_peers.PEERS), "The peer to train.")
    flags.DEFINE_list("minutes", ["5", "10", "20", "40", "60"], "Minute marks to keep.")
    flags.DEFINE_string("peers_dir", None, "The peer harness folder (default: "
                        "$NMT_PEERS_DIR, else ../shared/bench/peers).")
    flags.DEFINE_string("output_json", None, "Where to write the points.")
    flags.mark_flags_as_required(["peer", "output_json"])


def onmt_command(harness, config_path, *args):
    """OpenNMT-tf's command line with the harness's model and config_path, then args."""
    return [os.path.join(bench_peers.PEERS_DIR, "onmt", "bin", "onmt-main"), "--model",
            os.path.join(harness, "onmt", "model.py"), "--config", config_path, *args]


def peer_config(peer, harness, run_dir, data_dir):
    """The harness's config for peer, saving often -> (config path, training command)."""
    if peer == "onmt":
        with open(os.path.join(harness, "onmt", "config.yml")) as f:
            text = f.read().replace("@RUN@", run_dir).replace("@DATA@", data_dir)
        text = re.sub(r"save_checkpoints_steps: \d+", f"save_checkpoints_steps: {ONMT_SAVE_STEPS}",
                      text)
        path = os.path.join(run_dir, "config.yml")
        command = onmt_command(harness, path, "train")
    else:
        with open(os.path.join(harness, "joey", "config.yaml")) as f:
            text = f.read().replace("@RUN@", os.path.join(run_dir, "model")).replace("@DATA@",
                                                                                     data_dir)
        text = re.sub(r"validation_freq: \d+", f"validation_freq: {JOEY_VALIDATE_STEPS}", text)
        text = re.sub(r"sample_dev_subset: -?\d+", f"sample_dev_subset: {JOEY_DEV_SENTENCES}",
                      text)
        text = re.sub(r"keep_best_ckpts: -?\d+", "keep_best_ckpts: -1", text)
        path = os.path.join(run_dir, "config.yaml")
        command = [os.path.join(bench_peers.PEERS_DIR, "joey", "bin", "python"), "-m", "joeynmt",
                   "train", path]
    with open(path, "w") as f:
        f.write(text)
    return path, command


def newest_checkpoint(peer, run_dir):
    """(step, name, files) of the newest complete checkpoint the peer has saved, or None.
    name is what the peer loads from: OpenNMT-tf's prefix, JoeyNMT's file."""
    if peer == "onmt":
        try:
            with open(os.path.join(run_dir, "checkpoint")) as f:
                name = re.search(r'^model_checkpoint_path: "(.+)"', f.read(), re.M).group(1)
        except (OSError, AttributeError):
            return None
        if not os.path.exists(os.path.join(run_dir, name + ".index")):
            return None
        files = [os.path.join(run_dir, n) for n in os.listdir(run_dir)
                 if n.startswith(name + ".")]
        return int(name.rsplit("-", 1)[1]), name, files
    latest = os.path.join(run_dir, "model", "latest.ckpt")
    if not os.path.exists(latest):
        return None
    target = os.path.realpath(latest)
    name = os.path.basename(target)
    return int(name.split(".")[0]), name, [target]


def keep_at_marks(peer, run_dir, command, marks, kept_dir):
    """Runs command, copying the newest checkpoint at each mark -> [{mark, minutes, step, path}]."""
    start = time.time()
    with open(os.path.join(run_dir, "train.log"), "w") as log:
        trainer = subprocess.Popen(command, cwd=run_dir, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    kept = []
    try:
        for mark in marks:
            time.sleep(max(0.0, start + mark * 60 - time.time()))
            if trainer.poll() is not None:
                raise RuntimeError(f"{peer} stopped early ({trainer.returncode}); see "
                                   f"{run_dir}/train.log")
            found = newest_checkpoint(peer, run_dir)
            if found is None:
                print(f"{peer}: no checkpoint yet at {mark:g} min", flush=True)
                continue
            step, name, files = found
            dest = os.path.join(kept_dir, f"{mark:g}")
            os.makedirs(dest, exist_ok=True)
            for path in files:
                shutil.copy(path, dest)
            minutes = (os.path.getmtime(files[0]) - start) / 60
            kept.append({"mark": mark, "minutes": round(minutes, 2), "step": step,
                         "path": os.path.join(dest, name)})
            print(f"{peer}: {mark:g} min -> step {step} (saved at {minutes:.1f} min)", flush=True)
    finally:
        # the kept copies are all that is needed from here on
        os.killpg(trainer.pid, signal.SIGTERM)
        try:
            trainer.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(trainer.pid, signal.SIGKILL)
            trainer.wait()
    return kept


def translate(peer, harness, config_path, checkpoint, source, output):
    """Beam-5 translation of source from checkpoint into output (pieces, one line each)."""
    if peer == "onmt":
        subprocess.run(onmt_command(harness, config_path, "--checkpoint_path", checkpoint,
                                    "infer", "--features_file", source,
                                    "--predictions_file", output),
                       check=True, capture_output=True)
        return
    with open(config_path) as f:
        text = f.read()
    text = text.replace("testing:\n", f'testing:\n    load_model: "{checkpoint}"\n', 1)
    mark_config = os.path.join(os.path.dirname(checkpoint), "config.yaml")
    with open(mark_config, "w") as f:
        f.write(text)
    with open(source) as src, open(output, "w") as out:
        subprocess.run([os.path.join(bench_peers.PEERS_DIR, "joey", "bin", "python"), "-m",
                        "joeynmt", "translate", mark_config], stdin=src, stdout=out,
                       stderr=subprocess.DEVNULL, check=True)


def cased_bleu(pieces_path, reference_path, spm_model):
    """nmt's cased BLEU (sacreBLEU, 13a) of the pieces file, decoded with spm_model."""
    import sentencepiece
    processor = sentencepiece.SentencePieceProcessor(model_file=spm_model)
    with open(pieces_path) as f:
        hypotheses = [processor.decode_pieces(line.split()) for line in f]
    with open(reference_path) as f:
        references = [line.rstrip("\n") for line in f]
    return metrics.score(hypotheses, references).bleu


def main(argv):
    del argv
    harness = bench_peers.harness_dir(FLAGS.peers_dir)
    bench_peers.ensure_prepared(harness)
    data_dir = os.path.join(bench_peers.PEERS_DIR, "data")
    run_dir = os.path.join(bench_peers.PEERS_DIR, f"ttq-{FLAGS.peer}")
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    config_path, command = peer_config(FLAGS.peer, harness, run_dir, data_dir)
    marks = sorted(float(m) for m in FLAGS.minutes)
    kept = keep_at_marks(FLAGS.peer, run_dir, command, marks, os.path.join(run_dir, "kept"))
    points, bleu_of_step = [], {}
    for point in kept:
        checkpoint = point.pop("path")
        if point["step"] not in bleu_of_step:  # two marks can keep one checkpoint
            output = os.path.join(os.path.dirname(checkpoint), "test.beam5.sp")
            translate(FLAGS.peer, harness, config_path, checkpoint,
                      os.path.join(data_dir, "test_2016_flickr.sp.en"), output)
            bleu_of_step[point["step"]] = cased_bleu(
                output, os.path.join(data_dir, "test_2016_flickr.de"),
                os.path.join(data_dir, "spm8k.model"))
        bleu = bleu_of_step[point["step"]]
        points.append({"run": LABELS[FLAGS.peer], **point, "bleu": round(bleu, 2)})
        print(f"{FLAGS.peer}: {point['mark']:g} min (step {point['step']}): BLEU {bleu:.2f}",
              flush=True)
    with open(FLAGS.output_json, "w") as out:
        json.dump(points, out, indent=1)
    return 0 if points else 1


if __name__ == "__main__":
    define_flags()
    sys.exit(app.run(main))
