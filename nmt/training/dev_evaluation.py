"""Evaluation during training: dev loss, perplexity, BLEU and chrF, and the best checkpoint.

Each evaluation scores the model the run would translate with (the moving average
of the weights, if one is kept), saves it in DIR/best when its dev BLEU is the best
so far, updates the early-stopping and reduce-on-plateau counters, and logs a record.
"""
import collections
import time

from absl import logging

from nmt.data import batching as batching_lib
from nmt.decode import metrics
from nmt.decode.translate import Translator
from nmt.training import attention_focus
from nmt.training import schedule
from nmt.training.resume import averaged_weights

EvalResult = collections.namedtuple("EvalResult", ["loss", "perplexity", "bleu", "chrf"])


def evaluate(trainer, eval_set):
    """Dev loss, perplexity and BLEU/chrF of beam search on `eval_set`, of the model as
    it is now."""
    d = trainer.config.data
    encoded, _ = batching_lib.encode_corpus(eval_set, trainer.src_vocab, trainer.tgt_vocab,
                                            max_src_len=10_000, max_tgt_len=10_000)
    total_nll = total_tokens = 0.0
    for batch in batching_lib.train_dataset(encoded, batch_size=d.batch_size, shuffle=False,
                                            bucket_width=d.bucket_width):
        out = trainer.eval_step(batching_lib.Batch(*batch))
        total_nll += float(out.nll_sum)
        total_tokens += float(out.num_tokens)
    limit = trainer.config.train.dev_bleu_max_sentences or len(eval_set.src)
    translator = Translator(trainer.model, trainer.src_vocab, trainer.tgt_vocab,
                            trainer.config.decode)
    hyps = translator.translate_text(eval_set.src[:limit])
    scores = metrics.score(hyps, eval_set.tgt[:limit])
    return EvalResult(total_nll / total_tokens, metrics.perplexity(total_nll, total_tokens),
                      scores.bleu, scores.chrf)


def evaluate_and_keep_best(trainer):
    """Evaluates on the dev set, keeps the best checkpoint, logs; -> the EvalResult."""
    p = trainer.progress
    start = time.time()
    with averaged_weights(trainer.weight_average, trainer.model):
        result = evaluate(trainer, trainer.dev)
        best_before = float(p.best_bleu)
        improved = result.bleu > best_before
        if improved:
            p.best_bleu.assign(result.bleu)
            p.bad_evals.assign(0)
            trainer.checkpoints.save_best(int(p.step))
        else:
            p.bad_evals.assign_add(1)
        trainer.summaries.write_attention(int(p.step), trainer.model, trainer.src_vocab,
                                          trainer.tgt_vocab, trainer.dev)
        share = attention_focus.dev_mode_share(trainer.model, trainer.src_vocab,
                                               trainer.tgt_vocab, trainer.dev)
    if trainer.config.train.decay == "plateau":
        _update_plateau(p, trainer.config.train, result.bleu,
                        best=best_before if not improved else -1.0)
    logging.info("step %d dev: loss %.3f, ppl %.2f, BLEU %.2f, chrF %.2f%s (%.0f s)",
                 int(p.step), result.loss, result.perplexity, result.bleu, result.chrf,
                 " (new best)" if improved else "", time.time() - start)
    warning = attention_focus.collapse_warning(int(p.step), share)
    if warning:
        logging.warning(warning)
    trainer.log_record({"kind": "eval", "step": int(p.step), **result._asdict(),
                        "attention_mode_share": share})
    return result


def _update_plateau(progress, train_config, bleu, best):
    """Reduce-on-plateau: counts evaluations without a gain and scales the rate down."""
    t = train_config
    plateau = schedule.Plateau(t.plateau_patience, t.decay_factor, best=best,
                               bad_evals=int(progress.plateau_bad_evals),
                               scale=float(progress.plateau_scale))
    plateau.update(bleu)
    progress.plateau_bad_evals.assign(plateau.bad_evals)
    progress.plateau_scale.assign(plateau.scale)
