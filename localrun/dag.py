"""The task graph as Graphviz DOT, readable at any size: tasks grouped by the phase of the run they belong to (data,
back-translation, teacher, distillation, student, evaluation, results: a cluster each), and, unless every task is asked for, the tasks of one kind (chunks, datasets, ensemble
members) collapsed into one node that says how many there are and how many are done."""

COLORS = {"done": "palegreen", "stale": "khaki", "started": "lightskyblue", "pending": "white"}
# The phases of a run, and the kinds (by name prefix; the first match wins) that make each.
PHASES = [
    ("student", ("distillation-student-model-",)),
    ("distillation", ("distillation-", "corpus-merge-distillation", "corpus-align-distillation")),
    ("back-translation", ("backtranslations-",)),
    ("teacher", ("train-teacher", "corpus-align-parallel", "corpus-align-backtranslations")),
    ("data", ("dataset", "corpus-", "build-vocab")),
    ("evaluation", ("evaluate-",)),
    ("results", ("export", "report")),
]
ORDER = ["data", "back-translation", "teacher", "distillation", "student", "evaluation", "results", "other"]


def phase_of(kind: str) -> str:
    return next((phase for phase, prefixes in PHASES if kind.startswith(prefixes)), "other")


def collapsed_state(states: list[str]) -> str:
    if all(state == "done" for state in states):
        return "done"
    if any(state == "started" for state in states):
        return "started"
    return "stale" if any(state == "stale" for state in states) else "pending"


def quote(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def dag_dot(plan: dict, states: dict[str, str], every_task: bool = False) -> str:
    tasks = plan["tasks"]
    by_kind: dict[str, list[str]] = {}
    for label in plan["order"]:
        by_kind.setdefault(tasks[label]["kind"], []).append(label)
    node_of = {}
    for kind, labels in by_kind.items():
        for label in labels:
            node_of[label] = label if every_task or len(labels) == 1 else kind
    nodes: dict[str, dict] = {}
    for kind, labels in by_kind.items():
        for label in labels:
            node = nodes.setdefault(node_of[label], {"kind": kind, "labels": []})
            node["labels"].append(label)
    lines = [
        "digraph tasks {",
        "  rankdir=LR;",
        "  compound=true;",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica];',
    ]
    clusters: dict[str, list[str]] = {}
    for node, info in nodes.items():
        clusters.setdefault(phase_of(info["kind"]), []).append(node)
    for number, phase in enumerate(sorted(clusters, key=ORDER.index)):
        lines += [
            f"  subgraph cluster_{number} {{",
            f"    label={quote(phase)};",
            '    style="rounded";',
            "    color=gray60;",
        ]
        for node in clusters[phase]:
            labels = nodes[node]["labels"]
            state = collapsed_state([states[label] for label in labels])
            if len(labels) == 1:
                text = labels[0]
            else:
                done = sum(states[label] == "done" for label in labels)
                text = f"{node}\\n{len(labels)} tasks, {done} done"
            lines.append(f"    {quote(node)} [label={quote(text)}, fillcolor={COLORS[state]}];")
        lines.append("  }")
    edges = {
        (node_of[dependency], node_of[label])
        for label in plan["order"]
        for dependency in tasks[label]["dependencies"]
        if dependency in node_of and node_of[dependency] != node_of[label]
    }
    lines += [f"  {quote(a)} -> {quote(b)};" for a, b in sorted(edges)]
    lines.append("}")
    return "\n".join(lines) + "\n"
