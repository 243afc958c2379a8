"""Teacher decoding with CTranslate2 (`experiment.teacher-decoder: ctranslate2`, the reference's setting): the Marian
teacher is converted once with CTranslate2's own Marian converter, then decodes the chunk in batches, n-best
(`num_hypotheses`) where the distillation picks by chrF, on CPU or on the granted GPU.

The converter reads Marian's YAML vocabularies: the model's SentencePiece vocabulary is written in that form
(piece -> id, the ids Marian itself uses with an .spm vocabulary). Output lines have Marian's shape (plain, or
`i ||| hypothesis ||| F0= score ||| score` for an n-best list), so the rest of translate.py does not change.
CTranslate2 decodes one model: an ensemble falls back to Marian (translate.py says so).
"""

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import yaml

from pipeline.common.step import StepError, threads
from pipeline.common.vocab import model_vocabs

logger = logging.getLogger("translate")
BATCH_LINES = 64


def write_marian_vocab(spm_model: Path, destination: Path) -> None:
    """The SentencePiece model's pieces as a Marian YAML vocabulary (`"piece": id` a line)."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(spm_model))
    with open(destination, "w", encoding="utf-8") as out:
        for index in range(processor.get_piece_size()):
            out.write(f"{json.dumps(processor.id_to_piece(index), ensure_ascii=False)}: {index}\n")


def without_padding(model: Path, destination: Path) -> Path:
    """A copy of a Marian model whose embedded options (`special:model.yml`) end without the NUL bytes Marian
    pads them with, which the converter's YAML reader refuses."""
    import numpy as np

    with np.load(model) as weights:
        arrays = {name: weights[name] for name in weights.files}
    options = bytes(arrays["special:model.yml"]).rstrip(b"\0 ")
    arrays["special:model.yml"] = np.frombuffer(options, dtype=np.int8)
    np.savez(destination, **arrays)
    return destination


def convert(model_dir: Path, work: Path) -> Path:
    """The CTranslate2 form of the Marian model in `model_dir`, converted once into `work` (kept for resumes)."""
    from ctranslate2.converters import MarianConverter

    target = work / "ctranslate2-model"
    if (target / "model.bin").exists():
        return target
    staging = work / "ctranslate2-model.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    yaml_vocabs = []
    for side, spm in zip(("src", "trg"), model_vocabs(model_dir), strict=True):
        yaml_vocabs.append(staging / f"vocab.{side}.yml")
        write_marian_vocab(spm, yaml_vocabs[-1])
    model = without_padding(model_dir / "final.model.npz", staging / "model.npz")
    try:
        MarianConverter(str(model), [str(v) for v in yaml_vocabs]).convert(str(staging / "model"), force=True)
    except (
        ValueError,
        KeyError,
    ) as error:  # the converter's ConfigurationChecker names the unsupported option
        raise StepError(f"CTranslate2 cannot convert the teacher in {model_dir}: {error}") from None
    os.replace(staging / "model", target)
    shutil.rmtree(staging, ignore_errors=True)
    logger.info("converted %s to CTranslate2 (%s)", model_dir, target)
    return target


def device() -> tuple[str, list[int]]:
    gpus = os.environ.get("GPUS", "").split()
    return ("cuda", [int(g) for g in gpus]) if gpus else ("cpu", [0])


def translate_lines(
    model_dir: Path, work: Path, sources: Iterator[str], nbest: bool, options: dict
) -> Iterator[str]:
    """Translations of `sources` in order, in Marian's output shape; `options` are Marian's decoding options
    (beam-size, normalize, max-length-factor) as the decoder config and the stage's marian-args give them."""
    import ctranslate2
    import sentencepiece

    model = convert(model_dir, work)
    kind, indexes = device()
    translator = ctranslate2.Translator(
        str(model),
        device=kind,
        device_index=indexes,
        inter_threads=1,
        intra_threads=threads() if kind == "cpu" else 1,
    )
    src_vocab, trg_vocab = model_vocabs(model_dir)
    pieces = sentencepiece.SentencePieceProcessor(model_file=str(src_vocab))
    target_pieces = sentencepiece.SentencePieceProcessor(model_file=str(trg_vocab))
    beam = int(options.get("beam-size", 4))
    length_penalty = float(options.get("normalize", 1.0) or 0.0)
    factor = float(options.get("max-length-factor", 3))
    number, batch = 0, []

    def flush():
        nonlocal number
        tokens = [pieces.encode(line, out_type=str) for line in batch]
        longest = max((len(t) for t in tokens), default=1)
        results = translator.translate_batch(
            tokens,
            beam_size=beam,
            num_hypotheses=beam if nbest else 1,
            length_penalty=length_penalty,
            max_decoding_length=max(2, int(factor * longest) + 1),
            return_scores=True,
        )
        for result in results:
            for hypothesis, score in zip(result.hypotheses, result.scores, strict=True):
                text = target_pieces.decode_pieces(hypothesis)
                yield f"{number} ||| {text} ||| F0= {score:.6f} ||| {score:.6f}" if nbest else text
            number += 1
        batch.clear()

    for line in sources:
        batch.append(line.replace("\n", " "))
        if len(batch) == BATCH_LINES:
            yield from flush()
    if batch:
        yield from flush()


def decoder_options(decoder_config: Path, extra: dict) -> dict:
    """The Marian decoding options CTranslate2 follows: the model's decoder config, then the stage's args."""
    try:
        config = yaml.safe_load(decoder_config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise StepError(f"cannot read {decoder_config}: {error}") from None
    return {**config, **extra}
