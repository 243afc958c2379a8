"""OpusTrainer 0.5's RemoveEndPunct and Tags modifiers, fixed so that no pair of a curriculum is dropped.

What dropped pairs (42 in one teacher training of an English-German run, logged as "Skipping line because of
exception: IndexError('list index out of range')"): RemoveEndPunct removed every alignment link of the last
token on each side, also when the punctuation was glued to a word that stays (`timeout.` -> `timeout`). For a
pair with a one-word side (`Base64 encoding error.` / `Base64-Verschlüsselungsfehler.`, common in German) that
removed all links; the Tags modifier then read the line with `line.strip()`, which ate the empty alignment
field, and failed on `rest[0]`. Here RemoveEndPunct drops only the links of a token that disappears (the
punctuation was a token of its own), counting tokens as the aligner and Tags do (`str.split()`: any
whitespace, where OpusTrainer's `split(' ')` miscounted around non-breaking spaces), and Tags passes a pair
without links on unchanged. A line Tags still cannot handle comes out marked (SKIPPED_MARK, the error, the
line) for the feeder to count and report (pipeline/train/curriculum_feed.py), instead of vanishing.
"""

from collections.abc import Iterable

from opustrainer import trainer
from opustrainer.modifiers.placeholders import PlaceholderTagModifier
from opustrainer.modifiers.punctuation import RemoveEndPunctuationModifier

SKIPPED_MARK = "\x00skipped\x00"


class RemoveEndPunct(RemoveEndPunctuationModifier):
    def ends_with_punct(self, line: str) -> bool:
        src, trg = line.split("\t")[:2]
        return bool(src and trg) and super().ends_with_punct(line)

    def remove_punct(self, line: str) -> str:
        src, trg, *rest = line.split("\t")
        new_src, new_trg = src[:-1].rstrip(), trg[:-1].rstrip()
        if not rest:
            return f"{new_src}\t{new_trg}"
        # The index of a token that disappeared with its punctuation, else None.
        src_gone = len(src.split()) - 1 if len(new_src.split()) < len(src.split()) else None
        trg_gone = len(trg.split()) - 1 if len(new_trg.split()) < len(trg.split()) else None
        links = []
        for link in rest[0].split():
            i, _, j = link.partition("-")
            if int(i) != src_gone and int(j) != trg_gone:
                links.append(link)
        return "\t".join([new_src, new_trg, " ".join(links), *rest[1:]])


class Tags(PlaceholderTagModifier):
    def __call__(self, batch: list[str]) -> Iterable[str]:
        for line in batch:
            try:
                yield self.apply(line)
            except Exception as error:  # noqa: BLE001 - every failure is reported by the feeder
                yield f"{SKIPPED_MARK}{error!r}\t{line}"

    def apply(self, line: str) -> str:
        src, trg, *rest = line.rstrip("\r\n").split("\t")
        if rest and not rest[0].strip():
            # No links: nothing to tag, but the pair still trains (with no guided alignment for a student).
            source, _, _ = self.src_retokenizer.retokenize(src.split())
            target, _, _ = self.trg_retokenizer.retokenize(trg.split())
            return f"{source}\t{target}\t" if self.print_alignments else f"{source}\t{target}"
        return super().apply(line)


def install():
    """Puts the fixed modifiers in place of OpusTrainer's under the same names."""
    trainer.MODIFIERS["RemoveEndPunct"] = RemoveEndPunct
    trainer.MODIFIERS["Tags"] = Tags
