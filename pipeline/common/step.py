"""What every step script shares: failing early with a clear message, the resources the engine grants,
and skipping work whose outputs already exist."""

import argparse
import errno
import glob
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

logger = logging.getLogger("step")


class StepError(Exception):
    """A failure caused by the input or the environment: printed without a traceback, exit status 1."""


def require_env(*names: str) -> dict[str, str]:
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise StepError(
            f"environment variable(s) {', '.join(missing)} must be set "
            "(the workflow engine sets them: THREADS = cores to use or 'auto', WORKSPACE = MB of memory for Marian)"
        )
    return {name: os.environ[name] for name in names}


def threads() -> int:
    value = require_env("THREADS")["THREADS"]
    if value == "auto":
        return len(os.sched_getaffinity(0))
    try:
        count = int(value)
    except ValueError:
        raise StepError(f"THREADS must be a number or 'auto', got {value!r}") from None
    if count < 1:
        raise StepError(f"THREADS must be at least 1, got {count}")
    return count


def workspace_mb() -> int:
    value = require_env("WORKSPACE")["WORKSPACE"]
    try:
        return int(value)
    except ValueError:
        raise StepError(f"WORKSPACE must be a number of megabytes, got {value!r}") from None


def add_config_boolean(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    """A config boolean as the task graph passes it: `NAME true|false` (`NAME` alone: true; absent: false)."""
    parser.add_argument(name, nargs="?", const="true", default="false", choices=["true", "false"], help=help)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a cap of 0 would silently write an empty output)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def already_done(output_dir: Path, names: Sequence[str]) -> bool:
    """True (and says so) if a previous run of the step completed: each output is renamed into place only
    when complete, so their presence proves it."""
    if all((output_dir / name).exists() for name in names):
        logger.info("outputs already exist in %s: nothing to do", output_dir)
        return True
    # A run killed while writing an output leaves its temporary file (.NAME.XXXX.tmp, see io.atomic_path).
    for name in names:
        target = output_dir / name
        if target.parent.is_dir():
            for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
                stale.unlink(missing_ok=True)
    return False


def run_step(description: str, add_arguments: Callable, main: Callable, argv=None) -> None:
    """Parses named arguments, sets up logging, runs `main(args)` and turns StepError into a clean exit."""
    parser = argparse.ArgumentParser(description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s] %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stderr,
    )
    logger.info("%s %s", Path(sys.argv[0]).name, " ".join(sys.argv[1:]))
    try:
        main(args)
    except StepError as error:
        logger.error("%s", error)
        sys.exit(1)
    except OSError as error:
        if error.errno not in STORAGE_ERRORS:
            raise
        logger.error("%s", storage_error_message(error, getattr(args, "output_dir", None)))
        sys.exit(1)


# Failures of the storage rather than of the step: reported in one line, not as a traceback.
STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG, errno.EROFS}


def storage_error_message(error: OSError, output_dir: Path | None) -> str:
    """What the user needs to fix a full disk, a quota or a name the file system cannot hold. Outputs are
    written atomically (io.atomic_path), so what the step had written is either complete or gone."""
    where = Path(error.filename) if error.filename else output_dir
    if error.errno == errno.ENAMETOOLONG:
        longest = max((part for part in Path(where or ".").parts), key=len, default="")
        return (
            f"a file name is too long for the file system: {where} (its longest part has {len(longest)} "
            "characters; most file systems allow 255 bytes): shorten the experiment or dataset name"
        )
    if error.errno == errno.EROFS:
        return f"cannot write {where}: the file system is read-only"
    folder = Path(output_dir or where or ".")
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    usage = shutil.disk_usage(existing)
    task = folder.parent.name if folder.name == "artifacts" else folder.name
    partial = getattr(error, "partial_bytes", None)
    got = f" after {partial / 2**20:.1f} MiB" if partial is not None else ""
    what = "no space left on the device" if error.errno == errno.ENOSPC else "the disk quota is exceeded"
    return (
        f"{what} holding {existing}: task {task} could not write {where}{got}. The device has "
        f"{usage.free / 2**20:.1f} MiB free of {usage.total / 2**20:.1f} MiB now that the partial file is "
        f"removed; the task needs more than that. Free some space (or move the runs folder) and run it "
        "again: outputs that were complete are kept"
    )
