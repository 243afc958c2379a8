"""Cost model of every kind of the training graph: the preflight estimate (`task preflight-check`).

Each task's cost is its work (lines, target words of training, a fixed step) divided by a rate, on the
devices its worker has: GPU-seconds for the tasks on GPU workers, CPU-seconds on CPU workers, and the bytes
of its artifacts. Every rate below is a `Rate` whose `source` says where the figure comes from:

- "measured here": this repository's benchmarks on the 2-core CPU development host, the command is named;
- "assumed": no measurement is at hand (no GPU Marian runs on the development host, and the reference system,
  mozilla/translations, publishes no per-stage timings in its docs); the figure is an order of magnitude,
  to be replaced by a measured one (compare with a finished run: `task preflight-check -- --config X
  --run-dir runs/NAME`).

Sizes come from the config (`corpus-max-sentences`, `mono-max-sentences-*`, `dev-max-sentences`) and from
what can be known offline: the lines of `local_` datasets, the published sizes of the fixed evaluation sets.
A dataset whose size cannot be known offline is reported as "unknown, assumed N" with N from the config's
caps (or, without a cap, a stated default), never silently.
"""

import glob
import gzip
import io
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
import zstandard

from translations_taskgraph.training_config import parse_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESETS = REPO_ROOT / "pipeline" / "train" / "configs"

MEASURED_DATA = "measured here: benchmarks/bench_data.py --sizes 200000 --threads 1 (2-core host, 2026-12-04)"
ASSUMED_GPU = "assumed (V100-class GPU, fp32; not measured: no GPU Marian on the development host)"


@dataclass(frozen=True)
class Rate:
    value: float  # units of work per second on one device (one CPU core, one GPU)
    unit: str
    source: str


# -- Sizes ---------------------------------------------------------------------------------------------------
# Published sizes of fixed evaluation sets (the importer downloads them, the count is the sets' own).
KNOWN_EVALUATION_SIZES = {
    "flores_dev": (997, "FLORES-200 dev: 997 sentences (the set's README)"),
    "flores_devtest": (1012, "FLORES-200 devtest: 1,012 sentences (the set's README)"),
    "sacrebleu_wmt13": (3000, "newstest2013: 3,000 sentences (sacrebleu's wmt13)"),
    "sacrebleu_wmt14": (3003, "newstest2014 en-fr full: 3,003 sentences (sacrebleu's wmt14/full)"),
    "sacrebleu_wmt15": (1500, "newsdiscusstest2015 en-fr: 1,500 sentences (sacrebleu's wmt15)"),
}
# Without any cap in the config, an unknown parallel / mono dataset is assumed to hold this many lines.
# Assumed: a mid-sized OPUS corpus for a high-resource pair (Europarl en-fr holds about 2M, ParaCrawl 100M+).
ASSUMED_UNCAPPED_PAIRS = 5_000_000
ASSUMED_UNCAPPED_MONO = 10_000_000
ASSUMED_EVALUATION_SENTENCES = 2_000  # assumed: WMT test sets hold 1,000 to 3,000 sentences
# Share of the lines each filter keeps. Assumed 1.0 (nothing removed: an upper bound), no measured funnel of a
# full-size corpus is at hand; the report's funnel.json of a finished run gives the real shares.
KEEP_AFTER_CLEANING = 1.0
KEEP_AFTER_BICLEANER = 1.0
WORDS_PER_LINE = Rate(
    22, "target words per line", "assumed: WMT news and web-crawled sentences, 20 to 25 words"
)

