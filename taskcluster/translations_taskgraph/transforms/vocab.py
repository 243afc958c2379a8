"""`experiment.spm-vocab-split`: one SentencePiece vocabulary per language instead of one shared. The kinds name
the shared files (`vocab.spm`, `vocab.vocab`, the export's `vocab.<pair>.spm`); with split vocabularies this
transform names the files each task writes or downloads instead: `vocab.<lang>.spm` for both languages of the
pair, and the export's `srcvocab.<pair>.spm`/`trgvocab.<pair>.spm` (the names Firefox's model registry uses)."""

from taskgraph.transforms.base import TransformSequence

from translations_taskgraph.parameters import training_config

transforms = TransformSequence()


def split_names(name: str, src: str, trg: str) -> list[str]:
    if name == "vocab.spm":
        return [f"vocab.{src}.spm", f"vocab.{trg}.spm"]
    if name == "vocab.vocab":
        return [f"vocab.{src}.vocab", f"vocab.{trg}.vocab"]
    if name.startswith(f"vocab.{src}{trg}.spm"):
        return [f"src{name}", f"trg{name}"]
    return [name]


@transforms.add
def name_split_vocabularies(config, tasks):
    run_config = training_config(config.params)
    experiment = run_config["experiment"]
    if not experiment.get("spm-vocab-split"):
        yield from tasks
        return
    src, trg = experiment["src"], experiment["trg"]
    for task in tasks:
        step = task["step"]
        step["outputs"] = [n for name in step["outputs"] for n in split_names(name, src, trg)]
        if "continuation" in task:
            files = task["continuation"]["files"]
            task["continuation"]["files"] = [n for name in files for n in split_names(name, src, trg)]
        yield task
