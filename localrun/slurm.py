"""The same task graph on a Slurm cluster: every task a Slurm job, submitted by Snakemake's own Slurm executor
(snakemake-executor-plugin-slurm), with the resources its kind asks for.

    task run-slurm -- --config FILE [--profile DIR] [--account A] [--partition P] [--jobs N]

A profile is a folder (default configs/slurm/) with Snakemake's `config.yaml` (the executor's settings: jobs,
retries, default-resources, slurm-* options) and this project's `resources.yaml`:

  runtime-minutes:  {training: 1440, default: 240}  Slurm's -t for the trainings and for every other task
  cpus-for-all: 8           --cpus-per-task of a task whose kind asks for all of a machine's cores
  sigterm-lead-seconds: 300 Slurm signals a job this long before its time limit (--signal=TERM@N): a training
                            saves its checkpoint and exits 75, and Snakemake's retries submit it again, resuming

What each task asks for comes from its kind (taskcluster/kinds/*, the same definitions Taskcluster uses): its
cores (threads -> --cpus-per-task), memory (mem_mb -> --mem), GPUs (gpu -> --gpus) and the runtime above (-t).
On the node, Slurm gives a GPU job its devices (CUDA_VISIBLE_DEVICES); Marian numbers them from 0.
"""

from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROFILE = REPO_ROOT / "configs" / "slurm"
TRAINING_MODULE = "pipeline.train.train"
RESOURCE_DEFAULTS = {
    "runtime-minutes": {"training": 1440, "default": 240},
    "cpus-for-all": 8,
    "sigterm-lead-seconds": 300,
}


class ProfileError(ValueError):
    pass


def snakemake_option_names() -> set[str]:
    """The long options of Snakemake's command line and of the Slurm executor's settings: a profile's keys."""
    from snakemake.cli import get_argument_parser

    names = {
        option.removeprefix("--")
        for action in get_argument_parser()._actions
        for option in action.option_strings
        if option.startswith("--")
    }
    try:
        import dataclasses

        from snakemake_executor_plugin_slurm import ExecutorSettings

        names |= {"slurm-" + field.name.replace("_", "-") for field in dataclasses.fields(ExecutorSettings)}
    except ImportError:
        pass
    return names


def load_profile(profile: Path) -> tuple[dict, dict]:
    """(Snakemake's config.yaml, resources.yaml with its defaults), refusing a key either does not know."""
    config_file = profile / "config.yaml"
    if not config_file.is_file():
        raise ProfileError(f"--profile {profile}: no config.yaml (Snakemake's profile file)")
    try:
        config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        resources_file = profile / "resources.yaml"
        own = (
            yaml.safe_load(resources_file.read_text(encoding="utf-8")) or {}
            if resources_file.exists()
            else {}
        )
    except yaml.YAMLError as error:
        raise ProfileError(f"--profile {profile}: not valid YAML: {error}") from None
    if not isinstance(config, dict) or not isinstance(own, dict):
        raise ProfileError(f"--profile {profile}: config.yaml and resources.yaml must be mappings")
    unknown = sorted(set(config) - snakemake_option_names())
    if unknown:
        raise ProfileError(
            f"--profile {profile}/config.yaml: unknown key {unknown[0]!r} (keys are Snakemake's long options and "
            "the Slurm executor's slurm-* settings)"
        )
    unknown = sorted(set(own) - set(RESOURCE_DEFAULTS))
    if unknown:
        raise ProfileError(
            f"--profile {profile}/resources.yaml: unknown key {unknown[0]!r} (known: {', '.join(RESOURCE_DEFAULTS)})"
        )
    resources = {**RESOURCE_DEFAULTS, **own}
    runtime = {**RESOURCE_DEFAULTS["runtime-minutes"], **(own.get("runtime-minutes") or {})}
    if set(runtime) != {"training", "default"} or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in runtime.values()
    ):
        raise ProfileError(
            f"--profile {profile}/resources.yaml: runtime-minutes takes training and default, in minutes"
        )
    resources["runtime-minutes"] = runtime
    lead = resources["sigterm-lead-seconds"]
    if not isinstance(lead, int) or lead < 30:
        raise ProfileError(
            f"--profile {profile}/resources.yaml: sigterm-lead-seconds must be 30 or more, got {lead!r}"
        )
    if runtime["training"] * 60 <= 2 * lead:
        raise ProfileError(
            f"--profile {profile}/resources.yaml: a training's runtime of {runtime['training']} minutes leaves no "
            f"time to train before the checkpoint it must save {lead} s before its time limit; give it more"
        )
    if not isinstance(resources["cpus-for-all"], int) or resources["cpus-for-all"] < 1:
        raise ProfileError(f"--profile {profile}/resources.yaml: cpus-for-all must be a number of cores")
    return config, resources


def job_resources(plan: dict, resources: dict) -> dict:
    """Per task of the plan: its Slurm runtime (minutes), cores and the signal before its time limit."""
    jobs = {}
    for label, task in plan["tasks"].items():
        step = task["step"]
        training = step.get("module") == TRAINING_MODULE
        cpus = step["resources"]["cpus"]
        runtime = resources["runtime-minutes"]["training" if training else "default"]
        lead = resources["sigterm-lead-seconds"]
        jobs[label] = {
            "runtime": runtime,
            "cpus": resources["cpus-for-all"] if cpus == "all" else int(cpus),
            # A training stops itself (saving its checkpoint, exit 75) `lead` seconds before its time limit, and
            # Slurm's signal at that time is the fallback.
            "run_seconds": runtime * 60 - lead if training else 0,
            "signal": f"--signal=TERM@{lead}" if training else "",
        }
    return jobs


def slurm_arguments(profile: Path, args) -> list[str]:
    """Snakemake's options for a Slurm run: the profile, and only what the command line gave on top of it (a
    flag given here replaces the profile's whole key)."""
    options = ["--executor", "slurm", "--profile", str(profile)]
    if args.jobs:
        options += ["--jobs", str(args.jobs)]
    if args.retries is not None:
        options += ["--retries", str(args.retries)]
    return options
