"""Subword vocabularies with sentencepiece (Kudo & Richardson 2018).

Text -> pieces -> ids and back. The special ids are fixed for every model this
toolkit trains; `Vocab.load` refuses a model that uses other ids. Sentencepiece
normalises text (nmt_nfkc: NFKC, runs of spaces collapsed, outer spaces
dropped), so `decode(encode(line))` is the normalised line, and equals `line`
for ordinary text. With byte fallback (the default) characters never seen in
training are encoded as UTF-8 byte pieces, so they round-trip instead of
becoming <unk>.
"""
import itertools
import math
import os
import random
import shutil
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, TypeVar, Union

import sentencepiece as spm
from absl import logging

from nmt import files
from nmt.data import corpus

PAD_ID = 0  # padding, never a target
UNK_ID = 1  # unknown piece (rare with byte fallback)
BOS_ID = 2  # first decoder input
EOS_ID = 3  # ends every target sentence
NUM_SPECIAL = 4
NUM_BYTE_PIECES = 256

SAMPLE_SIZE = 300_000  # sentences sentencepiece trains on by default (DataConfig.spm_sample_size)
MODEL_TYPES = ("unigram", "bpe")
JOINT_NAME = "spm"  # <model_dir>/spm.model
SRC_NAME = "spm.src"  # <model_dir>/spm.src.model
TGT_NAME = "spm.tgt"  # <model_dir>/spm.tgt.model

TextOrPath = Union[str, os.PathLike]
T = TypeVar("T")


def _sentences(texts: Iterable[TextOrPath]) -> Iterable[str]:
    """A `str` is a sentence; an `os.PathLike` is a corpus file (.gz too)."""
    for item in texts:
        if isinstance(item, os.PathLike):
            yield from corpus.read_lines(os.fspath(item))
        elif isinstance(item, str):
            yield item
        else:
            raise TypeError(f"expected str sentence or os.PathLike file, got {type(item)}")