# -- CPU rates (one core) --------------------------------------------------------------------------------------
IMPORT = Rate(
    99_318, "pairs per CPU-second", MEASURED_DATA + ", 'l10n-en-fr import' (decompress + write zstd)"
)
CLEAN = Rate(35_480, "pairs per CPU-second", MEASURED_DATA + ", 'clean: rules + language ID', 200k pairs")
MERGE = Rate(114_204, "pairs per CPU-second", MEASURED_DATA + ", 'merge (dedupe, decontaminate)', 200k pairs")
# A mono line is half a pair: the same cleaning on one side.
CLEAN_MONO = Rate(2 * CLEAN.value, "lines per CPU-second", "derived: twice the measured 'clean' pair rate")
MONOCLEANER = Rate(2_000, "lines per CPU-second", "assumed: monocleaner (language model + fastspell) on CPU")
# The benchmarks' generated pairs have 19.2 target words (14.7 source): their rates are scaled to WORDS_PER_LINE.
BENCH_CHAIN_TARGET_WORDS = 19.2
ALIGN = Rate(
    round(10_000_000 / 5852.4 * BENCH_CHAIN_TARGET_WORDS / WORDS_PER_LINE.value),
    "pairs per CPU-second",
    "measured here: benchmarks/bench_chain.py --sizes 10000000 --stages align --prior-sample-lines 1000000 "
    "--align-chunk-lines 1000000 (the step's default chunk), 10M pairs in 5,852.4 CPU-s on 2 cores "
    "(2026-12-06), scaled from 19.2 to 22 target words a pair",
)
SHORTLIST = Rate(
    round(10_000_000 / 1537.5 * BENCH_CHAIN_TARGET_WORDS / WORDS_PER_LINE.value),
    "pairs per CPU-second",
    "measured here: benchmarks/bench_chain.py --sizes 10000000 --stages shortlist, 10M pairs in 1,537.5 CPU-s "
    "(2 processes, 2026-12-06), scaled from 19.2 to 22 target words a pair",
)
SPM = Rate(
    10_884,
    "lines per CPU-second",
    "measured here: benchmarks/bench_costs.py --threads 1, pipeline/train/spm_vocab.py on the demo corpus's "
    "80,178 lines in 7.4 CPU-s",
)
DECHUNK = Rate(
    IMPORT.value, "lines per CPU-second", "assumed: concatenating chunks, the measured import rate"
)
# Downloads of remote datasets (opus, mtdata, news-crawl, hplt, url): bytes of one pair / line as served.
DOWNLOAD = Rate(20e6, "bytes per second", "assumed: 20 MB/s from OPUS/statmt/HPLT to a cloud worker")
DOWNLOAD_BYTES_PER_PAIR = 170  # assumed: gzip as served, about 1.3x the zstd BYTES_PER_PAIR below

