"""The training step's TSV for OpusTrainer leaves out pairs with an empty side and counts them (issue 24, item 2):
OpusTrainer would otherwise skip them with one warning ("Empty field in backtranslated line"), unreported."""

import json

import pytest
import zstandard

from pipeline.common.step import StepError
from pipeline.train.train import tsv_stats_file, write_tsv


def zst(path, lines):
    path.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode()))
    return path


def test_pairs_with_an_empty_side_are_left_out_and_counted(tmp_path):
    src = zst(tmp_path / "corpus.en.zst", ["Hello", "Ravne na Koroškem", "Open the file", "   "])
    trg = zst(tmp_path / "corpus.de.zst", ["Hallo", "", "Datei öffnen", "Leer"])
    aln = zst(tmp_path / "corpus.aln.zst", ["0-0", "", "0-1 1-0 2-0", ""])
    tsv = tmp_path / "backtranslated.tsv"
    assert write_tsv(tsv, src, trg, aln, drop_empty=True) == 2
    assert tsv.read_text().splitlines() == ["Hello\tHallo\t0-0", "Open the file\tDatei öffnen\t0-1 1-0 2-0"]
    stats = json.loads(tsv_stats_file(tsv).read_text())
    assert stats["pairs"] == 2 and stats["empty_pairs_dropped"] == 2
    assert stats["first_dropped"] == ["line 2: 'Ravne na Koroškem' -> ''", "line 4: '   ' -> 'Leer'"]
    # A resume reads the counts back instead of pasting again.
    assert write_tsv(tsv, src, trg, aln, drop_empty=True) == 2


def test_without_dropping_every_pair_is_kept(tmp_path):
    src = zst(tmp_path / "corpus.en.zst", ["a", "b"])
    trg = zst(tmp_path / "corpus.de.zst", ["", "c"])
    assert write_tsv(tmp_path / "devset.tsv", src, trg) == 2


def test_a_corpus_of_empty_pairs_only_is_refused_naming_them(tmp_path):
    src = zst(tmp_path / "corpus.en.zst", ["a", "b"])
    trg = zst(tmp_path / "corpus.de.zst", ["", ""])
    with pytest.raises(StepError, match=r"is empty \(2 pairs with an empty side\)"):
        write_tsv(tmp_path / "backtranslated.tsv", src, trg, drop_empty=True)
    assert not (tmp_path / "backtranslated.tsv").exists()