def train_sentencepiece(texts: Iterable[TextOrPath], model_prefix: str,
                        vocab_size: int, model_type: str = "unigram",
                        character_coverage: float = 1.0,
                        input_sentence_size: int = SAMPLE_SIZE,
                        byte_fallback: bool = True, seed: int = 0,
                        num_threads: int = 0) -> str:
    """Trains a sentencepiece model and returns the path `model_prefix.model`.

    texts: sentences (`str`) and/or corpus files (`pathlib.Path`, plain or .gz); they
    are held in memory and handed to sentencepiece as an iterator (no copy on disk), so
    pass a sample of a large corpus (`sample_pairs`).
    vocab_size is a soft limit (hard_vocab_limit=False) so tiny corpora train;
    it is raised to the minimum the corpus needs (every character at coverage
    1.0, the 4 special pieces and, with byte_fallback, 256 byte pieces).
    input_sentence_size: at most this many sentences, sampled, are used.
    num_threads: sentencepiece's trainer threads; 0: one per CPU core.
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES} (got {model_type!r})")
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be positive (got {vocab_size})")
    sentences = [line.replace("\n", " ") for line in _sentences(texts)]
    if not sentences:
        raise ValueError(f"no sentences to train the vocabulary {model_prefix}")
    chars = set().union(*map(set, sentences))
    chars.discard(" ")
    minimum = len(chars) + NUM_SPECIAL + 1 + (NUM_BYTE_PIECES if byte_fallback else 0)
    if vocab_size < minimum:
        logging.warning("vocab_size %d is below the %d this corpus needs; using %d",
                        vocab_size, minimum, minimum)
        vocab_size = minimum
    spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_prefix=model_prefix, vocab_size=vocab_size,
        model_type=model_type, character_coverage=character_coverage,
        input_sentence_size=input_sentence_size, shuffle_input_sentence=True,
        byte_fallback=byte_fallback, hard_vocab_limit=False,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        num_threads=num_threads or os.cpu_count() or 1, minloglevel=2)
    return model_prefix + ".model"


def _uniform(rng: random.Random) -> float:
    """A draw from the open interval (0, 1), so that its log is finite and negative."""
    while True:
        u = rng.random()
        if u > 0.0:
            return u


def sample_pairs(pairs: Iterable[T], k: int, seed: int = 0) -> List[T]:
    """k items drawn uniformly without replacement from `pairs` (all of them if fewer),
    in one pass holding only the k (reservoir sampling, Li 1994's Algorithm L: it
    draws how many items to skip, not a number per item)."""
    if k < 1:
        raise ValueError(f"the sample size must be >= 1 (got {k})")
    rng = random.Random(seed)
    items = iter(pairs)
    reservoir = list(itertools.islice(items, k))
    if len(reservoir) < k:
        return reservoir
    w = math.exp(math.log(_uniform(rng)) / k)
    while w < 1.0:
        skip = int(math.log(_uniform(rng)) / math.log1p(-w))
        item = next(itertools.islice(items, skip, skip + 1), _END)
        if item is _END:
            break
        reservoir[rng.randrange(k)] = item
        w *= math.exp(math.log(_uniform(rng)) / k)
    return reservoir


_END = object()


class Vocab:
    """A loaded sentencepiece model with this toolkit's special ids."""

    def __init__(self, processor: spm.SentencePieceProcessor, path: str = "<memory>"):
        ids = (processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id())
        if ids != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise ValueError(f"{path}: special ids (pad, unk, bos, eos) must be "
                             f"{(PAD_ID, UNK_ID, BOS_ID, EOS_ID)} (got {ids})")
        self._sp = processor
        self.path = path

    @classmethod
    def load(cls, path: str) -> "Vocab":
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no sentencepiece model {path}")
        return cls(spm.SentencePieceProcessor(model_file=path), path)

    @property
    def size(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, lines: Sequence[str], sample_alpha: float = 0.0,
               seed: Optional[int] = None) -> List[List[int]]:
        """Ids of each line, without BOS/EOS.

        sample_alpha > 0 samples a segmentation (subword regularisation, Kudo
        2018; BPE-dropout with probability alpha for bpe models). seed, if
        given, seeds sentencepiece's (process-global) sampler first; sampling
        is single-threaded so the same seed gives the same segmentation.
        """
        if isinstance(lines, str):
            raise TypeError("encode takes a list of lines, not one str")
        if sample_alpha > 0.0:
            if seed is not None:
                spm.set_random_generator_seed(seed)
            return self._sp.encode(list(lines), out_type=int, enable_sampling=True,
                                   alpha=sample_alpha, nbest_size=-1, num_threads=1)
        return self._sp.encode(list(lines), out_type=int)

    def decode(self, ids: Iterable[int]) -> str:
        """Detokenised text of ids up to the first EOS; PAD and BOS are dropped."""
        kept = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                kept.append(i)
        return self._sp.decode(kept)

    def pieces(self, ids: Iterable[int]) -> List[str]:
        """The piece string of every id (specials included), for display."""
        return [self._sp.id_to_piece(int(i)) for i in ids]

    def fingerprint(self) -> bytes:
        """The model without where it was trained from and written to (its trainer spec's
        input files and prefix): equal for vocabularies that cut and number text alike,
        e.g. two runs' models trained on the same corpus (nmt.decode.ensemble, init_from)."""
        from sentencepiece import sentencepiece_model_pb2
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(self._sp.serialized_model_proto())
        proto.trainer_spec.ClearField("input")
        proto.trainer_spec.ClearField("model_prefix")
        return proto.SerializeToString(deterministic=True)

    def __repr__(self) -> str:
        return f"Vocab({self.path!r}, size={self.size})"


def vocab_names(joint: bool) -> List[str]:
    """The run dir's model names: one joint model, or one per side."""
    return [JOINT_NAME] if joint else [SRC_NAME, TGT_NAME]


