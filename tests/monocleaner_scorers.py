"""Scorers for the monocleaner step's tests (monocleaner itself needs KenLM, not in this environment)."""

from pathlib import Path


class LetterShare:
    """Score = share of letters among the non-space characters; checks it was given an unpacked model pack."""

    def __init__(self, pack_dir: Path, lang: str, threads: int):
        assert (pack_dir / "metadata.yaml").is_file()

    def score(self, sentences):
        shares = []
        for sentence in sentences:
            chars = [c for c in sentence if not c.isspace()]
            shares.append(sum(c.isalpha() for c in chars) / max(len(chars), 1))
        return shares