# -- Marian rates ------------------------------------------------------------------------------------------------
# Training, target words per second per GPU, by (model type, architecture preset).
TRAIN_GPU = {
    ("teacher", "big"): Rate(10_000, "target words per GPU-second", ASSUMED_GPU + ": transformer-big"),
    ("teacher", "base"): Rate(25_000, "target words per GPU-second", ASSUMED_GPU + ": transformer-base"),
    ("teacher", "tiny"): Rate(60_000, "target words per GPU-second", ASSUMED_GPU + ": 3+2 layers, 256"),
    ("backward", "big"): Rate(15_000, "target words per GPU-second", ASSUMED_GPU + ": s2s (RNN) preset"),
    ("backward", "base"): Rate(15_000, "target words per GPU-second", ASSUMED_GPU + ": s2s (RNN) preset"),
    ("backward", "tiny"): Rate(60_000, "target words per GPU-second", ASSUMED_GPU + ": 3+2 layers, 256"),
    ("student", "base"): Rate(30_000, "target words per GPU-second", ASSUMED_GPU + ": 6+2 layers, 512"),
    ("student", "base-memory"): Rate(
        35_000, "target words per GPU-second", ASSUMED_GPU + ": 6+4 layers, 384"
    ),
    ("student", "tiny"): Rate(45_000, "target words per GPU-second", ASSUMED_GPU + ": 6+2 layers, 256"),
}
# Training on CPU (the local engine without a GPU), target words per second per core.
TRAIN_CPU_TINY = Rate(
    600,
    "target words per CPU-second",
    "measured here: benchmarks/bench_costs.py --threads 1 --updates 60, teacher.tiny at 527 and 605 words/s on one "
    "thread of the loaded host; README 'Quick start': 1,250 to 1,360 words/s on 2 threads (configs/tiny.en-de.yml)",
)
# Other presets on CPU: the tiny rate divided by their size relative to tiny (assumed: cost ~ parameters).
CPU_SLOWDOWN = {"tiny": 1, "base-memory": 3, "base": 4, "big": 25}
# Several GPUs on one worker (train-teacher on 4): share of linear scaling. Assumed (synchronous SGD, NCCL).
MULTI_GPU_EFFICIENCY = 0.9
# Decoding with beam search (back-translation, distillation, evaluation), target words per second per GPU
# and per model of an ensemble (an ensemble of N runs N models per step).
DECODE_GPU = {
    "teacher": Rate(3_000, "target words per GPU-second", ASSUMED_GPU + ": transformer-big, beam 8, n-best"),
    "backward": Rate(8_000, "target words per GPU-second", ASSUMED_GPU + ": s2s, beam 8"),
    "student": Rate(15_000, "target words per GPU-second", ASSUMED_GPU + ": student, beam 1"),
}
# Teacher and backward presets other than big decode this many times faster on a GPU (assumed: fewer layers
# and narrower; a GPU gains less from a smaller model than a CPU does).
GPU_DECODE_SPEEDUP = {"big": 1, "base": 2, "tiny": 4}
# Decoding on CPU, per core, for the tiny presets; other presets are CPU_SLOWDOWN times slower. Measured with
# pymarian on 2 threads, the demo's 1,000 test sentences (9,772 French words), the CPU decoding batches
# (pipeline/common/marian.py, CPU_DECODING_BATCHES): the beam-4 tiny teacher in 15.8 s, the int8 student with its
# shortlist in 2.9 s.
DECODE_CPU_TINY = {
    "teacher": Rate(
        309, "target words per CPU-second", "measured here: 9,772 words / (15.8 s x 2 threads), beam 4"
    ),
    "backward": Rate(
        309,
        "target words per CPU-second",
        "derived: the tiny backward preset is the tiny teacher's architecture",
    ),
    "student": Rate(
        1_685,
        "target words per CPU-second",
        "measured here: 9,772 words / (2.9 s x 2 threads), int8 student with shortlist (fp32 is slower)",
    ),
}
# Scoring (cross-entropy filter of the distilled corpus by the backward model): a forward pass, no search.
SCORE_GPU = Rate(40_000, "target words per GPU-second", ASSUMED_GPU + ": s2s forward pass, about 3x training")
SCORE_CPU_TINY = Rate(
    1_372,
    "target words per CPU-second",
    "measured here: benchmarks/bench_costs.py --threads 1, marian-scorer with teacher.tiny on the demo's 1,000 test "
    "pairs (9,772 words) in 7.1 CPU-s, model loading included",
)
BICLEANER_GPU = Rate(
    1_500, "pairs per GPU-second", "assumed: bicleaner-ai (XLM-R-small classifier) on one GPU"
)
BICLEANER_CPU = Rate(50, "pairs per CPU-second", "assumed: bicleaner-ai classifier on one core")
# Passes over the corpus until early stopping when `after` gives no cap (assumed: the reference's training
# guide says early-stopping 20 for teachers, 15 students; no published number of passes).
EPOCHS_UNTIL_EARLY_STOP = {"backward": 4, "teacher": 4, "student": 6, "student-finetuned": 1}
# Sentence pairs in one update when Marian fits the batch to the GPU memory (mini-batch-fit), times
# optimizer-delay. Assumed: 12 GB workspace, transformer-big, ~25 words per pair.
PAIRS_PER_UPDATE_FIT = 1_500
# Fixed steps, seconds on their worker.
FIXED_SECONDS = {
    "quantize": (600, "assumed: int8 conversion and its calibration decode"),
    "export": (60, "assumed: gzip of model, vocab and shortlist"),
    "report": (30, "assumed: reading stats and logs"),
    "fetch-model": (120, "assumed: downloading a cleaner model (hundreds of MB)"),
    "docker-image": (1800, "assumed: image build (usually cached by Taskcluster)"),
}
# Start-up of the Python data steps (imports, numba compilation), seconds.
START_UP = {
    "clean": (
        0.91,
        "measured here: benchmarks/bench_data.py start-up, clean with language ID, 10 pairs, best of 3",
    ),
    "merge": (1.21, "measured here: benchmarks/bench_data.py start-up, merge, 10 pairs, best of 3"),
}
# Task overhead: image pull, checkout, fetches of the upstream artifacts.
TASK_OVERHEAD = {
    "taskcluster": (180, "assumed: docker image pull, checkout, fetches"),
    "local": (1, "measured here: runs/tiny-en-de dataset tasks took 0.2 to 0.3 s (done.json)"),
}
# Cores of a worker (the config names the worker type, not its machine). Assumed.
WORKER_CORES = {"cpu": 16, "gpu": 8}

