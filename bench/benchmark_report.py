"""The benchmark's report: the figures it names, ratios against the peers, and the
Markdown tables (bench.benchmark prints them; pure functions of its results dict)."""

FIGURES = (  # (key, label); ratios nmt/peer are printed for every key a peer reports too
    ("train_tokens_per_s", "training: target pieces/s (steps/s x batch x mean target pieces)"),
    ("train_steps_per_s", "training: steps/s"),
    ("train_measured_tokens_per_s", "training: non-pad target pieces/s actually trained"),
    ("train_padding_efficiency", "training: real / padded target positions"),
    ("peak_rss_mb", "training: peak RSS, MiB"),
    ("achieved_flops_per_s", "training: model FLOP/s (formula x non-pad pieces/s)"),
    ("mfu_fp32", "training: MFU vs fp32 matmul peak"),
    ("train_bf16_tokens_per_s", "training, --precision=bf16: target pieces/s (vs peers' fp32)"),
    ("train_bf16_speedup", "training, --precision=bf16: x fp32 steps/s, same run"),
    ("mfu_bf16", "training, --precision=bf16: MFU vs bf16 matmul peak"),
    ("beam5_sentences_per_s", "beam 5: sentences/s after loading (tracing included)"),
    ("beam5_tokens_per_s", "beam 5: target pieces/s after loading"),
    ("beam5_warm_sentences_per_s", "beam 5: sentences/s, second pass"),
    ("beam5_command_s", "beam 5: whole translate command, s (lower is better)"),
    ("beam5_command_rss_mb", "beam 5: translate command peak RSS, MiB"),
    ("beam5_mean_output_pieces", "beam 5: mean output pieces"),
    ("beam5_bleu", "beam 5: test BLEU"),
    ("greedy_sentences_per_s", "greedy: sentences/s after loading (tracing included)"),
    ("greedy_tokens_per_s", "greedy: target pieces/s after loading"),
    ("greedy_warm_sentences_per_s", "greedy: sentences/s, second pass"),
    ("greedy_mean_output_pieces", "greedy: mean output pieces"),
    ("greedy_command_s", "greedy: whole translate command, s (lower is better)"),
    ("greedy_command_rss_mb", "greedy: translate command peak RSS, MiB"),
    ("greedy_bleu", "greedy: test BLEU"),
    ("beam5_bf16_sentences_per_s", "beam 5, --decode_precision=bf16: sentences/s after loading"),
    ("beam5_bf16_warm_sentences_per_s",
     "beam 5, --decode_precision=bf16: sentences/s, second pass"),
    ("beam5_bf16_command_s", "beam 5, --decode_precision=bf16: whole command, s"),
    ("beam5_bf16_bleu", "beam 5, --decode_precision=bf16: test BLEU"),
    ("greedy_bf16_sentences_per_s", "greedy, --decode_precision=bf16: sentences/s after loading"),
    ("greedy_bf16_command_s", "greedy, --decode_precision=bf16: whole command, s"),
    ("greedy_bf16_bleu", "greedy, --decode_precision=bf16: test BLEU"),
)


def peer_ratios(results, figures):
    """nmt / peer for each figure both report; our bf16 training against their fp32."""
    return {key: results[key] / figures[PEER_KEY.get(key, key)] for key, _ in FIGURES
            if key in results and figures.get(PEER_KEY.get(key, key))}


# Our figures compared with another of the peers' (they train and decode in fp32 only).
PEER_KEY = {"train_bf16_tokens_per_s": "train_tokens_per_s",
            **{f"{mode}_bf16_{figure}": f"{mode}_{figure}" for mode in ("beam5", "greedy")
               for figure in ("sentences_per_s", "warm_sentences_per_s", "command_s", "bleu")}}


def fmt(value):
    if value is None or value != value:
        return "n/a"
    if abs(value) >= 1e9:
        return f"{value / 1e9:,.1f} G"
    if abs(value) >= 1e6:
        return f"{value / 1e6:,.1f} M"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) >= 1 else f"{value:.3f}"


def main_table(results):
    peers = [p for p, f in results.get("peers", {}).items() if "error" not in f]
    head = ["figure", "nmt", *peers, *[f"nmt/{p}" for p in peers]]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for key, label in FIGURES:
        if key not in results:
            continue
        cells = [fmt(results[key])]
        cells += [fmt(results["peers"][p].get(key)) for p in peers]
        cells += [fmt(results["ratios"][p].get(key)) for p in peers]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def scaling_tables(results):
    lines = []
    if results.get("profile"):
        p = results["profile"]
        total = p["stages"][-1]["cumulative_ms"]
        lines += ["", f"Where a training step's time goes (one batch: {p['batch']}; median of "
                  f"{p['repeats']} runs of each cumulative piece):", "",
                  "| stage | ms | share of the step |", "| --- | --- | --- |"]
        lines += [f"| {r['stage']} | {fmt(r['stage_ms'])} | {r['stage_ms'] / total:.0%} |"
                  for r in p["stages"]]
        lines += [f"| the trainer's own train step on the same batch (traced with relaxed "
                  f"shapes) | {fmt(p['trainer_step_ms'])} | {p['trainer_step_ms'] / total:.0%} |"]
    if results.get("scaling"):
        lines += ["", "Training throughput against batch size:", "",
                  "| batch (sentences) | steps/s | sentences/s | target pieces/s (harness def.) | "
                  "non-pad target pieces/s | padding efficiency |", "|" + " --- |" * 6]
        lines += [f"| {r['batch_size']} | {fmt(r['steps_per_s'])} | {fmt(r['sentences_per_s'])} | "
                  f"{fmt(r['tokens_per_s'])} | {fmt(r['measured_tokens_per_s'])} | "
                  f"{fmt(r['padding_efficiency'])} |" for r in results["scaling"]]
    if results.get("translate_by_length"):
        lines += ["", "Beam 5 translation time against source length (warm, test set split by "
                  "source pieces):", "",
                  "| source pieces | lines | mean source | mean output | sentences/s "
                  "| ms/sentence |",
                  "|" + " --- |" * 6]
        lines += [f"| {r['src_pieces']} | {r['lines']} | {fmt(r['mean_src_pieces'])} | "
                  f"{fmt(r['mean_output_pieces'])} | {fmt(r['sentences_per_s'])} | "
                  f"{fmt(r['ms_per_sentence'])} |" for r in results["translate_by_length"]]
    return lines


def markdown(results):
    lines = main_table(results)
    notes = [f"{k}: {fmt(results[k])}" for k in (
        "matmul_fp32_flops_per_s", "matmul_bf16_flops_per_s", "flops_per_target_token",
        "mean_src_pieces", "mean_tgt_pieces", "peer_mean_tgt_pieces", "parameters")
        if k in results]
    lines += ["", "; ".join(notes)] if notes else []
    lines += scaling_tables(results)
    lines += ["", f"preset {results['preset']}, translations from "
              f"{results.get('translate_model_dir')}, {results['machine']}, load average at start "
              f"{' '.join(f'{x:.2f}' for x in results['load_average_at_start'])}"]
    return "\n".join(lines)
