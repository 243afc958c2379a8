"""Scorers for the bicleaner step: given batches of (source, target) pairs, a score in [0, 1] per pair.

`BicleanerAI` runs the `bicleaner-ai-classify` command of the bicleaner-ai package (TensorFlow and numpy<2, not
in this project's lock): the one BICLEANER_AI_CLASSIFY names, else the one on PATH (the GPU workers' image),
else the one of `.venv-bicleaner/`, the environment that `TRANSLATIONS_EXTRAS=bicleaner scripts/setup.sh`
installs. Its contract, as bicleaner-ai 3.6 has it (tests/test_clean_bicleaner_real.py runs it): a TSV file of
one pair a line (`--scol`/`--tcol` name the columns, from 1), the output file, then the model's metadata.yaml;
`--score_only` writes one score a line; the threads come from BICLEANER_AI_THREADS (its `--processes` is gone).
A scorer is named `module:Class` (`--scorer`), so a worker image may bring another implementation.
"""

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from pipeline.common.score_filter import load_class
from pipeline.common.step import StepError

logger = logging.getLogger("bicleaner")

COMMAND = "bicleaner-ai-classify"
COMMAND_VARIABLE = "BICLEANER_AI_CLASSIFY"
EXTRA_ENVIRONMENT = Path(__file__).resolve().parents[2] / ".venv-bicleaner"
# The command reads its input with universal newlines and splits lines at tabs: inside a sentence, a tab would
# shift the columns and a carriage return would split the pair in two (the cleaning step has normally made
# them spaces already).
_ONE_LINE = str.maketrans({"\t": " ", "\r": " ", "\n": " "})


def find_command() -> str:
    """The bicleaner-ai-classify to run, or a StepError that says how to get one."""
    named = os.environ.get(COMMAND_VARIABLE)
    if named:
        if found := shutil.which(named):
            return found
        raise StepError(f"{COMMAND_VARIABLE}={named} is not an executable {COMMAND}")
    if found := shutil.which(COMMAND):
        return found
    extra = EXTRA_ENVIRONMENT / "bin" / COMMAND
    if os.access(extra, os.X_OK):
        return str(extra)
    raise StepError(
        f"{COMMAND} is not installed here (bicleaner-ai needs TensorFlow; the GPU workers' image has it): run "
        f"`TRANSLATIONS_EXTRAS=bicleaner scripts/setup.sh` (it installs it in {EXTRA_ENVIRONMENT.name}/), set "
        f"{COMMAND_VARIABLE} to one, or set the dataset's bicleaner threshold to 0 to skip it"
    )


class BicleanerAI:
    def __init__(self, pack_dir: Path, swapped: bool, threads: int):
        self.command = find_command()
        self.metadata = pack_dir / "metadata.yaml"
        self.swapped, self.threads = swapped, threads
        self.warned: set[str] = set()

    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        with tempfile.TemporaryDirectory(prefix="bicleaner-") as tmp:
            source, scored = Path(tmp) / "in.tsv", Path(tmp) / "scores.txt"
            with open(source, "w", encoding="utf-8", newline="\n") as out:
                out.writelines(f"{s.translate(_ONE_LINE)}\t{t.translate(_ONE_LINE)}\n" for s, t in pairs)
            columns = ["--scol", "2", "--tcol", "1"] if self.swapped else ["--scol", "1", "--tcol", "2"]
            command = [self.command, *columns, "--score_only", "--disable_hardrules", "--tmp_dir", tmp,
                       str(source), str(scored), str(self.metadata)]  # fmt: skip
            # The model is the pack's, on disk: never one of the Hugging Face hub.
            env = {**os.environ, "BICLEANER_AI_THREADS": str(max(1, self.threads)), "HF_HUB_OFFLINE": "1"}
            result = subprocess.run(command, capture_output=True, text=True, env=env)
            if result.returncode != 0:
                raise StepError(f"{self.command} failed ({result.returncode}): {result.stderr[-2000:]}")
            self.forward_warnings(result.stderr)
            with open(scored, encoding="utf-8", newline="\n") as lines:
                scores = [self.parse(line) for line in lines]
        if len(scores) != len(pairs):
            raise StepError(f"{COMMAND} returned {len(scores)} scores for {len(pairs)} pairs")
        return scores

    @staticmethod
    def parse(line: str) -> float:
        try:
            return float(line)
        except ValueError:
            raise StepError(f"{COMMAND} wrote {line.strip()!r} where a score was expected") from None

    def forward_warnings(self, stderr: str) -> None:
        """bicleaner-ai's warnings into the step's log, once each (it runs once a block)."""
        for line in stderr.splitlines():
            for level in (" - WARNING - ", " - ERROR - "):
                _, found, message = line.partition(level)
                if found and message not in self.warned:
                    self.warned.add(message)
                    logger.warning("%s: %s", COMMAND, message)


def load_scorer(spec: str, pack_dir: Path, swapped: bool, threads: int):
    return load_class(spec)(pack_dir, swapped, threads)
