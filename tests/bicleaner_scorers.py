"""Scorers for the bicleaner step's tests (bicleaner-ai itself needs TensorFlow, not in this environment)."""

from pathlib import Path


class LengthRatio:
    """Score = shorter / longer length in characters; checks it was given an unpacked model pack."""

    def __init__(self, pack_dir: Path, swapped: bool, threads: int):
        assert (pack_dir / "metadata.yaml").is_file()
        self.swapped = swapped

    def score(self, pairs):
        return [min(len(s), len(t)) / max(len(s), len(t), 1) for s, t in pairs]


class Broken:
    def __init__(self, pack_dir, swapped, threads):
        pass

    def score(self, pairs):
        return [1.5] * len(pairs)
