"""Writes a large parallel corpus of real text by repeating the shipped corpora.

    python -m bench.make_big_corpus --pairs=1000000 --out_prefix=/tmp/big1m
    python -m bench.make_big_corpus --pairs=10000000 --out_prefix=/tmp/big10m --formats=gz

The pool is the Multi30k English-German training set (data/multi30k, 29,000 pairs)
and the Anki English-Spanish training set (../shared/data/anki-spa-eng, 114,961
pairs): 143,961 real pairs of two kinds, image captions and short everyday
sentences. The output repeats the pool in passes, each pass in a new shuffled
order (seeded by --seed and the pass number), and the last pass is cut at --pairs.
The source side is English; the target side mixes German and Spanish (a mixture
that is harmless for measuring the data path and the training speed, not a model
anyone should use).

Each format is written as OUT_PREFIX.en and OUT_PREFIX.de (plain) or .en.gz and
.de.gz (gzip), streamed, so memory holds only the pool. A format whose files exist
with the same line count is kept as it is (rerunning is cheap). Files are written
to .partial names and renamed when whole.
"""
import gzip
import os
import random

from absl import app, flags

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MULTI30K = os.path.join(ROOT, "data", "multi30k")
ANKI = os.path.join(ROOT, "..", "shared", "data", "anki-spa-eng")
SRC, TGT = "en", "de"

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_integer("pairs", 1_000_000, "Sentence pairs to write.")
    flags.DEFINE_string("out_prefix", None, "Writes OUT_PREFIX.en[.gz] and OUT_PREFIX.de[.gz].")
    flags.DEFINE_list("formats", ["plain", "gz"], "plain and/or gz.")
    flags.DEFINE_integer("seed", 0, "Seeds the order of every pass.")
    flags.DEFINE_string("anki_dir", ANKI, "The anki-spa-eng data dir; empty: Multi30k alone, "
                        "whose sentence lengths match a run on Multi30k (for comparing speed).")
    flags.mark_flag_as_required("out_prefix")


def _read(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def pool(anki_dir=ANKI):
    """-> [(English, German or Spanish)]: the pairs every pass repeats."""
    pairs = list(zip(_read(os.path.join(MULTI30K, "train.en.gz")),
                     _read(os.path.join(MULTI30K, "train.de.gz"))))
    if anki_dir:
        pairs += zip(_read(os.path.join(anki_dir, "train.en.gz")),
                     _read(os.path.join(anki_dir, "train.es.gz")))
    return pairs


def passes(pairs, num_pairs, seed):
    """num_pairs pairs: the pool again and again, each pass in another order."""
    written, number = 0, 0
    while written < num_pairs:
        order = list(range(len(pairs)))
        random.Random(f"{seed}-{number}").shuffle(order)
        for i in order[:num_pairs - written]:
            yield pairs[i]
        written += min(len(order), num_pairs - written)
        number += 1


def _line_count(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 22), b""))


def write(out_prefix, num_pairs, fmt, seed=0, anki_dir=ANKI):
    """Writes one format of the corpus (see the module docstring) -> its two paths."""
    suffix = ".gz" if fmt == "gz" else ""
    paths = [f"{out_prefix}.{lang}{suffix}" for lang in (SRC, TGT)]
    if all(os.path.isfile(p) and _line_count(p) == num_pairs for p in paths):
        return paths
    opener = (lambda p: gzip.open(p, "wt", encoding="utf-8", compresslevel=1)) if suffix else (
        lambda p: open(p, "w", encoding="utf-8"))
    partials = [p + ".partial" for p in paths]
    files = [opener(p) for p in partials]
    try:
        batch = []
        for pair in passes(pool(anki_dir), num_pairs, seed):
            batch.append(pair)
            if len(batch) == 65536:
                for f, side in zip(files, zip(*batch)):
                    f.write("\n".join(side) + "\n")
                batch = []
        if batch:
            for f, side in zip(files, zip(*batch)):
                f.write("\n".join(side) + "\n")
    finally:
        for f in files:
            f.close()
    for partial, path in zip(partials, paths):
        os.replace(partial, path)
    return paths


def main(argv):
    del argv
    for fmt in FLAGS.formats:
        if fmt not in ("plain", "gz"):
            raise app.UsageError(f"--formats: plain or gz (got {fmt})")
        for path in write(FLAGS.out_prefix, FLAGS.pairs, fmt, FLAGS.seed, FLAGS.anki_dir):
            print(f"{path}: {os.path.getsize(path) / 2**20:.0f} MiB")


if __name__ == "__main__":
    define_flags()
    app.run(main)