def install_models(model_dir: str, spm_model: str, joint: bool) -> None:
    """Copies the given sentencepiece model(s) (DataConfig.spm_model: PATH, or
    SRC_PATH,TGT_PATH) into model_dir. A model already there (a run being resumed)
    must cut and number text alike, else a one-line CorpusError."""
    os.makedirs(model_dir, exist_ok=True)
    for path, name in zip(spm_model.split(","), vocab_names(joint)):
        try:
            given = Vocab.load(path)
        except (OSError, RuntimeError, ValueError) as e:
            raise corpus.CorpusError(f"--spm_model: {path}: not a usable sentencepiece "
                                     f"model ({e})") from None
        target = os.path.join(model_dir, name + ".model")
        if os.path.isfile(target):
            if Vocab.load(target).fingerprint() != given.fingerprint():
                raise corpus.CorpusError(
                    f"--spm_model: {path} does not fit the run in {model_dir}, whose "
                    f"{name}.model differs; use a new --model_dir or drop --spm_model")
            continue
        with open(path, "rb") as given_file, files.atomic_open(target, "wb") as out:
            shutil.copyfileobj(given_file, out)  # whole or not at all


def ensure_vocabs_from_pairs(model_dir: str, pairs: Callable[[], Iterable[Tuple[str, str]]],
                             vocab_size: int, joint: bool = True, model_type: str = "unigram",
                             byte_fallback: bool = True, seed: int = 0,
                             sample_size: int = SAMPLE_SIZE,
                             threads: int = 0) -> Tuple[Vocab, Vocab]:
    """Loads the model's vocabularies from model_dir, training the missing ones first
    on `sample_size` sentences drawn uniformly from `pairs()` (called only then; one
    pass). joint: one model `spm.model` on both sides (sample_size / 2 pairs); the
    returned source and target vocab are the same object. Else spm.src/spm.tgt.model."""
    os.makedirs(model_dir, exist_ok=True)
    paths = [os.path.join(model_dir, name) for name in vocab_names(joint)]
    missing = [p for p in paths if not os.path.isfile(p + ".model")]
    if missing:
        sample = sample_pairs(pairs(), -(-sample_size // 2) if joint else sample_size, seed)
        sides = [[pair[0] for pair in sample], [pair[1] for pair in sample]]
        if joint:  # all sources, then all targets
            sides = [sides[0] + sides[1]]
        for prefix, sentences in zip(paths, sides):
            if prefix in missing:
                logging.info("training sentencepiece %s.model (%s, %d pieces) on %d sampled "
                             "sentences", prefix, model_type, vocab_size, len(sentences))
                train_sentencepiece(sentences, prefix, vocab_size, model_type=model_type,
                                    input_sentence_size=sample_size,
                                    byte_fallback=byte_fallback, seed=seed, num_threads=threads)
        del sample, sides
    vocabs = [Vocab.load(p + ".model") for p in paths]
    return vocabs[0], vocabs[-1]


def ensure_vocabs(model_dir: str, src_lines: Sequence[str], tgt_lines: Sequence[str],
                  vocab_size: int, joint: bool = True, model_type: str = "unigram",
                  byte_fallback: bool = True, seed: int = 0, sample_size: int = SAMPLE_SIZE,
                  threads: int = 0) -> Tuple[Vocab, Vocab]:
    """`ensure_vocabs_from_pairs` on sentences in memory (src_lines[i] and tgt_lines[i]
    a pair)."""
    if len(src_lines) != len(tgt_lines):
        raise ValueError(f"{len(src_lines)} source and {len(tgt_lines)} target sentences")
    return ensure_vocabs_from_pairs(model_dir, lambda: zip(src_lines, tgt_lines), vocab_size,
                                    joint, model_type, byte_fallback, seed, sample_size, threads)
