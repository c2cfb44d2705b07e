"""Training-lever ablation: one recipe run per lever at a fixed step count, scored on val only.

Every run is `recipes/multi30k.py --preset=PRESET` plus one lever's flags, trained for
exactly --steps steps (a step budget, not a time budget, so machine load cannot change
a result) and evaluated once, at the last step, on val with the run's own decoding
setting. Test sets are not scored. Runs go --parallel at a time, each pinned to its
own core with taskset; a run whose log already holds its final evaluation is reused.

    python -m bench.ablate_training --out_root=/tmp/ablation --steps=2500
"""
import os
import subprocess
import sys
import time

from absl import app, flags

from nmt import model_dir as model_dir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (what it changes, extra recipe flags). "base" is the preset itself.
LEVERS = {
    "base": ("the preset as it is (label smoothing 0.1, dropout 0.3)", []),
    "no_label_smoothing": ("label smoothing 0.1 -> 0", ["--label_smoothing=0"]),
    "variational_dropout": ("one dropout mask per sequence", ["--variational_dropout"]),
    "dropout_0.2": ("dropout 0.3 -> 0.2", ["--dropout=0.2"]),
    "word_dropout_0.1": ("10 % of source and decoder-input pieces -> <unk> while training",
                         ["--word_dropout=0.1"]),
    "tied_embeddings": ("source = target embeddings = softmax weights",
                        ["--share_embeddings", "--tie_output_embeddings"]),
    "subword_sampling": ("sentencepiece sampling while training, alpha 0.1",
                         ["--sample_alpha=0.1"]),
    "subword_sampling_0.5": ("sentencepiece sampling while training, alpha 0.5 (milder)",
                             ["--sample_alpha=0.5"]),
    "weight_average_0.999": ("translate a moving average of the weights, decay 0.999",
                             ["--moving_average_decay=0.999"]),
    "layer_norm": ("layer-normalised LSTMs (gates and memory; Ba et al. 2016)",
                   ["--layer_norm"]),
    "vocab_16k": ("joint vocabulary 8k -> 16k", ["--vocab_size=16000"]),
    "rsqrt_warmup": ("lr 0.002, 500 warm-up steps, inverse square root decay",
                     ["--learning_rate=0.002", "--warmup_steps=500", "--decay=rsqrt"]),
    "constant_lr_0.002": ("lr 0.001 -> 0.002, constant (the rate of rsqrt_warmup alone)",
                          ["--learning_rate=0.002"]),
    "two_layers": ("2 encoder + 2 decoder layers (standard attention)",
                   ["--num_encoder_layers=2", "--num_decoder_layers=2"]),
    "two_layers_gnmt": ("2 + 2 layers, GNMT attention (bottom layer, fed to all)",
                        ["--num_encoder_layers=2", "--num_decoder_layers=2",
                         "--attention_architecture=gnmt"]),
}

FLAGS = flags.FLAGS


def define_flags():
    """This tool's flags (not at import, so tests can import it beside other tools)."""
    flags.DEFINE_string("out_root", "/tmp/nmt-ablation", "One run dir per lever under here.")
    flags.DEFINE_string("preset", "default", "Recipe preset every lever starts from.")
    flags.DEFINE_integer("steps", 2500, "Training steps per run.")
    flags.DEFINE_integer("parallel", 2, "Runs at a time, each pinned to one core.")
    flags.DEFINE_list("levers", list(LEVERS), "Levers to run, in this order.")
    flags.DEFINE_string("output_md", None, "Markdown table (default OUT_ROOT/ablation.md).")


def final_eval(run_dir, steps):
    """The run's evaluation record at `steps`, or None while there is none."""
    path = os.path.join(run_dir, model_dir_lib.LOG_FILE)
    if not os.path.exists(path):
        return None
    records = model_dir_lib.read_log(run_dir)
    evals = [r for r in records if r["kind"] == "eval" and r["step"] == steps]
    return evals[-1] if evals else None


def run_command(lever, run_dir, preset, steps):
    """The recipe command line of one lever's run: a step budget, one evaluation (val)."""
    return [sys.executable, os.path.join(REPO, "recipes", "multi30k.py"),
            f"--preset={preset}", f"--model_dir={run_dir}", "--noscore_test_sets",
            f"--num_train_steps={steps}", "--max_time_minutes=0",
            f"--steps_per_eval={steps}", f"--steps_per_checkpoint={steps}",
            *LEVERS[lever][1]]


def run_all():
    pending = [lever for lever in FLAGS.levers
               if final_eval(os.path.join(FLAGS.out_root, lever), FLAGS.steps) is None]
    free_cores, running = list(range(FLAGS.parallel)), {}
    while pending or running:
        while pending and free_cores:
            lever, core = pending.pop(0), free_cores.pop(0)
            run_dir = os.path.join(FLAGS.out_root, lever)
            os.makedirs(run_dir, exist_ok=True)
            log = open(os.path.join(FLAGS.out_root, f"{lever}.log"), "a")
            command = ["taskset", "-c", str(core % os.cpu_count()),
                       *run_command(lever, run_dir, FLAGS.preset, FLAGS.steps)]
            print(f"start {lever} on core {core}: {' '.join(command[3:])}", flush=True)
            running[lever] = (subprocess.Popen(command, stdout=log, stderr=log), log, core,
                              time.time())
        time.sleep(5)
        for lever, (process, log, core, start) in list(running.items()):
            if process.poll() is not None:
                log.close()
                print(f"done {lever} (exit {process.returncode}, "
                      f"{(time.time() - start) / 60:.1f} min)", flush=True)
                free_cores.append(core)
                del running[lever]


def table(out_root, levers, steps, preset):
    """Markdown: each lever's val BLEU, its difference to base, val chrF and loss."""
    rows, base = [], final_eval(os.path.join(out_root, "base"), steps)
    for lever in levers:
        record = final_eval(os.path.join(out_root, lever), steps)
        if record is None:
            rows.append(f"| {lever} | {LEVERS[lever][0]} | failed: see {lever}.log | | | |")
            continue
        delta = f"{record['bleu'] - base['bleu']:+.2f}" if base and lever != "base" else ""
        rows.append(f"| {lever} | {LEVERS[lever][0]} | {record['bleu']:.2f} | {delta} | "
                    f"{record['chrf']:.2f} | {record['loss']:.3f} |")
    header = [f"Val (dev) scores after {steps} steps of `--preset={preset}`, "
              "one run per lever, same seed; test sets not scored.", "",
              "| lever | change | val BLEU | vs base | val chrF | val loss |",
              "| --- | --- | --- | --- | --- | --- |"]
    return "\n".join(header + rows) + "\n"


def main(argv):
    del argv
    os.makedirs(FLAGS.out_root, exist_ok=True)
    unknown = set(FLAGS.levers) - set(LEVERS)
    if unknown:
        raise app.UsageError(f"unknown levers {sorted(unknown)}; known: {', '.join(LEVERS)}")
    run_all()
    text = table(FLAGS.out_root, FLAGS.levers, FLAGS.steps, FLAGS.preset)
    output = FLAGS.output_md or os.path.join(FLAGS.out_root, "ablation.md")
    with open(output, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    define_flags()
    app.run(main)
