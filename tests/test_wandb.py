"""`wandb-publication: true` (issue 21): the report step publishes every training's curves, the evaluations and
the report to Weights & Biases with the real wandb package; offline here (no key), the runs are read back from
the files wandb writes (its record log: leveldb-style blocks of protobuf records)."""

import json
import struct

from test_report_convergence import STUDENT, TEACHER, run  # noqa: F401  (the fixture)

from conftest import step_env


def wandb_records(path):
    """(record type, record) for each record of a .wandb file."""
    from wandb.proto import wandb_internal_pb2

    data, position, block, pending = path.read_bytes(), 7, 32768, b""
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0 and length == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record.WhichOneof("record_type"), record


def item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def offline_runs(folder) -> dict:
    """{run name: {"history": [{key: value}], "summary": {...}, "project", "group"}} of the offline runs."""
    runs = {}
    for path in folder.glob("wandb/offline-run-*/run-*.wandb"):
        found = {"history": [], "summary": {}}
        for kind, record in wandb_records(path):
            if kind == "run":
                found.update(
                    name=record.run.display_name, project=record.run.project, group=record.run.run_group
                )
            elif kind == "history":
                found["history"].append({item_key(i): json.loads(i.value_json) for i in record.history.item})
            elif kind == "summary":
                found["summary"].update(
                    {item_key(i): json.loads(i.value_json) for i in record.summary.update}
                )
        runs[found["name"]] = found
    return runs


def test_the_report_publishes_curves_scores_and_report_offline(run, monkeypatch):  # noqa: F811
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    result, out = run(51.3, "--wandb-publication", "true")
    assert result.returncode == 0, result.stderr
    assert "Weights & Biases (offline): 3 runs in project en-fr, group x" in result.stderr
    runs = offline_runs(out)
    assert set(runs) == {TEACHER, STUDENT, "evaluation"}
    teacher = runs[TEACHER]
    assert (teacher["project"], teacher["group"]) == ("en-fr", "x")
    chrf = [(h["_step"], h["valid/chrf"]) for h in teacher["history"] if "valid/chrf" in h]
    assert chrf == [(250, 8.2), (500, 16.5), (750, 24.9), (1000, 32.9)]
    assert [h["_step"] for h in teacher["history"] if "train/cost" in h] == list(range(100, 1001, 100))
    evaluation = runs["evaluation"]["summary"]
    assert evaluation["flores/teacher-ensemble/chrf"] == 52.4 and evaluation["flores/quantized/chrf"] == 51.3
    assert evaluation[f"convergence/{TEACHER}"]


def test_without_the_setting_nothing_is_published(run):  # noqa: F811
    result, out = run()
    assert result.returncode == 0 and not (out / "wandb").exists()


def test_the_config_key_reaches_the_report_task():
    from translations_taskgraph.training_config import validate_training_config

    config = validate_training_config(
        {
            "experiment": {"name": "w", "src": "en", "trg": "fr", "spm-vocab-size": 1000},
            "datasets": {"train": ["local_data/l10n-en-fr/parallel"], "devtest": ["local_data/l10n-en-fr/dev"],
                         "test": ["local_data/l10n-en-fr/test"]},
            "wandb-publication": True,
        }
    )  # fmt: skip
    assert config["wandb-publication"] is True
    assert step_env()  # the report step runs in the steps' environment, where wandb is locked
