"""What the teacher's augmentation buys: a finished run's teacher and its plain-Marian baseline (`task
bench-baseline`) on the run's test split and on augmented versions of it, the reference's `aug-` evaluation
sets (`local_aug-upper_data/...`: pipeline/data/augment.py), each imported and evaluated with the pipeline's
own steps. Prints one line per set and model, writes the rows as JSON to <output-dir>/augmented.json.

    task bench-augmented -- --config configs/tiny.yml --run-dir runs/tiny
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.common.slug import dataset_slug

REPO = Path(__file__).resolve().parents[1]
KINDS = ["aug-upper", "aug-title", "aug-punct", "aug-typos", "aug-mix"]


def run_step(module: str, *args, log: Path, threads: int):
    env = {**os.environ, "THREADS": str(threads), "WORKSPACE": "2000"}
    with open(log, "w", encoding="utf-8") as output:
        result = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, env=env,
                                stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
    if result.returncode != 0:
        sys.exit(f"error: {module} failed; see {log}")


def augmented_name(test: str, kind: str) -> str:
    """`local_data/l10n-en-fr/test` and `aug-upper` -> `local_aug-upper_data/l10n-en-fr/test`."""
    provider, _, name = test.partition("_")
    return f"{provider}_{kind}_{name}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--run-dir", required=True, type=Path, help="a finished run with its bench-baseline")
    parser.add_argument("--kinds", default=",".join(KINDS), help="augmentations (pipeline/data/augment.py)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output-dir", type=Path, help="default: <run-dir>/augmented-eval")
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.config.read_text())
    src, trg = config["experiment"]["src"], config["experiment"]["trg"]
    models = {
        "teacher": args.run_dir / f"train-teacher-{src}-{trg}-1" / "artifacts",
        "plain-marian": args.run_dir / "plain-marian-baseline" / "model",
    }
    for name, folder in models.items():
        if not (folder / "final.model.npz").exists():
            hint = " (run task bench-baseline first)" if name == "plain-marian" else ""
            sys.exit(f"error: no {name} model in {folder}{hint}")
    out = (args.output_dir or args.run_dir / "augmented-eval").resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for test in config["datasets"]["test"]:
        for kind in ["none", *args.kinds.split(",")]:
            dataset = test if kind == "none" else augmented_name(test, kind)
            label = f"{dataset_slug(test)}-{kind}"  # a config may list several test sets
            data = out / f"data-{label}"
            run_step("pipeline.data.import_dataset", "--dataset", dataset, "--langs", f"{src},{trg}",
                     "--output-dir", data, log=out / f"import-{label}.log", threads=args.threads)  # fmt: skip
            row = {"dataset": dataset, "augmentation": kind}
            for name, folder in models.items():
                evaluation = out / f"evaluate-{label}-{name}"
                run_step("pipeline.eval.evaluate", "--model-dir", folder.resolve(), "--model-name", name,
                         "--dataset-dir", data, "--dataset", kind, "--src", src, "--trg", trg,
                         "--output-dir", evaluation, log=out / f"evaluate-{label}-{name}.log",
                         threads=args.threads)  # fmt: skip
                metrics = json.loads((evaluation / "metrics.json").read_text())
                row[name] = {"chrf": metrics["chrf"], "bleu": metrics["bleu"]}
            row["teacher_minus_plain_chrf"] = round(row["teacher"]["chrf"] - row["plain-marian"]["chrf"], 2)
            rows.append(row)
            print(
                f"{dataset}: teacher chrF {row['teacher']['chrf']:.2f}, plain Marian "
                f"{row['plain-marian']['chrf']:.2f} ({row['teacher_minus_plain_chrf']:+.2f})",
                flush=True,
            )
    (out / "augmented.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
