"""Several runs' evaluations side by side: dev loss and BLEU at each evaluated step,
each run's difference from the first (the baseline), and the mean over the steps that
every run evaluated, from --from_step on.

    python -m tools.compare_runs --model_dir=runs/fp32 --model_dir=runs/bf16 --from_step=4000
    python -m tools.compare_runs --model_dir=A --model_dir=B --json          # one JSON object
    python -m tools.compare_runs --model_dir=A --model_dir=B --plot=dev.png  # and their curves

Reads each run's log.jsonl only (no model is loaded or run), so it works while the
runs train. One evaluation moves val BLEU by about ±1 on the bench model, so the mean
over several evaluations says more than the last one (docs/experiments.md).
"""
import json
import os
import sys

from absl import app, flags

from nmt import model_dir as model_dir_lib
from nmt.training import plot


FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_multi_string("model_dir", [], "A run dir with log.jsonl; the first is the "
                              "baseline. Give two or more.")
    flags.DEFINE_integer("from_step", 0, "The mean covers shared evaluations at this step "
                         "and after.")
    flags.DEFINE_boolean("json", False, "Print one JSON object instead of Markdown.")
    flags.DEFINE_string("plot", None, "Also draw the runs' dev loss and BLEU to this image.")


def evaluations(run_dir):
    """{step: (dev loss, dev BLEU)} from a run dir's log; a step evaluated twice (a
    resumed run) keeps its last record."""
    found = {}
    for record in model_dir_lib.read_log(run_dir):
        if record.get("kind") == "eval":
            found[record["step"]] = (record["loss"], record["bleu"])
    if not found:
        raise ValueError(f"{os.path.join(run_dir, 'log.jsonl')}: no evaluations yet")
    return found


def run_names(run_dirs):
    """Short names for the table: each dir's last component, or the whole path if two
    runs share it."""
    names = [os.path.basename(os.path.normpath(d)) for d in run_dirs]
    return [d if names.count(n) > 1 else n for d, n in zip(run_dirs, names)]


def compare(runs, from_step=0):
    """runs: [(name, {step: (loss, bleu)})], baseline first -> a dict with `steps` (the
    union, ascending), `shared` (the steps >= from_step that every run evaluated) and,
    per run, `mean_loss`/`mean_bleu` over `shared` and their differences from the
    baseline's (None when nothing is shared)."""
    steps = sorted(set().union(*(evals for _, evals in runs)))
    shared = [s for s in steps if s >= from_step and all(s in evals for _, evals in runs)]
    result = {"steps": steps, "shared": shared, "runs": []}
    for name, evals in runs:
        mean_loss = sum(evals[s][0] for s in shared) / len(shared) if shared else None
        mean_bleu = sum(evals[s][1] for s in shared) / len(shared) if shared else None
        result["runs"].append({"name": name, "mean_loss": mean_loss, "mean_bleu": mean_bleu,
                               "evaluations": {s: list(evals[s]) for s in sorted(evals)}})
    base = result["runs"][0]
    for run in result["runs"]:
        for key in ("loss", "bleu"):
            mine, theirs = run[f"mean_{key}"], base[f"mean_{key}"]
            run[f"mean_{key}_difference"] = None if mine is None else mine - theirs
    return result


def _cell(evals, step):
    return f"{evals[step][0]:.3f} / {evals[step][1]:.2f}" if step in evals else "–"


def _difference(evals, base, step):
    if step not in evals or step not in base:
        return "–"
    return f"{evals[step][0] - base[step][0]:+.3f} / {evals[step][1] - base[step][1]:+.2f}"


def markdown(result):
    """The comparison as a Markdown table: a row per step, a column per run (dev loss /
    BLEU) and per non-baseline run its difference from the baseline, then the means."""
    runs = result["runs"]
    base_name, base = runs[0]["name"], runs[0]["evaluations"]
    header = ["step"] + [r["name"] for r in runs] + [f"{r['name']} − {base_name}"
                                                      for r in runs[1:]]
    lines = ["Dev loss / BLEU at each evaluation.", "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for step in result["steps"]:
        cells = [f"{step:,}"] + [_cell(r["evaluations"], step) for r in runs]
        cells += [_difference(r["evaluations"], base, step) for r in runs[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    shared = result["shared"]
    if shared:
        label = (f"mean of {len(shared)} shared evaluation{'s' * (len(shared) > 1)}, "
                 f"steps {shared[0]:,}–{shared[-1]:,}")
        cells = [label] + [f"{r['mean_loss']:.3f} / {r['mean_bleu']:.2f}" for r in runs]
        cells += [f"{r['mean_loss_difference']:+.3f} / {r['mean_bleu_difference']:+.2f}"
                  for r in runs[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    else:
        lines += ["", "No step from --from_step on was evaluated by every run: no mean."]
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if len(FLAGS.model_dir) < 2:
        raise app.UsageError("give two or more --model_dir (the first is the baseline)")
    try:
        runs = [(name, evaluations(d)) for name, d in zip(run_names(FLAGS.model_dir),
                                                          FLAGS.model_dir)]
    except (OSError, ValueError) as error:
        sys.exit(f"compare_runs: {error}")
    result = compare(runs, FLAGS.from_step)
    print(json.dumps(result) if FLAGS.json else markdown(result))
    if FLAGS.plot:
        plot.dev_curves([(run["name"], run["evaluations"]) for run in result["runs"]],
                        FLAGS.plot)


if __name__ == "__main__":
    define_flags()
    app.run(main)
