"""bench/make_big_corpus.py and bench/bench_training_data.py: the corpus they measure on
is whole reshuffled passes over real pairs, plain and gzip alike; a run's figures are
read from its log as it comes."""
import gzip
import os
import sys

from bench import bench_training_data
from bench import make_big_corpus


def test_passes_repeat_the_pool_each_in_another_order():
    pool = [(f"en {i}", f"de {i}") for i in range(7)]
    pairs = list(make_big_corpus.passes(pool, 17, seed=0))
    assert len(pairs) == 17
    assert sorted(pairs[:7]) == sorted(pairs[7:14]) == pool  # whole passes
    assert pairs[:7] != pairs[7:14]
    assert set(pairs[14:]) <= set(pool) and len(set(pairs[14:])) == 3
    assert list(make_big_corpus.passes(pool, 17, seed=1)) != pairs


def test_without_anki_the_pool_is_multi30k_alone():
    pool = make_big_corpus.pool(anki_dir="")
    assert len(pool) == 29_000
    assert set(pool) < set(make_big_corpus.pool())


def test_plain_and_gzip_files_hold_the_same_aligned_pairs(tmp_path):
    pool = make_big_corpus.pool()
    assert len(pool) == 29_000 + 114_961
    prefix = str(tmp_path / "big")
    num_pairs = len(pool) + 1000
    plain = make_big_corpus.write(prefix, num_pairs, "plain")
    packed = make_big_corpus.write(prefix, num_pairs, "gz")
    with open(plain[0], encoding="utf-8") as f:
        en = f.read().split("\n")[:-1]
    with gzip.open(packed[1], "rt", encoding="utf-8") as f:
        de = f.read().split("\n")[:-1]
    assert len(en) == len(de) == num_pairs
    assert sorted(zip(en[:len(pool)], de[:len(pool)])) == sorted(pool)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]
    before = os.path.getmtime(plain[0])
    make_big_corpus.write(prefix, num_pairs, "plain")  # kept as it is
    assert os.path.getmtime(plain[0]) == before


def test_run_timed_reads_the_data_and_first_step_times_and_the_peak(tmp_path):
    mapped = tmp_path / "mapped"
    mapped.write_bytes(b"x" * (300 << 20))
    script = ("import mmap, sys, time\n"
              "b = bytearray(200 << 20)\n"
              f"f = open({str(mapped)!r}, 'rb')\n"
              "m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n"
              "sum(m[i] for i in range(0, len(m), 4096))\n"
              "print('I training pairs: 3 kept', file=sys.stderr, flush=True)\n"
              "time.sleep(0.5)\n"
              "for s in range(1, 4):\n"
              "    print(f'I step {s} epoch 1: loss 1.0, {100 * s} tgt tokens/s', "
              "file=sys.stderr, flush=True)\n")
    wall, rss, first, speeds, status, data, anon = bench_training_data.run_timed(
        [sys.executable, "-c", script])
    assert status == 0 and speeds == [100.0, 200.0, 300.0]
    assert data < first <= wall and first - data >= 0.4
    assert rss > 500  # its 200 MiB and the 300 MiB file it read through a map
    # the anonymous peak counts the bytearray and leaves out the mapped file's pages
    assert 200 < anon < 400


def test_speed_rounds_resume_each_run_in_turn_and_compare_medians(tmp_path):
    calls = []
    for name, step in (("a", 20), ("b", 7)):
        os.makedirs(tmp_path / name / "ckpt")
        (tmp_path / name / "ckpt" / f"ckpt-{step}.index").write_bytes(b"")
        (tmp_path / name / "ckpt" / "ckpt-3.index").write_bytes(b"")

    def fake_run(args):
        name = [a for a in args if a.startswith("--out_dir=")][0].rsplit("/", 1)[1]
        steps = int([a for a in args if a.startswith("--num_train_steps=")][0].split("=")[1])
        calls.append((name, steps))
        os.rename(tmp_path / name / "ckpt" / f"ckpt-{steps - 10}.index",
                  tmp_path / name / "ckpt" / f"ckpt-{steps}.index")
        base = {"a": 100.0, "b": 90.0}[name] + len(calls)
        return 0, 0, 0, [1.0] * 2 + [base] * 3, 0, 0, 0  # two warm-up steps left out

    medians = bench_training_data.speed_rounds([("a", "/p/a"), ("b", "/p/b")], str(tmp_path),
                                               2, 10, 2, run=fake_run)
    assert calls == [("a", 30), ("b", 17), ("a", 40), ("b", 27)]  # 10 more from the newest
    assert medians == {"a": [101.0, 103.0], "b": [92.0, 94.0]}
    table = bench_training_data.speed_table(medians)
    assert "| b | 92, 94 | 93 | 0.912 |" in table
