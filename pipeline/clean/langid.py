"""Batched language identification with py3langid's model, compiled.

py3langid classifies one text at a time, walking its byte-level automaton in a Python loop and scoring the
features it hits against a naive-Bayes table. `BatchLanguageID` does the same for a whole batch in two
numba-compiled loops: the automaton walk (four texts at once, so that their table lookups overlap in memory)
and the scoring (log1p of each feature's count times the feature's row of the table), softmax and decision. The decisions and
probabilities are py3langid's `LanguageIdentifier.classify` with norm_probs (tests/test_clean_filters.py checks
this on real text, long lines and edge cases).

py3langid ships its model LZMA-compressed, which takes 0.55 s to unpack in every process. The unpacked arrays
are cached once per model file (by its SHA-256) under TRANSLATIONS_CACHE (default ~/.cache/translations) and
memory-mapped from there; where that folder cannot be written, the model is unpacked in memory as before.
"""

import contextlib
import hashlib
import math
import os
import unicodedata
from pathlib import Path

import numpy as np
from numba import njit

from pipeline.common.step import StepError

CACHE_ENV = "TRANSLATIONS_CACHE"
_ARRAYS = ("nextmove", "rowbase", "output", "table", "prior")


@njit(cache=True, nogil=True)
def _walk_one(data, start, end, nextmove, rowbase, output, features, at):
    state, found = 0, 0
    for p in range(start, end):
        state = nextmove[rowbase[state] + data[p]]
        if output[state] >= 0:
            features[at + found] = output[state]
            found += 1
    return found


@njit(cache=True, nogil=True)
def _walk(data, offsets, nextmove, rowbase, output, features, found):
    """The features the automaton hits in each text: text t's go to features[offsets[t]:], found[t] of them
    (a text hits at most one feature per byte). Four texts walk side by side, so that their independent
    chains of table lookups overlap in memory (2.5x faster than one text at a time)."""
    texts = len(offsets) - 1
    first = 0
    while first + 4 <= texts:
        a, b, c, d = offsets[first], offsets[first + 1], offsets[first + 2], offsets[first + 3]
        a_end, b_end, c_end, d_end = b, c, d, offsets[first + 4]
        sa = sb = sc = sd = 0
        na = nb = nc = nd = 0
        steps = max(a_end - a, b_end - b, c_end - c, d_end - d)
        for step in range(steps):
            if a + step < a_end:
                sa = nextmove[rowbase[sa] + data[a + step]]
                if output[sa] >= 0:
                    features[a + na] = output[sa]
                    na += 1
            if b + step < b_end:
                sb = nextmove[rowbase[sb] + data[b + step]]
                if output[sb] >= 0:
                    features[b + nb] = output[sb]
                    nb += 1
            if c + step < c_end:
                sc = nextmove[rowbase[sc] + data[c + step]]
                if output[sc] >= 0:
                    features[c + nc] = output[sc]
                    nc += 1
            if d + step < d_end:
                sd = nextmove[rowbase[sd] + data[d + step]]
                if output[sd] >= 0:
                    features[d + nd] = output[sd]
                    nd += 1
        found[first], found[first + 1], found[first + 2], found[first + 3] = na, nb, nc, nd
        first += 4
    for t in range(first, texts):
        found[t] = _walk_one(
            data, offsets[t], offsets[t + 1], nextmove, rowbase, output, features, offsets[t]
        )


@njit(cache=True, nogil=True, fastmath=False)
def _decide(offsets, features, found, table, prior, aliases, counts, best, probability):
    """py3langid's decision for each text: its raw scores (prior + sum over the distinct features of
    log1p(count) x the feature's row; 0 without features), scaled by 1/sqrt(bytes), softmax, each aliased
    label's probability folded into its first column; best[t] is the most probable class, probability[t] its
    probability. `counts` is zero on entry and on return."""
    classes = table.shape[1]
    scores = np.empty(classes, dtype=np.float32)
    for t in range(len(found)):
        start, n = offsets[t], found[t]
        if n == 0:
            scores[:] = 0.0
        else:
            for k in range(start, start + n):
                counts[features[k]] += 1
            scores[:] = prior
            for k in range(start, start + n):
                feature = features[k]
                count = counts[feature]
                if count:
                    weight = np.float32(math.log1p(count))
                    counts[feature] = 0
                    for c in range(classes):
                        scores[c] += weight * table[feature, c]
        scale = np.float32(1.0 / math.sqrt(max(offsets[t + 1] - start, 1)))
        top = -np.inf
        for c in range(classes):
            scores[c] *= scale
            top = max(top, scores[c])
        total = 0.0
        for c in range(classes):
            # most classes trail the top by far more than float32 can tell from 0 in the sum: skip their exp
            scores[c] = math.exp(scores[c] - top) if scores[c] - top > -40.0 else 0.0
            total += scores[c]
        for a in range(len(aliases)):
            scores[aliases[a, 0]] += scores[aliases[a, 1]]
            scores[aliases[a, 1]] = 0.0
        winner = 0
        for c in range(1, classes):
            if scores[c] > scores[winner]:
                winner = c
        best[t] = winner
        probability[t] = scores[winner] / total


