"""Scorers for the monocleaner step: given a block of sentences, a fluency score in [0, 1] per sentence.

`Monocleaner` scores with the monocleaner package's own language-model filter (`monocleaner.lm`: the pack's
KenLM character model, its perplexity mapped to [0, 1] by the clean/noisy statistics in the pack's
metadata.yaml), as `monocleaner --disable_hardrules --disable_lang_ident` does (our cleaning step ran the rules
and language ID). It runs in-process, so it needs neither monocleaner's command-line wrapper nor fastspell
(whose pinned hunspell binding is not on PyPI): `kenlm` and `monocleaner` (installed with `--no-deps`) are
enough, see `scripts/setup.sh`. Blocks are split over THREADS forked workers that share the loaded model.
A scorer is named `module:Class` (`--scorer`), so a worker image may bring another one.
"""

import importlib.util
import multiprocessing
from pathlib import Path

import yaml

from pipeline.common.score_filter import load_class
from pipeline.common.step import StepError

_FILTER = None  # the loaded filter, inherited by the forked workers


def _score_slice(sentences: list[str]) -> list[float]:
    return [_FILTER.score(sentence) for sentence in sentences]


def require_monocleaner() -> None:
    """A StepError that says how to install monocleaner and KenLM when either is missing."""
    missing = [name for name in ("kenlm", "monocleaner") if importlib.util.find_spec(name) is None]
    if missing:
        raise StepError(
            f"monocleaner is not installed here (no module {' or '.join(map(repr, missing))}): run "
            "`TRANSLATIONS_EXTRAS=monocleaner scripts/setup.sh`, or set the dataset's monocleaner threshold to 0 "
            "to skip it"
        )


class Monocleaner:
    def __init__(self, pack_dir: Path, lang: str, threads: int):
        global _FILTER
        require_monocleaner()
        from monocleaner.lm import LMFluencyFilter, LMStats, LMType

        try:
            metadata = yaml.safe_load((pack_dir / "metadata.yaml").read_text(encoding="utf-8"))
            filter_ = LMFluencyFilter(
                LMType[metadata["lm_type"]], metadata["language"], metadata.get("tokenizer_command")
            )
            stats = LMStats(
                *(
                    float(metadata[k])
                    for k in ("clean_mean_perp", "clean_stddev_perp", "noisy_mean_perp", "noisy_stddev_perp")
                )
            )
            filter_.load(str(pack_dir / metadata["lm_file"]), stats)
        except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as error:
            raise StepError(f"the monocleaner pack in {pack_dir} cannot be loaded: {error!r}") from None
        if metadata["language"] != lang.partition("_")[0]:
            raise StepError(f"the monocleaner pack is for language {metadata['language']!r}, not {lang!r}")
        _FILTER = filter_
        self.threads = max(1, threads)
        self.pool = multiprocessing.get_context("fork").Pool(self.threads) if self.threads > 1 else None

    def score(self, sentences: list[str]) -> list[float]:
        if self.pool is None:
            return _score_slice(sentences)
        size = -(-len(sentences) // self.threads)
        slices = [sentences[i : i + size] for i in range(0, len(sentences), size)]
        return [score for part in self.pool.map(_score_slice, slices) for score in part]


def load_scorer(spec: str, pack_dir: Path, lang: str, threads: int):
    return load_class(spec)(pack_dir, lang, threads)
