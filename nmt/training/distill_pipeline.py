"""The pipeline behind `recipes/multi30k.py --distilled`: teachers side by side, one student.

1. One sentencepiece vocabulary for every run (the teachers decode as an ensemble).
2. Teacher runs with seeds first_seed, first_seed + 1, ... (1, 2, ... by default), side
   by side, each pinned to its own core when there are enough (train_teachers).
3. The student (student_command): the teachers' ensemble translates the training source
   (nmt/training/distill.py); the student trains on those pairs and the original ones, from the
   weights of the teacher with the best dev BLEU or from scratch.

Every stage is a run of a recipe command (`recipe_command(out_dir, *flags) -> argv`) in
its own run dir, so the same command resumes an interrupted pipeline.
"""
import os
import subprocess

from absl import logging

from nmt import model_dir as model_dir_lib
from nmt.data import corpus as corpus_lib, vocab as vocab_lib


def shared_vocab_dir(out_dir, train_prefix, data_config):
    """out_dir/vocab: the sentencepiece model every run copies (trained if missing)."""
    directory = os.path.join(out_dir, "vocab")
    corpus = corpus_lib.read_parallel(corpus_lib.find_corpus_file(train_prefix, data_config.src),
                                      corpus_lib.find_corpus_file(train_prefix, data_config.tgt))
    vocab_lib.ensure_vocabs(directory, corpus.src, corpus.tgt, data_config.vocab_size,
                            joint=data_config.joint_vocab, model_type=data_config.sp_model_type)
    return directory


def pinned_to(core):
    """A preexec_fn that keeps the child process on one CPU core."""
    return lambda: os.sched_setaffinity(0, {core})


def train_teachers(recipe_command, out_dir, vocab_dir, data_config, teachers, minutes,
                   first_seed=1):
    """Runs the teachers side by side, teacher i (from 0) with seed first_seed + i;
    -> their run dirs. A failed one is fatal."""
    cores = sorted(os.sched_getaffinity(0))
    pin = len(cores) >= teachers
    dirs, processes = [], []
    for i in range(teachers):
        teacher_dir = os.path.join(out_dir, f"teacher{i + 1}")
        model_dir_lib.copy_vocabs(vocab_dir, teacher_dir, data_config)
        command = recipe_command(teacher_dir, f"--seed={first_seed + i}", "--noscore_test_sets",
                                 f"--max_time_minutes={minutes}")
        log_path = os.path.join(out_dir, f"teacher{i + 1}.log")
        logging.info("teacher %d%s: %s (log %s)", i + 1, f" on core {cores[i]}" if pin else "",
                     " ".join(command), log_path)
        with open(log_path, "a", encoding="utf-8") as log:
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                              preexec_fn=pinned_to(cores[i]) if pin else None))
        dirs.append(teacher_dir)
    failed = [i + 1 for i, p in enumerate(processes) if p.wait() != 0]
    if failed:
        raise model_dir_lib.ModelDirError(
            f"{os.path.join(out_dir, f'teacher{failed[0]}.log')}: teacher {failed[0]} failed "
            f"(its last lines say why); rerun the same command to resume")
    return dirs


def best_dev_bleu(run_dir):
    """The highest dev BLEU in a run's log.jsonl (-1 if it has none)."""
    records = model_dir_lib.read_log(run_dir)
    return max((r["bleu"] for r in records if r.get("kind") == "eval"), default=-1.0)


def student_command(recipe_command, student_dir, teachers, minutes, init, learning_rate):
    """The student's argv. init="teacher": start from the best teacher's weights at a
    constant `learning_rate`; "scratch": the recipe's own schedule from random weights."""
    command = recipe_command(student_dir, f"--distil_from={','.join(teachers)}",
                             "--pick_on_val", f"--max_time_minutes={minutes}")
    if init == "teacher":
        best = max(teachers, key=best_dev_bleu)
        command += [f"--init_from={best}", f"--learning_rate={learning_rate}",
                    "--warmup_steps=0", "--decay=none"]
    return command
