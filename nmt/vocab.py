"""Subword vocabularies with sentencepiece (Kudo & Richardson 2018).

Text -> pieces -> ids and back. The special ids are fixed for every model this
toolkit trains; `Vocab.load` refuses a model that uses other ids. Sentencepiece
normalises text (nmt_nfkc: NFKC, runs of spaces collapsed, outer spaces
dropped), so `decode(encode(line))` is the normalised line, and equals `line`
for ordinary text. With byte fallback (the default) characters never seen in
training are encoded as UTF-8 byte pieces, so they round-trip instead of
becoming <unk>.
"""
import os
import tempfile
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import sentencepiece as spm
from absl import logging

from nmt import corpus

PAD_ID = 0  # padding, never a target
UNK_ID = 1  # unknown piece (rare with byte fallback)
BOS_ID = 2  # first decoder input
EOS_ID = 3  # ends every target sentence
NUM_SPECIAL = 4
NUM_BYTE_PIECES = 256

MODEL_TYPES = ("unigram", "bpe")
JOINT_NAME = "spm"  # <model_dir>/spm.model
SRC_NAME = "spm.src"  # <model_dir>/spm.src.model
TGT_NAME = "spm.tgt"  # <model_dir>/spm.tgt.model

TextOrPath = Union[str, os.PathLike]


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
                        input_sentence_size: int = 1_000_000,
                        byte_fallback: bool = True, seed: int = 0) -> str:
    """Trains a sentencepiece model and returns the path `model_prefix.model`.

    texts: sentences (`str`) and/or corpus files (`pathlib.Path`, plain or .gz).
    vocab_size is a soft limit (hard_vocab_limit=False) so tiny corpora train;
    it is raised to the minimum the corpus needs (every character at coverage
    1.0, the 4 special pieces and, with byte_fallback, 256 byte pieces).
    input_sentence_size: at most this many sentences, sampled, are used.
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES} (got {model_type!r})")
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be positive (got {vocab_size})")
    with tempfile.TemporaryDirectory() as tmp:
        input_path = os.path.join(tmp, "sentences.txt")
        chars, num_lines = set(), 0
        with open(input_path, "w", encoding="utf-8") as f:
            for line in _sentences(texts):
                line = line.replace("\n", " ")
                chars.update(line)
                f.write(line + "\n")
                num_lines += 1
        if num_lines == 0:
            raise ValueError(f"no sentences to train the vocabulary {model_prefix}")
        chars.discard(" ")
        minimum = len(chars) + NUM_SPECIAL + 1 + (NUM_BYTE_PIECES if byte_fallback else 0)
        if vocab_size < minimum:
            logging.warning("vocab_size %d is below the %d this corpus needs; using %d",
                            vocab_size, minimum, minimum)
            vocab_size = minimum
        spm.set_random_generator_seed(seed)
        spm.SentencePieceTrainer.train(
            input=input_path, model_prefix=model_prefix, vocab_size=vocab_size,
            model_type=model_type, character_coverage=character_coverage,
            input_sentence_size=input_sentence_size, shuffle_input_sentence=True,
            byte_fallback=byte_fallback, hard_vocab_limit=False,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            num_threads=2, minloglevel=2)
    return model_prefix + ".model"


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
        e.g. two runs' models trained on the same corpus (nmt.ensemble, init_from)."""
        from sentencepiece import sentencepiece_model_pb2
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(self._sp.serialized_model_proto())
        proto.trainer_spec.ClearField("input")
        proto.trainer_spec.ClearField("model_prefix")
        return proto.SerializeToString(deterministic=True)

    def __repr__(self) -> str:
        return f"Vocab({self.path!r}, size={self.size})"


def ensure_vocabs(model_dir: str, src_lines: Sequence[str], tgt_lines: Sequence[str],
                  vocab_size: int, joint: bool = True, model_type: str = "unigram",
                  byte_fallback: bool = True, seed: int = 0) -> Tuple[Vocab, Vocab]:
    """Loads the model's vocabularies from model_dir, training them first if absent.

    joint: one model `spm.model` trained on both sides; the returned source and
    target vocab are the same object. Otherwise `spm.src.model`, `spm.tgt.model`.
    """
    os.makedirs(model_dir, exist_ok=True)

    def ensure(name: str, texts: Iterable[str]) -> Vocab:
        prefix = os.path.join(model_dir, name)
        if not os.path.isfile(prefix + ".model"):
            logging.info("training sentencepiece %s.model (%s, %d pieces)",
                         prefix, model_type, vocab_size)
            train_sentencepiece(texts, prefix, vocab_size, model_type=model_type,
                                byte_fallback=byte_fallback, seed=seed)
        return Vocab.load(prefix + ".model")

    if joint:
        vocab = ensure(JOINT_NAME, list(src_lines) + list(tgt_lines))
        return vocab, vocab
    return ensure(SRC_NAME, src_lines), ensure(TGT_NAME, tgt_lines)