# -- Disk ------------------------------------------------------------------------------------------------------
# Derived: measured on runs/tiny-en-de (local engine, this host): its merged corpus takes 43.6 bytes a pair
# (corpus.en.zst + corpus.de.zst, 23,939 pairs of 7.4 words a line) and its alignments 6.0 bytes a line
# (corpus.aln.zst); scaled to WORDS_PER_LINE (x 22 / 7.4, assumed: compressed bytes grow with the words).
BYTES_PER_PAIR = 43.6 * 22 / 7.4
BYTES_PER_LINE = BYTES_PER_PAIR / 2
BYTES_PER_ALIGNMENT_LINE = 6.0 * 22 / 7.4
# One trained model's artifacts: best and last checkpoint, optimizer state (assumed: parameters x 4 bytes x 3).
CHECKPOINT_BYTES = {"tiny": 40e6, "base-memory": 250e6, "base": 300e6, "big": 2.5e9}


def count_lines(name: str) -> int | None:
    """Lines of a `local_` dataset's first file (`<prefix>.<lang>[.gz|.zst|.txt]`), None when unknown offline."""
    provider, prefix = parse_dataset(name)
    if provider != "local":
        return None
    folder, stem = (REPO_ROOT / prefix).parent, Path(prefix).name
    for path in sorted(folder.glob(f"{glob.escape(stem)}.*")):
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return sum(1 for _ in f)
        if path.suffix == ".zst":
            with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as f:
                return sum(1 for _ in io.BufferedReader(f))
        with path.open("rb") as f:
            return sum(1 for _ in f)
    return None


def dataset_sizes(config: dict, count=count_lines) -> tuple[dict, list[dict]]:
    """(category, dataset) -> lines that its import writes, and for each how its size is known or assumed."""
    experiment, datasets = config["experiment"], config["datasets"]
    sizes, notes = {}, []
    counted = {name: count(name) for names in datasets.values() for name in names}  # each file read once
    unknown = {c: [n for n in names if counted[n] is None] for c, names in datasets.items()}
    for category, names in datasets.items():
        for name in names:
            lines = counted[name]
            how = f"counted in the local file: {lines:,} lines" if lines is not None else ""
            if category in ("devtest", "test"):
                if lines is None and name in KNOWN_EVALUATION_SIZES:
                    lines, how = KNOWN_EVALUATION_SIZES[name]
                elif lines is None:
                    lines = ASSUMED_EVALUATION_SENTENCES
                    how = f"unknown, assumed {lines:,} (ASSUMED_EVALUATION_SENTENCES)"
            elif category == "train" and lines is None:
                cap = experiment.get("corpus-max-sentences")
                if cap:
                    lines = math.ceil(cap / len(unknown[category]))
                    how = (
                        f"unknown, assumed {lines:,} (corpus-max-sentences {cap:,} shared by the "
                        f"{len(unknown[category])} datasets of unknown size)"
                    )
                else:
                    lines = ASSUMED_UNCAPPED_PAIRS
                    how = f"unknown, assumed {lines:,} (no corpus-max-sentences: ASSUMED_UNCAPPED_PAIRS)"
            elif category.startswith("mono"):
                caps = experiment.get(f"mono-max-sentences-{category.removeprefix('mono-')}") or {}
                per_dataset = caps.get("per-dataset")
                if lines is None:
                    if per_dataset:
                        lines = per_dataset
                        how = f"unknown, assumed {lines:,} (mono-max-sentences per-dataset cap)"
                    else:
                        lines = ASSUMED_UNCAPPED_MONO
                        how = f"unknown, assumed {lines:,} (no per-dataset cap: ASSUMED_UNCAPPED_MONO)"
                elif per_dataset and lines > per_dataset:
                    how = f"counted {lines:,} lines, capped at the per-dataset {per_dataset:,}"
                    lines = per_dataset
            sizes[(category, name)] = lines
            notes.append({"category": category, "dataset": name, "lines": lines, "size": how})
    return sizes, notes


