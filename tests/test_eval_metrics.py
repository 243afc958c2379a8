"""chrF++ beside BLEU and chrF, and spBLEU with the FLORES-200 SentencePiece model from a configured path (issue
22, item 5): sacrebleu would download that model on first use, which cannot happen here, so the real scoring
path is tested with a tiny SentencePiece model trained on the spot; its scores mean nothing."""

import json
import os
import subprocess
import sys

import sentencepiece

from conftest import REPO_ROOT

HYPOTHESES = ["the cat sat on the mat", "a dog barks at night", "open the file"]
REFERENCES = ["the cat sits on the mat", "a dog barked at night", "open this file"]

SCORE = """
import json, sys
from pathlib import Path
from pipeline.eval.evaluate import score, spbleu_score
model = Path(sys.argv[1]) if sys.argv[1] != "-" else None
hyp, ref = json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(json.dumps({"scores": score(hyp, ref), "spbleu": spbleu_score(model, hyp, ref)}))
"""


def evaluate_scores(tmp_path, model) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SCORE,
            str(model) if model else "-",
            json.dumps(HYPOTHESES),
            json.dumps(REFERENCES),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "SACREBLEU": str(tmp_path / "sacrebleu-cache")},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


def tiny_spm_model(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("\n".join((HYPOTHESES + REFERENCES) * 20) + "\n")
    sentencepiece.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(tmp_path / "flores200"), vocab_size=28, minloglevel=2
    )
    return tmp_path / "flores200.model"


def test_chrf_plus_plus_is_scored_with_its_signature(tmp_path):
    import sacrebleu

    scores = evaluate_scores(tmp_path, None)["scores"]
    expected = sacrebleu.CHRF(word_order=2).corpus_score(HYPOTHESES, [REFERENCES]).score
    assert scores["chrfpp"] == round(expected, 2)
    assert scores["chrfpp"] < scores["chrf"]  # word bigrams are rarer matches than characters
    assert "nw:2" in scores["signatures"]["chrfpp"] and "nw:0" in scores["signatures"]["chrf"]


def test_spbleu_without_its_model_is_skipped_with_why(tmp_path):
    value, signature, skipped = evaluate_scores(tmp_path, None)["spbleu"]
    assert value is None and signature is None
    assert skipped.startswith("no FLORES-200 SentencePiece model in sacrebleu's cache")
    assert "--spbleu-model or SPBLEU_MODEL" in skipped
    value, _, skipped = evaluate_scores(tmp_path, tmp_path / "missing.model")["spbleu"]
    assert value is None and "does not exist" in skipped


def test_spbleu_scores_with_the_model_at_the_configured_path(tmp_path):
    model = tiny_spm_model(tmp_path)
    value, signature, skipped = evaluate_scores(tmp_path, model)["spbleu"]
    assert skipped is None and "tok:flores200" in signature
    pieces = sentencepiece.SentencePieceProcessor(model_file=str(model))
    import sacrebleu

    tokenized = [
        [" ".join(pieces.encode(line, out_type=str)) for line in side] for side in (HYPOTHESES, REFERENCES)
    ]
    expected = sacrebleu.BLEU(tokenize="none").corpus_score(tokenized[0], [tokenized[1]]).score
    assert value == round(expected, 2)
    # Linked where sacrebleu looks for it: the next evaluation finds it without the path.
    assert (tmp_path / "sacrebleu-cache" / "models" / "flores200sacrebleuspm").resolve() == model.resolve()
    assert evaluate_scores(tmp_path, None)["spbleu"][0] == value
