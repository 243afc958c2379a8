"""Fan one task definition out per dataset, per ensemble member, or per member and test dataset.

The fanned-out tasks get their `attributes` (dataset, provider, member, chunk, chunks, ...) set and every string field
formatted with `{src}`, `{trg}`, `{dataset}`, `{dataset_slug}`, `{member}`, `{lang}`, `{stage}` ...
"""

import copy

from taskgraph.transforms.base import TransformSequence
from voluptuous import ALLOW_EXTRA, Any, Optional, Schema

from translations_taskgraph.parameters import training_config
from translations_taskgraph.training_config import dataset_slug, has_train_corpus, parse_dataset
from translations_taskgraph.transforms.continuation import continued

fan_out_schema = Schema(
    {
        Optional("fan-out"): {
            # One task per dataset of these categories (train, devtest, test, mono-src, mono-trg); a dataset
            # listed in several categories gets one task.
            Optional("datasets"): [Any("train", "devtest", "test", "mono-src", "mono-trg")],
            # One task per teacher-ensemble member.
            Optional("teacher-ensemble"): bool,
            # One task per side (src, trg) that has monolingual datasets.
            Optional("mono-sides"): bool,
            # One task per chunk of the corpus to translate (`taskcluster.split-chunks`).
            Optional("chunks"): bool,
        },
        # Outputs named once per chunk of `taskcluster.split-chunks` (`{chunk}` becomes 1, 2, ...): a task that
        # writes every chunk (the chunk kinds' split.py).
        Optional("chunk-outputs"): [str],
        # No task at all unless the config lists datasets of one of these categories (e.g. back-translation
        # needs mono-trg data).
        Optional("requires-datasets"): [Any("mono-src", "mono-trg")],
        # No task unless there is a parallel corpus to train on: train datasets, or an earlier run's
        # (continuation.corpora.parallel). A run that starts from an earlier run's distilled corpus has neither.
        Optional("requires-train-corpus"): bool,
    },
    extra=ALLOW_EXTRA,
)

transforms = TransformSequence()
transforms.add_validate(fan_out_schema)


def _datasets(config, categories):
    """(name, categories, lang) for each dataset to fan out over, in config order."""
    seen = {}
    for category in categories:
        for name in config["datasets"][category]:
            lang = None
            if category == "mono-src":
                lang = config["experiment"]["src"]
            elif category == "mono-trg":
                lang = config["experiment"]["trg"]
            seen.setdefault((name, lang), []).append(category)
    return [(name, in_categories, lang) for (name, lang), in_categories in seen.items()]


def _side(categories) -> dict:
    """`side: src|trg` for a monolingual dataset, so kinds can name the side's config keys."""
    for category in categories:
        if category.startswith("mono-"):
            return {"side": category.removeprefix("mono-")}
    return {}


@transforms.add
def fan_out(config, tasks):
    run_config = training_config(config.params)
    for task in tasks:
        spec = task.pop("fan-out", {})
        per_chunk = task.pop("chunk-outputs", [])
        if per_chunk:
            chunks = range(1, run_config["taskcluster"]["split-chunks"] + 1)
            task["step"]["outputs"] += [name.replace("{chunk}", str(c)) for c in chunks for name in per_chunk]
        required = task.pop("requires-datasets", [])
        requires_train = task.pop("requires-train-corpus", False)
        # A task whose output comes from an earlier run (continuation) needs none of its inputs.
        if not continued(run_config, task):
            if required and not any(run_config["datasets"][category] for category in required):
                continue
            if requires_train and not has_train_corpus(run_config):
                continue
        variants = [{}]
        if "datasets" in spec:
            variants = []
            for name, categories, lang in _datasets(run_config, spec["datasets"]):
                provider, _ = parse_dataset(name)
                variants.append(
                    {
                        "dataset": name,
                        "dataset-slug": dataset_slug(name) + (f"-{lang}" if lang else ""),
                        "dataset-categories": categories,
                        "provider": provider,
                        **({"lang": lang} if lang else {}),
                        **_side(categories),
                    }
                )
        if spec.get("mono-sides"):
            experiment = run_config["experiment"]
            variants = [
                {**v, "side": side, "lang": experiment[side]}
                for v in variants
                for side in ("src", "trg")
                if run_config["datasets"][f"mono-{side}"]
            ]
        if spec.get("teacher-ensemble"):
            members = range(1, run_config["experiment"]["teacher-ensemble"] + 1)
            variants = [{**v, "member": m} for v in variants for m in members]
        if spec.get("chunks"):
            total = run_config["taskcluster"]["split-chunks"]
            variants = [{**v, "chunk": c, "chunks": total} for v in variants for c in range(1, total + 1)]
        for variant in variants:
            new_task = copy.deepcopy(task)
            new_task.setdefault("attributes", {}).update(variant)
            yield new_task


def _format(value, context):
    if isinstance(value, str):
        return value.format(**context)
    if isinstance(value, dict):
        return {_format(k, context): _format(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_format(v, context) for v in value]
    return value


@transforms.add
def format_fields(config, tasks):
    """Fill `{src}`, `{trg}` and the fan-out attributes into every string of the task."""
    experiment = training_config(config.params)["experiment"]
    for task in tasks:
        attributes = task.get("attributes", {})
        context = {"src": experiment["src"], "trg": experiment["trg"], "experiment": experiment["name"]}
        context.update({key.replace("-", "_"): value for key, value in attributes.items()})
        yield _format(task, context)