def corpus_sizes(config: dict, sizes: dict) -> dict:
    """Lines of the corpora that flow through the pipeline, from the dataset sizes and the config's caps."""
    experiment = config["experiment"]
    train = sum(n for (c, _), n in sizes.items() if c == "train") * KEEP_AFTER_CLEANING * KEEP_AFTER_BICLEANER
    if experiment.get("corpus-max-sentences"):
        train = min(train, experiment["corpus-max-sentences"])
    flows = {"train": int(train)}
    for side in ("src", "trg"):
        total = sum(n for (c, _), n in sizes.items() if c == f"mono-{side}")
        cap = (experiment.get(f"mono-max-sentences-{side}") or {}).get("total")
        flows[f"mono-{side}"] = int(min(total, cap) if cap else total)
    devtest = sum(n for (c, _), n in sizes.items() if c == "devtest")
    flows["devset"] = int(min(devtest, experiment.get("dev-max-sentences") or devtest))
    flows["backtranslated"] = flows["mono-trg"]
    distilled = flows["train"] + flows["mono-src"]
    flows["distilled"] = distilled
    flows["filtered"] = int(distilled * (1 - experiment.get("cefilter-remove-fraction", 0)))
    return flows


def parse_after(after) -> dict:
    """`10e,20m` -> {"e": 10, "s": 1200}; units e (passes), u (updates), t (target labels), s/m/h (wall)."""
    caps = {}
    for part in str(after or "").replace(" ", "").split(","):
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([eutsmh])", part)
        if not match:
            continue
        value, unit = float(match.group(1)), match.group(2)
        if unit in "smh":
            unit, value = "s", value * {"s": 1, "m": 60, "h": 3600}[unit]
        caps[unit] = min(caps.get(unit, math.inf), value)
    return caps


def curriculum_lines(path: Path, sizes: dict[str, float]) -> tuple[float, float]:
    """Lines an OpusTrainer curriculum feeds: (lines before the open-ended last stage, lines per pass of it).

    `until <dataset> <n>` ends a stage after n passes over `dataset`, which is `weight` of the mix: the stage
    feeds n * size / weight lines. `until ... inf` (until Marian stops): the caller counts its passes."""
    curriculum = yaml.safe_load(path.read_text())
    fixed, open_ended = 0.0, 0.0
    for stage in curriculum.get("stages", []):
        weights, until = {}, None
        for entry in curriculum.get(stage, []):
            words = str(entry).split()
            if words[0] == "until":
                until = (words[1], words[2])
            elif len(words) == 2:
                weights[words[0]] = float(words[1])
        if until is None:
            continue
        name, passes = until
        if name not in sizes or not weights.get(name):
            continue
        if any(sizes.get(n, 0) == 0 for n in weights):  # a stage over an empty corpus is dropped
            continue
        per_pass = sizes[name] / weights[name]
        if passes == "inf":
            open_ended += per_pass
        else:
            fixed += float(passes) * per_pass
    return fixed, open_ended


def training_plan(model_type: str, architecture: str, config: dict, flows: dict) -> dict:
    """Lines a training feeds, and the caps of its `after` (from the preset and the config's marian-args)."""
    key = {
        "backward": "training-backward",
        "teacher": "training-teacher",
        "student": "training-student",
        "student-finetuned": "training-student-finetuned",
    }[model_type]
    preset_type = "student" if model_type == "student-finetuned" else model_type
    options = {}
    preset = PRESETS / "model" / f"{preset_type}.{architecture}.yml"
    if preset.exists():
        options.update(yaml.safe_load(preset.read_text()) or {})
    if model_type == "student-finetuned" and (PRESETS / "finetune" / "student.yml").exists():
        options.update(yaml.safe_load((PRESETS / "finetune" / "student.yml").read_text()) or {})
    options.update(config.get("marian-args", {}).get(key, {}) or {})
    caps = parse_after(options.get("after"))
    if model_type == "teacher":
        curriculum = (
            PRESETS / "opustrainer" / f"teacher.{config['experiment'].get('teacher-mode', 'two-stage')}.yml"
        )
        corpora = {"original": flows["train"], "backtranslated": flows["backtranslated"]}
        corpus = flows["train"]
    elif model_type == "backward":
        curriculum = PRESETS / "opustrainer" / "backward.yml"
        corpora = {"original": flows["train"]}
        corpus = flows["train"]
    else:
        curriculum = PRESETS / "opustrainer" / "student.yml"
        corpora = {"original": flows["filtered"]}
        corpus = flows["filtered"]
    fixed, per_pass = curriculum_lines(curriculum, corpora) if curriculum.exists() else (0.0, corpus)
    per_pass = per_pass or corpus
    assumed = EPOCHS_UNTIL_EARLY_STOP[model_type]
    epochs = min(assumed, caps["e"]) if "e" in caps else assumed
    lines = fixed + epochs * per_pass
    if "u" in caps:
        if options.get("mini-batch") and not options.get("mini-batch-fit"):
            per_update = float(options["mini-batch"]) * float(options.get("optimizer-delay", 1))
        else:
            per_update = PAIRS_PER_UPDATE_FIT * float(options.get("optimizer-delay", 1))
        lines = min(lines, caps["u"] * per_update)
    words = lines * WORDS_PER_LINE.value
    if "t" in caps:
        words = min(words, caps["t"])
    return {
        "lines": lines,
        "words": words,
        "epochs_after_curriculum": epochs,
        "epochs_assumed": "e" not in caps or caps["e"] > assumed,
        "wall_cap_s": caps.get("s"),
    }


