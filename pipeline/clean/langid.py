"""Batched language identification with py3langid's model.

py3langid classifies one text at a time, walking its byte-level automaton in a Python loop. `BatchLanguageID`
walks the same automaton for a whole batch at once with numpy (one vector step per byte position, the batch
sorted by length so the live texts are a prefix), counts the features in a sparse (text, feature) matrix and
scores them with one sparse product against the same naive-Bayes table: the same decisions and probabilities
as `LanguageIdentifier.classify` (tests/test_clean_filters.py checks this), many times faster per core.
"""

import math

import numpy as np
from scipy.sparse import csr_matrix  # here, not in _scores: imported once before the cleaning workers fork

from pipeline.common.step import StepError

BATCH = 2048
LONG_TEXT = 4096  # bytes
GRID_CELLS = 1 << 20  # bytes of text walked at once: bounds the memory whatever the line lengths


class BatchLanguageID:
    def __init__(self):
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self.model = model
        self.classes = list(model.nb_classes)
        # Views of the model's own arrays where possible: the automaton alone is ~40 MB.
        self.nextmove = np.frombuffer(
            model.tk_nextmove, dtype=np.uint32 if model.tk_nextmove.itemsize == 4 else np.uint64
        )
        self.rowbase = np.asarray(model._rowbase, dtype=np.int64)
        self.output = np.asarray(model.tk_output, dtype=np.int64)
        self.table = np.asarray(model.nb_ptc, dtype=np.float32)
        self.prior = np.asarray(model.nb_pc, dtype=np.float32)
        self.features = self.table.shape[0]
        self.aliases = list(model._alias_pairs)

    def knows(self, lang: str) -> bool:
        return lang in self.classes

    def require(self, lang: str) -> None:
        if not self.knows(lang):
            raise StepError(
                f"language identification has no model for {lang!r}; set cleaning.language-id: false"
            )

    def classify(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """(language, probability) for each text, as py3langid's `classify` with norm_probs."""
        encoded = [self.model._encode(t) for t in texts]
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
        order = np.argsort(-lengths, kind="stable")
        langs = np.empty(len(texts), dtype=object)
        probs = np.zeros(len(texts), dtype=np.float32)
        start = 0
        # Very long texts (a whole document on one line) go through py3langid one by one: the same result,
        # without a vector step per byte of a batch that holds only them.
        while start < len(order) and lengths[order[start]] > LONG_TEXT:
            i = order[start]
            langs[i], probs[i] = self.model.classify(texts[i])
            start += 1
        while start < len(order):
            # texts of similar length together, at most GRID_CELLS bytes of automaton input per chunk
            width = max(int(lengths[order[start]]), 1)
            size = max(1, min(BATCH, GRID_CELLS // width))
            chunk = order[start : start + size]
            scores = self._scores([encoded[i] for i in chunk], lengths[chunk])
            best = scores.argmax(axis=1)
            langs[chunk] = [self.classes[i] for i in best]
            probs[chunk] = scores[np.arange(len(best)), best]
            start += size
        return list(langs), probs

    def _scores(self, encoded: list[bytes], lengths: np.ndarray) -> np.ndarray:
        count = len(encoded)
        order = np.argsort(-lengths, kind="stable")
        sorted_lengths = lengths[order]
        width = int(sorted_lengths[0]) if count else 0
        data = np.frombuffer(b"".join(encoded[i] for i in order), dtype=np.uint8)
        # byte position by text, so that each step reads one contiguous row
        grid = np.zeros((width, count), dtype=np.uint8)
        grid.T[np.arange(width) < sorted_lengths[:, None]] = data
        # live[t] = how many (sorted) texts are longer than t
        live = np.searchsorted(-sorted_lengths, -np.arange(width), side="left")
        state = np.zeros(count, dtype=np.int64)
        rows, feats = [], []
        for position in range(width):
            k = int(live[position])
            state[:k] = self.nextmove[self.rowbase[state[:k]] + grid[position, :k]]
            found = self.output[state[:k]]
            hit = np.flatnonzero(found >= 0)
            if hit.size:
                rows.append(hit)
                feats.append(found[hit])
        if rows:
            rows, feats = np.concatenate(rows), np.concatenate(feats)
            # a sparse (text, feature) count matrix: building it sums the repeated features of a text
            counts = csr_matrix(
                (np.ones(len(rows), dtype=np.float32), (rows, feats)), shape=(count, self.features)
            )
            counts.sum_duplicates()
            np.log1p(counts.data, out=counts.data)
            scores = np.asarray(counts @ self.table, dtype=np.float32)
            has_features = np.diff(counts.indptr) > 0
            scores[has_features] += self.prior
        else:
            scores = np.zeros((count, len(self.classes)), dtype=np.float32)
            has_features = np.zeros(count, dtype=bool)
        # back to the input order, then py3langid's calibration: temperature sqrt(bytes), softmax
        unsorted = np.empty_like(scores)
        unsorted[order] = scores
        scores = unsorted
        has = np.empty_like(has_features)
        has[order] = has_features
        scores[~has] = 0.0
        scale = np.array([1.0 / math.sqrt(n or 1) for n in lengths], dtype=np.float32)
        scores *= scale[:, None]
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
        for i, j in self.aliases:
            scores[:, i] += scores[:, j]
            scores[:, j] = 0.0
        return scores
