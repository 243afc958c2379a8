"""An ordered map over forked worker processes that reads its input only a bounded window ahead."""

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager


def ordered_map(pool, function: Callable, inputs: Iterable, window: int) -> Iterator:
    """pool.imap, but reading at most `window` inputs ahead (imap reads its whole input as fast as it can,
    so memory would grow with the corpus when the workers are the slower side)."""
    pending = deque()
    for item in inputs:
        pending.append(pool.apply_async(function, (item,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


@contextmanager
def forked_map(function: Callable, inputs: Iterable, cores: int) -> Iterator[Iterator]:
    """`function` over `inputs`, results in input order: from `cores` forked workers, which see this
    process's state as it is when the context opens, or in this process for one core."""
    if cores <= 1:
        yield map(function, inputs)
        return
    pool = multiprocessing.get_context("fork").Pool(cores)
    try:
        yield ordered_map(pool, function, inputs, 2 * cores)
    finally:
        pool.terminate()
