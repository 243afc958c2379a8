"""GPUs on the local engine (`--gpus 0,1`, or LOCALRUN_GPUS): which devices, a check that a CUDA Marian is there
before any task runs, and each GPU task's own devices.

Snakemake's `gpu` resource only counts (`--resources gpu=N`, each task asking for the GPUs its kind needs), so
that no more GPU tasks run than there are devices; which devices a task gets is decided here, with a lock file
per device under `<run>/.gpus/` that the task's process holds until it ends (a task killed with -9 releases it
with its process): two trainings never share a device. The task then sees only its devices
(CUDA_VISIBLE_DEVICES) and Marian numbers them from 0 (GPUS, which the steps turn into `--devices`).
"""

import fcntl
import os
import subprocess
import time
from pathlib import Path

# The Marian binaries the steps run (pipeline/common/marian.py), all from the MARIAN folder on GPU.
BINARIES = ("marian", "marian-decoder", "marian-scorer", "marian-conv")


class GpuError(ValueError):
    pass


def parse_gpus(text: str) -> list[int]:
    """`0,1` -> [0, 1]; an empty text -> [] (CPU only)."""
    devices = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if not part.isdigit():
            raise GpuError(f"--gpus: {part!r} is not a device number (write them as 0,1,...)")
        if int(part) in devices:
            raise GpuError(f"--gpus: device {part} named twice")
        devices.append(int(part))
    return devices


def check_cuda_marian(environ=os.environ) -> str:
    """The MARIAN folder of a CUDA Marian that answers `marian --version`, or a GpuError naming what was looked
    for (pymarian, the CPU build the pipeline uses otherwise, cannot use a GPU)."""
    folder = environ.get("MARIAN")
    if not folder:
        raise GpuError(
            "--gpus needs a CUDA build of Marian: set MARIAN to the folder of its binaries "
            f"({', '.join(BINARIES)}), e.g. the training image's (docker/); pymarian runs on CPU only"
        )
    missing = [name for name in BINARIES if not os.access(Path(folder) / name, os.X_OK)]
    if missing:
        raise GpuError(f"--gpus: MARIAN={folder} has no executable {', '.join(missing)}")
    try:
        answer = subprocess.run(
            [str(Path(folder) / "marian"), "--version"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise GpuError(f"--gpus: {folder}/marian --version does not run: {error}") from None
    if answer.returncode != 0:
        last = (answer.stderr or answer.stdout).strip().splitlines()[-1:] or ["no output"]
        raise GpuError(
            f"--gpus: {folder}/marian --version failed (exit status {answer.returncode}): {last[0]}"
        )
    return folder


def task_gpus(task: dict, devices: list[int]) -> int:
    """How many GPUs a task of the plan gets: what its kind asks for, at most the machine's; 0 without --gpus."""
    return min(int(task["step"]["resources"].get("gpus") or 0), len(devices)) if devices else 0


def acquire(run_dir: Path, devices: list[int], count: int, poll: float = 1.0) -> tuple[list[int], list]:
    """Locks `count` free devices of `devices` for this process (waiting while all are taken by tasks still
    running, e.g. orphans of a killed engine); returns the devices and the open lock files to keep."""
    folder = run_dir / ".gpus"
    folder.mkdir(exist_ok=True)
    announced = False
    while True:
        held = []
        for device in devices:
            lock = open(folder / f"{device}.lock", "w")  # noqa: SIM115 (held until the process ends)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            held.append((device, lock))
            if len(held) == count:
                return [d for d, _ in held], [lock for _, lock in held]
        for _, lock in held:
            lock.close()
        if not announced:
            print(f"waiting for {count} free GPU(s) of {devices}", flush=True)
            announced = True
        time.sleep(poll)


def device_environment(devices: list[int]) -> dict:
    """The task's view of its devices: only those visible, numbered from 0 for Marian."""
    return {
        "CUDA_VISIBLE_DEVICES": ",".join(map(str, devices)),
        "GPUS": " ".join(str(index) for index in range(len(devices))),
    }
