"""What the parallel and the monolingual cleaning steps share: the filter configs' folder, batching, the pool
of forked workers (each inherits the filters built once in the parent) and the length histograms."""

import re
from collections import Counter, deque
from itertools import islice
from pathlib import Path

from pipeline.clean import filters as filtering

BATCH = 5000
DEFAULT_FILTERS_DIR = Path(__file__).resolve().parent / "opuscleaner" / "configs"
LENGTH_BINS = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144]  # words; the last bin holds everything longer


def dataset_slug(name: str) -> str:
    """The dataset's task-label form (`opus_UNPC/v1.0` -> `opus_UNPC_v1_0`), as filter files are named."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


_BIN_OF = [next((b for b in LENGTH_BINS if n <= b), LENGTH_BINS[-1] + 1) for n in range(LENGTH_BINS[-1] + 2)]


def length_bin(words: int) -> int:
    return _BIN_OF[min(words, len(_BIN_OF) - 1)]


_worker_filters = None


def init_filters(steps, src, trg, overrides):
    """Builds the filters in this process; workers forked afterwards use them."""
    global _worker_filters
    _worker_filters = filtering.build(steps, src, trg, overrides)


def clean_batch(batch):
    kept, removed = filtering.run_batch(_worker_filters, batch)
    lengths = Counter()
    for src, trg in kept:
        lengths[("src", length_bin(src.count(" ") + 1))] += 1
        lengths[("trg", length_bin(trg.count(" ") + 1))] += 1
    return kept, removed, lengths


def ordered_map(pool, function, batches, window: int):
    """pool.imap, but reading at most `window` batches ahead (imap reads its whole input as fast as it can,
    so memory would grow with the corpus when the workers are the slower side)."""
    pending = deque()
    for batch in batches:
        pending.append(pool.apply_async(function, (batch,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def batches(pairs, size):
    while batch := list(islice(pairs, size)):
        yield batch
