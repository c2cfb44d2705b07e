"""Pictures of a run with matplotlib (the optional `plot` extra).

learning_curves: train loss and dev loss (left axis) and dev BLEU (right axis)
against steps, from the records of DIR/log.jsonl (nmt.model_dir.read_log); below
them, when the evaluations measured it, the attention's mode share with the collapse
warning's threshold (nmt.training.attention_focus).
dev_curves: several runs' dev loss and BLEU against steps, one line per run.
attention_heatmap: one sentence's attention, source pieces on x, target pieces
(then EOS) on y.
"""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'nmt-lstm[plot]'") from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    return plt


def learning_curves(records, output):
    """Writes a PNG (or any matplotlib format, by extension) of loss and BLEU by step."""
    plt = _pyplot()
    train = [r for r in records if r.get("kind") == "train"]
    dev = [r for r in records if r.get("kind") == "eval"]
    focus = [r for r in dev if r.get("attention_mode_share") is not None]
    if focus:
        fig, (loss_axis, focus_axis) = plt.subplots(
            2, 1, figsize=(8, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        _plot_mode_share(focus_axis, focus)
    else:
        fig, loss_axis = plt.subplots(figsize=(8, 4.5))
    loss_axis.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss")
    if dev:
        loss_axis.plot([r["step"] for r in dev], [r["loss"] for r in dev], "o-", label="dev loss")
    (focus_axis if focus else loss_axis).set_xlabel("step")
    loss_axis.set_ylabel("loss (nats per target token)")
    handles, labels = loss_axis.get_legend_handles_labels()
    if dev:
        bleu_axis = loss_axis.twinx()
        bleu_axis.plot([r["step"] for r in dev], [r["bleu"] for r in dev], "s-", color="tab:green",
                       label="dev BLEU")
        bleu_axis.set_ylabel("BLEU")
        more_handles, more_labels = bleu_axis.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    loss_axis.legend(handles, labels, loc="upper right")
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)


def dev_curves(runs, output):
    """Dev loss (top) and dev BLEU (bottom) of several runs against steps, to an image;
    runs: [(name, {step: (dev loss, dev BLEU)})] (tools/compare_runs.py)."""
    plt = _pyplot()
    fig, (loss_axis, bleu_axis) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    for name, evaluations in runs:
        steps = sorted(evaluations)
        loss_axis.plot(steps, [evaluations[s][0] for s in steps], "o-", label=name)
        bleu_axis.plot(steps, [evaluations[s][1] for s in steps], "s-", label=name)
    loss_axis.set_ylabel("dev loss")
    bleu_axis.set_ylabel("dev BLEU")
    bleu_axis.set_xlabel("step")
    loss_axis.legend(loc="best")
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)


def _plot_mode_share(axis, records):
    """The dev attention's mode share by step, and the threshold above which the trainer
    warns that the attention looks collapsed."""
    from nmt.training.attention_focus import COLLAPSED_SHARE
    axis.plot([r["step"] for r in records], [r["attention_mode_share"] for r in records], "o-",
              color="tab:red", label="attention mode share")
    axis.axhline(COLLAPSED_SHARE, linestyle="--", color="grey", label="looks collapsed above")
    axis.set_ylim(0.0, 1.0)
    axis.set_ylabel("mode share")
    axis.legend(loc="best")


def attention_heatmap(weights, src_pieces, tgt_pieces, output):
    """weights `[len(tgt_pieces), len(src_pieces)]` -> a heatmap file."""
    plt = _pyplot()
    size = (max(4.0, 0.4 * len(src_pieces) + 2), max(3.0, 0.4 * len(tgt_pieces) + 1.5))
    fig, axis = plt.subplots(figsize=size)
    image = axis.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axis.set_xticks(range(len(src_pieces)), src_pieces, rotation=90)
    axis.set_yticks(range(len(tgt_pieces)), tgt_pieces)
    axis.set_xlabel("source")
    axis.set_ylabel("target")
    fig.colorbar(image, ax=axis)
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)


def plot_attention(model_dir, src, tgt, output, which="best"):
    """Attention heatmap of one sentence pair (tgt None: the greedy translation of src)."""
    from nmt import model_dir as model_dir_lib
    from nmt.config import DecodeConfig
    from nmt.decode.translate import Translator
    from nmt.training import summaries
    _, model, src_vocab, tgt_vocab = model_dir_lib.load(model_dir, which)
    src_ids = src_vocab.encode([src])[0]
    if tgt is None:
        greedy = Translator(model, src_vocab, tgt_vocab, DecodeConfig(beam_size=1))
        tgt_ids = greedy.translate([src])[0][0].ids
    else:
        tgt_ids = tgt_vocab.encode([tgt])[0]
    weights = summaries.attention_weights(model, [src_ids], [tgt_ids])[0]
    attention_heatmap(weights, src_vocab.pieces(src_ids), tgt_vocab.pieces(tgt_ids) + ["</s>"],
                      output)