def cache_folder() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "translations")


def _unpacked_model(model_file: Path) -> dict:
    from py3langid.modelio import load_model

    ptc, pc, classes, nextmove, row, output = load_model(model_file)
    return {
        "nextmove": np.frombuffer(nextmove, dtype=nextmove.typecode),  # array.array('H' or 'I')
        "rowbase": np.frombuffer(row, dtype=row.typecode).astype(np.int64) << 8,
        "output": np.asarray(output, dtype=np.int32),
        "table": np.ascontiguousarray(
            ptc, dtype=np.float32
        ),  # float16 in the file; py3langid computes in float32
        "prior": np.asarray(pc, dtype=np.float32),
        "classes": np.array(classes),
    }


def load_model_arrays() -> dict:
    """py3langid's model as arrays: memory-mapped from the cache, written there the first time."""
    from py3langid.langid import MODEL_DIR, MODEL_FILE

    model_file = MODEL_DIR / MODEL_FILE
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()[:16]
    folder = cache_folder() / f"py3langid-{digest}"
    try:
        return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in (*_ARRAYS, "classes")}
    except (OSError, ValueError):
        pass
    arrays = _unpacked_model(model_file)
    with contextlib.suppress(OSError):
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(f"{folder}.{os.getpid()}.tmp")
        staging.mkdir(exist_ok=True)
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array)
        try:
            staging.rename(folder)  # atomic: a reader sees all the arrays or none
        except OSError:  # another process got there first
            for file in staging.iterdir():
                file.unlink()
            staging.rmdir()
    return arrays


def _encoded(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The bytes py3langid classifies (upper-case texts lowered, NFC, UTF-8) of every text, concatenated, and
    the offsets where each starts (and where the last ends)."""
    texts = [t.lower() if t.isupper() else t for t in texts]
    joined = "\n".join(texts)
    if joined.count("\n") == len(texts) - 1:
        # one call for the batch: NFC never composes across a line break, so this is NFC text by text (and
        # ASCII text is NFC: only the others need checking)
        if not joined.isascii() and not unicodedata.is_normalized(
            "NFC", "\n".join(t for t in texts if not t.isascii())
        ):
            joined = unicodedata.normalize("NFC", joined)
        data = np.frombuffer(joined.encode("utf-8", "surrogatepass"), dtype=np.uint8)
        breaks = np.flatnonzero(data == 10)
        # text t starts after the t-th break; without the t breaks before it, t bytes earlier
        offsets = np.empty(len(texts) + 1, dtype=np.int64)
        offsets[0], offsets[1:-1], offsets[-1] = 0, breaks + 1, len(data) + 1
        offsets -= np.arange(len(texts) + 1)
        data = np.delete(data, breaks)
        return data, offsets
    encoded = [unicodedata.normalize("NFC", t).encode("utf-8", "surrogatepass") for t in texts]
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


class BatchLanguageID:
    def __init__(self):
        arrays = load_model_arrays()
        self.classes = [str(c) for c in arrays["classes"]]
        self.nextmove, self.rowbase, self.output = arrays["nextmove"], arrays["rowbase"], arrays["output"]
        self.table, self.prior = arrays["table"], arrays["prior"]
        # (first column, duplicate column) of a label listed twice, as py3langid folds them
        first, aliases = {}, []
        for i, c in enumerate(self.classes):
            if c in first:
                aliases.append((first[c], i))
            else:
                first.setdefault(c, i)
        self.aliases = np.array(aliases, dtype=np.int64).reshape(-1, 2)
        self._counts = np.zeros(self.table.shape[0], dtype=np.int32)
        self.classify(["compile the loops now, before any worker forks"])

    def knows(self, lang: str) -> bool:
        return lang in self.classes

    def require(self, lang: str) -> None:
        if not self.knows(lang):
            raise StepError(
                f"language identification has no model for {lang!r}; set cleaning.language-id: false"
            )

    def classify(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """(language, probability) for each text, as py3langid's `classify` with norm_probs."""
        best, probabilities = self.classify_indices(texts)
        return [self.classes[i] for i in best], probabilities

    def index(self, lang: str) -> int:
        """The class index classify_indices gives for `lang`."""
        return self.classes.index(lang)

    def classify_indices(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(class index, probability) for each text: classify's answers as arrays."""
        if not texts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        data, offsets = _encoded(texts)
        features = np.empty(max(len(data), 1), dtype=np.int32)
        found = np.empty(len(texts), dtype=np.int64)
        _walk(data, offsets, self.nextmove, self.rowbase, self.output, features, found)
        best = np.empty(len(texts), dtype=np.int64)
        probability = np.empty(len(texts), dtype=np.float32)
        _decide(
            offsets, features, found, self.table, self.prior, self.aliases, self._counts, best, probability
        )
        return best, probability