def translated_lines(kind: str, flows: dict) -> int:
    """Lines of the corpus that a translation stage's kind (chunk, translate, dechunk) works through."""
    if kind.startswith("backtranslations"):
        return flows["backtranslated"]
    return flows["mono-src"] if "mono-src" in kind else flows["train"]


def _arg(task: dict, name: str):
    for item in (task["attributes"].get("step") or {}).get("args", []):
        if isinstance(item, list) and item and item[0] == name:
            return item[1] if len(item) > 1 else True
    return None


def task_cost(task: dict, config: dict, sizes: dict, flows: dict, devices: dict) -> dict:
    """Seconds, GPUs, cores, GPU- and CPU-seconds and artifact bytes of one task of the graph.

    `devices`: {"engine": "taskcluster"|"local", "gpus": GPUs of the task's worker, "cores": its cores}."""
    attributes = task["attributes"]
    kind = attributes.get("kind", task["label"].split("-")[0])
    gpus, cores = devices["gpus"], devices["cores"]
    wants = ((attributes.get("step") or {}).get("resources") or {}).get("cpus", 1)
    threads = cores if wants == "all" else min(int(wants), cores)
    dataset = attributes.get("dataset")
    categories = attributes.get("dataset-categories") or []
    category = categories[0] if categories else None
    lines = sizes.get((category, dataset), 0) if dataset else 0
    is_mono = bool(category and category.startswith("mono"))
    chunks = int(_arg(task, "--chunks") or 1)
    experiment = config["experiment"]
    words = WORDS_PER_LINE.value
    cpu_work = 0.0  # CPU-seconds on one core
    gpu_work = 0.0  # GPU-seconds on one GPU
    extra_seconds = 0.0  # time that is neither (downloads, fixed steps)
    disk = 0.0
    basis = ""

    def marian(work: float, gpu_rate: Rate, cpu_rate: Rate, members: int = 1, architecture: str = "big"):
        """Work (words, or pairs for bicleaner) of a Marian-like model at `architecture`, N ensemble members."""
        nonlocal cpu_work, gpu_work
        if gpus:
            gpu_work += members * work / (gpu_rate.value * GPU_DECODE_SPEEDUP.get(architecture, 1))
        else:
            cpu_work += members * work * CPU_SLOWDOWN.get(architecture, 1) / cpu_rate.value

    architectures = {
        "teacher": str(experiment.get("teacher-model", "big")),
        "backward": str(experiment.get("teacher-model", "big")),  # the backward preset follows the teacher's
        "student": str(experiment.get("student-model", "base-memory")),
    }

    if kind == "dataset":
        cpu_work = lines / IMPORT.value
        if attributes.get("provider") != "local":
            extra_seconds = lines * DOWNLOAD_BYTES_PER_PAIR / (2 if is_mono else 1) / DOWNLOAD.value
        disk = lines * (BYTES_PER_LINE if is_mono else BYTES_PER_PAIR)
        basis = f"{lines:,} lines"
    elif kind == "corpus-clean-parallel":
        cpu_work, disk, basis = lines / CLEAN.value, lines * BYTES_PER_PAIR, f"{lines:,} pairs"
        extra_seconds = START_UP["clean"][0]
    elif kind == "corpus-clean-mono":
        cpu_work, disk, basis = lines / CLEAN_MONO.value, lines * BYTES_PER_LINE, f"{lines:,} lines"
    elif kind == "corpus-clean-mono-monocleaner":
        rate = MONOCLEANER if attributes.get("monocleaner-threshold") else IMPORT  # threshold 0: copied
        cpu_work, disk, basis = lines / rate.value, lines * BYTES_PER_LINE, f"{lines:,} lines"
    elif kind == "corpus-clean-parallel-bicleaner-ai":
        if float(_arg(task, "--threshold") or 0):
            marian(lines, BICLEANER_GPU, BICLEANER_CPU, 1, "tiny" if not gpus else "big")  # pairs, not words
        else:
            cpu_work = lines / IMPORT.value
        disk, basis = lines * BYTES_PER_PAIR, f"{lines:,} pairs"
    elif kind in ("corpus-clean-parallel-fetch-bicleaner-model", "corpus-clean-mono-fetch-monocleaner-model"):
        extra_seconds, basis = FIXED_SECONDS["fetch-model"][0], "fixed"
    elif kind == "corpus-merge-parallel":
        total = sum(n for (c, _), n in sizes.items() if c == "train")
        cpu_work, disk, basis = total / MERGE.value, flows["train"] * BYTES_PER_PAIR, f"{total:,} pairs in"
        extra_seconds = START_UP["merge"][0]
    elif kind == "corpus-merge-devset":
        cpu_work, disk, basis = flows["devset"] / MERGE.value, flows["devset"] * BYTES_PER_PAIR, "devsets"
    elif kind == "corpus-merge-mono":
        side = attributes.get("side", "src")
        total = sum(n for (c, _), n in sizes.items() if c == f"mono-{side}")
        cpu_work = total / (2 * MERGE.value)
        disk, basis = flows[f"mono-{side}"] * BYTES_PER_LINE, f"{total:,} lines in"
    elif kind == "corpus-merge-distillation":
        n = flows["distilled"]
        cpu_work, disk, basis = n / MERGE.value, n * BYTES_PER_PAIR, f"{n:,} pairs"
    elif kind == "build-vocab":
        n = 2 * min(experiment.get("spm-sample-size") or flows["train"], flows["train"])
        cpu_work, basis = n / SPM.value, f"{n:,} lines sampled"
    elif kind.startswith("corpus-align-"):
        n = {"parallel": flows["train"], "backtranslations": flows["backtranslated"]}.get(
            kind.removeprefix("corpus-align-"), flows["filtered"]
        )
        cpu_work, disk, basis = n / ALIGN.value, n * BYTES_PER_ALIGNMENT_LINE, f"{n:,} pairs"
    elif kind == "distillation-corpus-build-shortlist":
        cpu_work, basis = flows["filtered"] / SHORTLIST.value, f"{flows['filtered']:,} pairs"
    elif kind.endswith("-chunk"):
        n, sides = translated_lines(kind, flows), 1 if "mono" in kind else 2
        cpu_work, disk, basis = sides * n / DECHUNK.value, sides * n * BYTES_PER_LINE, f"{n:,} lines"
    elif kind.endswith("-dechunk-translations"):
        n = translated_lines(kind, flows)
        cpu_work, disk, basis = n / DECHUNK.value, n * BYTES_PER_LINE, f"{n:,} lines"
    elif kind.endswith("-translate"):
        n = translated_lines(kind, flows)
        if kind.startswith("backtranslations"):
            model, members = "backward", 1
        else:
            model = "teacher"
            dirs = _arg(task, "--model-dirs")
            members = len(dirs) if isinstance(dirs, list) else int(experiment.get("teacher-ensemble", 1))
        n = math.ceil(n / chunks)
        marian(n * words, DECODE_GPU[model], DECODE_CPU_TINY[model], members, architectures[model])
        disk = n * BYTES_PER_LINE
        basis = f"{n:,} lines (1/{chunks}), {members} model{'s' if members > 1 else ''}"
    elif kind == "distillation-corpus-final-filtering":
        n = flows["distilled"]
        marian(n * words, SCORE_GPU, SCORE_CPU_TINY, 1, architectures["backward"])
        disk, basis = flows["filtered"] * BYTES_PER_PAIR, f"{n:,} pairs scored"
    elif kind in (
        "backtranslations-train-backwards-model",
        "train-teacher",
        "distillation-student-model-train",
        "distillation-student-model-finetune",
    ):
        model_type = {
            "backtranslations-train-backwards-model": "backward",
            "train-teacher": "teacher",
            "distillation-student-model-train": "student",
            "distillation-student-model-finetune": "student-finetuned",
        }[kind]
        architecture = str(_arg(task, "--architecture") or experiment.get("teacher-model", "big"))
        plan = training_plan(model_type, architecture, config, flows)
        rate_key = ("student" if model_type == "student-finetuned" else model_type, architecture)
        gpu_rate = TRAIN_GPU.get(rate_key, TRAIN_GPU[("teacher", "big")])
        if gpus:
            speed = gpu_rate.value * gpus * (MULTI_GPU_EFFICIENCY if gpus > 1 else 1)
        else:
            speed = TRAIN_CPU_TINY.value * threads / CPU_SLOWDOWN.get(architecture, 25)
        seconds = plan["words"] / speed
        if plan["wall_cap_s"] is not None:
            seconds = min(seconds, plan["wall_cap_s"])
        if gpus:
            gpu_work = seconds * gpus
        else:
            cpu_work = seconds * threads
        disk = CHECKPOINT_BYTES.get(architecture, CHECKPOINT_BYTES["big"])
        passes = plan["epochs_after_curriculum"]
        basis = f"{plan['lines']:,.0f} lines fed ({passes:g} pass{'' if passes == 1 else 'es'}"
        basis += " assumed)" if plan["epochs_assumed"] else ")"
        if plan["wall_cap_s"] is not None and seconds >= plan["wall_cap_s"]:
            basis += f", wall-time cap {plan['wall_cap_s']:.0f} s"
    elif kind.startswith("evaluate-"):
        n = lines
        model = {"evaluate-backwards": "backward", "evaluate-teacher": "teacher"}.get(kind, "student")
        members = int(experiment.get("teacher-ensemble", 1)) if kind == "evaluate-teacher-ensemble" else 1
        if kind == "evaluate-teacher-ensemble":
            model = "teacher"
        # DECODE_GPU["student"] is the configured student's own rate: no architecture factor on a GPU.
        architecture = "big" if model == "student" and gpus else architectures[model]
        marian(n * words, DECODE_GPU[model], DECODE_CPU_TINY[model], members, architecture)
        basis = f"{n:,} sentences"
    elif kind == "distillation-student-model-quantize":
        extra_seconds, basis = FIXED_SECONDS["quantize"][0], "fixed"
        disk = CHECKPOINT_BYTES["tiny"]
    elif kind in ("export", "report", "docker-image"):
        extra_seconds, basis = FIXED_SECONDS[kind][0], "fixed"
    else:
        basis = "not modelled: overhead only"

    # Wall time: CPU work spread over the task's threads, GPU work over its GPUs (already per GPU for training).
    seconds = cpu_work / max(threads, 1) + (gpu_work / gpus if gpus else 0.0)
    overhead = TASK_OVERHEAD[devices["engine"]][0]
    seconds += extra_seconds + overhead
    # GPU-hours and CPU-hours are what the task holds: its worker's GPUs, or the cores it runs on, for its whole
    # time (overhead included), as a cloud bill counts them.
    return {
        "label": task["label"],
        "kind": kind,
        "stage": attributes.get("stage", kind),
        "seconds": seconds,
        "gpus": gpus,
        "threads": threads,
        "gpu_seconds": seconds * gpus,
        "cpu_seconds": 0.0 if gpus else seconds * threads,
        "disk_bytes": disk,
        "basis": basis,
    }


def rates() -> dict:
    """Every rate and constant with its source, for the JSON output."""
    table = {}
    for name, value in globals().items():
        if isinstance(value, Rate):
            table[name] = asdict(value)
        elif name in ("TRAIN_GPU", "DECODE_GPU", "DECODE_CPU_TINY"):
            table[name] = {"/".join(k) if isinstance(k, tuple) else k: asdict(v) for k, v in value.items()}
    table["FIXED_SECONDS"] = {k: {"value": v, "source": s} for k, (v, s) in FIXED_SECONDS.items()}
    for name in ("TASK_OVERHEAD", "START_UP"):
        table[name] = {k: {"value": v, "source": s} for k, (v, s) in globals()[name].items()}
    return table
