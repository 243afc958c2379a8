"""The options Marian accepts, so that a config's `marian-args` are checked before any task runs.

`marian_options.json` holds, per Marian mode (train, decode), each long option with its value type as Marian's
own `--help` prints it (INT, UINT, FLOAT, TEXT, VECTOR; FLAG for an option without a value). It is generated
from the installed Marian (`python -m translations_taskgraph.marian_options`, `task marian-options`), since
the decision task that validates a config has no Marian; a test checks it against the installed one.
"""

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

OPTIONS_FILE = Path(__file__).with_name("marian_options.json")
# `  -b,--beam-size UINT=12   Beam size ...`, `  --overwrite   Do not create ...`, `  --x=false  ...`
HELP_LINE = re.compile(
    r"^\s+(?:-[A-Za-z],)?--([a-z0-9][a-z0-9-]*)(?: ([A-Z]+)(?:=\S*)?| \.\.\.|=\S+)?(?:\s|$)"
)
MODES = {"train": [], "decode": ["decode"]}


def parse_help(text: str) -> dict[str, str]:
    """{option: type} from Marian's `--help` output."""
    options = {}
    for line in text.splitlines():
        match = HELP_LINE.match(line)
        if match:
            options[match[1]] = match[2] or "FLAG"
    return options


def installed_options() -> dict[str, dict[str, str]]:
    """{mode: {option: type}} of the Marian that pymarian installs."""
    result = {}
    for mode, words in MODES.items():
        help_text = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, _pymarian; sys.exit(_pymarian.main(sys.argv[1:]))",
                *words,
                "--help",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        result[mode] = parse_help(help_text)
    return result


@cache
def known_options() -> dict[str, dict[str, str]]:
    return json.loads(OPTIONS_FILE.read_text())


def main() -> int:
    options = installed_options()
    OPTIONS_FILE.write_text(json.dumps(options, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OPTIONS_FILE}: " + ", ".join(f"{len(v)} {k} options" for k, v in options.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
