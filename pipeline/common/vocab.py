"""The SentencePiece vocabularies of a language pair or of a model: one shared by both languages (`vocab.spm`),
or one per language (`vocab.<lang>.spm`, the config's `spm-vocab-split`). Files named by language hold for both
directions: the backward model reads the same two files the other way round."""

from pathlib import Path

import yaml

from pipeline.common.step import StepError

JOINT = "vocab.spm"


def language_vocab(lang: str) -> str:
    return f"vocab.{lang}.spm"


def vocab_pair(path: Path, src: str, trg: str) -> tuple[Path, Path]:
    """`--vocab` of a step: a file shared by both sides, or a folder (build-vocab's) with `vocab.spm` or with
    `vocab.<src>.spm` and `vocab.<trg>.spm`. Returns (source vocabulary, target vocabulary)."""
    if not path.exists():
        raise StepError(f"the vocabulary {path} does not exist")
    if path.is_file():
        return path, path
    if (path / JOINT).is_file():
        return path / JOINT, path / JOINT
    pair = (path / language_vocab(src), path / language_vocab(trg))
    if all(p.is_file() for p in pair):
        return pair
    raise StepError(f"no vocabulary in {path}: neither {JOINT} nor {pair[0].name} and {pair[1].name}")


def model_vocabs(model_dir: Path, decoder_config: str = "final.model.npz.decoder.yml") -> tuple[Path, Path]:
    """The (source, target) vocabularies a model folder's decoder config names, relative to the folder."""
    path = model_dir / decoder_config
    if not path.is_file():
        raise StepError(f"no decoder config {path}")
    vocabs = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("vocabs")
    if not isinstance(vocabs, list) or len(vocabs) != 2:
        raise StepError(f"{path} names no source and target vocabularies (vocabs: [src, trg])")
    pair = tuple(model_dir / v if not Path(v).is_absolute() else Path(v) for v in vocabs)
    for vocab in pair:
        if not vocab.is_file():
            raise StepError(f"{path} names {vocab}, which does not exist")
    return pair


def vocab_names(pair: tuple[Path, Path], src: str, trg: str) -> list[str]:
    """The file names a model folder keeps its vocabularies under: [vocab.spm, vocab.spm] when both sides share
    one, else [vocab.<src>.spm, vocab.<trg>.spm]."""
    if pair[0] == pair[1] or pair[0].read_bytes() == pair[1].read_bytes():
        return [JOINT, JOINT]
    return [language_vocab(src), language_vocab(trg)]
