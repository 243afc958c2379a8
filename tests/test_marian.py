"""How steps run Marian: pymarian's C++ runs inside a Python process, which must still end on Ctrl-C."""

import signal
import subprocess
import time

import yaml

from conftest import REPO_ROOT, build_vocab, sample_pairs, write_corpus
from pipeline.common.marian import marian_command


def test_ctrl_c_ends_a_marian_training(tmp_path):
    """A Ctrl-C reaches every process of the engine's group; a training that went on after it (Python defers
    the signal while pymarian's C++ runs) would write the checkpoint that the resumed run writes too."""
    pairs = sample_pairs(2000)
    corpus = tmp_path / "corpus"
    write_corpus(corpus / "corpus.en.zst", [s for s, _ in pairs])
    write_corpus(corpus / "corpus.fr.zst", [t for _, t in pairs])
    vocab = build_vocab(corpus, tmp_path / "vocab", 400)
    texts = []
    for side, lang in enumerate(("en", "fr")):
        texts.append(tmp_path / f"train.{lang}")
        texts[-1].write_text("\n".join(pair[side] for pair in pairs) + "\n", encoding="utf-8")
    preset = yaml.safe_load((REPO_ROOT / "pipeline/train/configs/model/teacher.tiny.yml").read_text())
    config = {
        **preset, "model": str(tmp_path / "model.npz"), "train-sets": [str(t) for t in texts],
        "vocabs": [str(vocab)] * 2, "log": str(tmp_path / "train.log"),
        "after-epochs": 1000, "disp-freq": 1, "cpu-threads": 1, "workspace": 500, "seed": 1,
    }  # fmt: skip
    (tmp_path / "train.yml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen([*marian_command("train"), "-c", str(tmp_path / "train.yml")], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    log = tmp_path / "train.log"
    while not (log.exists() and " : Up. " in log.read_text()):
        assert process.poll() is None and time.monotonic() < deadline, "the training never started updating"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stopped = time.monotonic()
    assert process.wait(timeout=30) == -signal.SIGINT
    assert time.monotonic() - stopped < 10
