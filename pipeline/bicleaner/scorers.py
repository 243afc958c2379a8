"""Scorers for the bicleaner step: given batches of (source, target) pairs, a score in [0, 1] per pair.

`BicleanerAI` runs the `bicleaner-ai-classify` command of the bicleaner-ai package (TensorFlow; installed on
the GPU workers' image, not in this project's lock) on a TSV block and reads the score column it appends.
A scorer is named `module:Class` (`--scorer`), so a worker image may bring another implementation.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

from pipeline.common.score_filter import load_class
from pipeline.common.step import StepError


class BicleanerAI:
    command = "bicleaner-ai-classify"

    def __init__(self, pack_dir: Path, swapped: bool, threads: int):
        if shutil.which(self.command) is None:
            raise StepError(
                f"{self.command} is not installed here (bicleaner-ai needs TensorFlow; the GPU workers' image has "
                "it): install bicleaner-ai, or set the dataset's bicleaner threshold to 0 to skip it"
            )
        self.metadata = pack_dir / "metadata.yaml"
        self.swapped, self.threads = swapped, threads

    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        with tempfile.TemporaryDirectory(prefix="bicleaner-") as tmp:
            source, scored = Path(tmp) / "in.tsv", Path(tmp) / "out.tsv"
            source.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
            columns = ["--scol", "2", "--tcol", "1"] if self.swapped else ["--scol", "1", "--tcol", "2"]
            command = [self.command, *columns, "--disable_hardrules", "--processes", str(self.threads),
                       str(source), str(scored), str(self.metadata)]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise StepError(f"{self.command} failed ({result.returncode}): {result.stderr[-2000:]}")
            scores = [
                float(line.rsplit("\t", 1)[-1]) for line in scored.read_text(encoding="utf-8").splitlines()
            ]
        if len(scores) != len(pairs):
            raise StepError(f"{self.command} returned {len(scores)} scores for {len(pairs)} pairs")
        return scores


def load_scorer(spec: str, pack_dir: Path, swapped: bool, threads: int):
    return load_class(spec)(pack_dir, swapped, threads)
