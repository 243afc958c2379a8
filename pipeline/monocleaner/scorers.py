"""Scorers for the monocleaner step: given a block of sentences, a fluency score in [0, 1] per sentence.

`Monocleaner` runs the `monocleaner` command of the monocleaner package (a KenLM character model; installed
on the workers' image with KenLM, not in this project's lock) with its hard rules and language ID off (the
cleaning step ran ours), on THREADS slices of the block at once, and reads the scores it prints
(`--score_only`). A scorer is named `module:Class` (`--scorer`), so a worker image may bring another one.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

from pipeline.common.score_filter import load_class
from pipeline.common.step import StepError


class Monocleaner:
    command = "monocleaner"

    def __init__(self, pack_dir: Path, lang: str, threads: int):
        if shutil.which(self.command) is None:
            raise StepError(
                f"{self.command} is not installed here (it needs KenLM; the workers' image has it): install "
                "monocleaner, or set the dataset's monocleaner threshold to 0 to skip it"
            )
        self.pack_dir, self.threads = pack_dir, max(1, threads)

    def score(self, sentences: list[str]) -> list[float]:
        size = -(-len(sentences) // self.threads)
        slices = [sentences[i : i + size] for i in range(0, len(sentences), size)]
        with tempfile.TemporaryDirectory(prefix="monocleaner-") as tmp:
            runs = []
            for number, part in enumerate(slices):
                source, scored = Path(tmp) / f"in.{number}", Path(tmp) / f"out.{number}"
                source.write_text("".join(line + "\n" for line in part), encoding="utf-8")
                command = [self.command, "--disable_hardrules", "--disable_lang_ident", "--score_only", "--quiet",
                           str(self.pack_dir), str(source), str(scored)]  # fmt: skip
                runs.append((subprocess.Popen(command, stderr=subprocess.PIPE, text=True), scored))
            scores = []
            for process, scored in runs:
                _, errors = process.communicate()
                if process.returncode != 0:
                    raise StepError(f"{self.command} failed ({process.returncode}): {errors[-2000:]}")
                scores += [float(line) for line in scored.read_text(encoding="utf-8").splitlines()]
        if len(scores) != len(sentences):
            raise StepError(f"{self.command} returned {len(scores)} scores for {len(sentences)} sentences")
        return scores


def load_scorer(spec: str, pack_dir: Path, lang: str, threads: int):
    return load_class(spec)(pack_dir, lang, threads)
