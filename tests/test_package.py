"""The project is a package installed in .venv (issue 22, item 6): every module imports, and the entry points and
`python -m` run, from any working directory and without PYTHONPATH; no module edits sys.path or changes the
working directory."""

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import REPO_ROOT

PACKAGES = {"pipeline": REPO_ROOT / "pipeline", "localrun": REPO_ROOT / "localrun"}
PACKAGES["translations_taskgraph"] = REPO_ROOT / "taskcluster" / "translations_taskgraph"
# Run by path, in another environment (pymarian's own command line, COMET's, TensorBoard's): not imported here.
RUN_BY_PATH = {"pipeline.common.pymarian_cli", "pipeline.eval.comet_scorer", "localrun.tensorboard_events"}


def modules() -> list[str]:
    names = []
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            name = ".".join((package, *parts)).removesuffix(".__init__")
            if name not in RUN_BY_PATH:
                names.append(name)
    return names


def outside_env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_every_module_imports_from_another_directory_without_pythonpath(tmp_path):
    names = modules()
    assert len(names) > 60
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code, *names], cwd=tmp_path, env=outside_env(), capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_the_entry_points_run_from_another_directory(tmp_path):
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"translations-run", "translations-validate", "translations-status"} <= set(scripts)
    bin_dir = Path(sys.executable).parent
    for name in scripts:
        result = subprocess.run(
            [str(bin_dir / name), "--help"], cwd=tmp_path, env=outside_env(), capture_output=True, text=True
        )
        assert result.returncode == 0 and "usage" in result.stdout.lower(), (name, result.stderr[-2000:])
    result = subprocess.run(
        [sys.executable, "-m", "translations_taskgraph.validate", "--help"],
        cwd=tmp_path,
        env=outside_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_no_module_edits_sys_path_or_changes_directory():
    offenders = []
    folders = [*PACKAGES.values(), REPO_ROOT / "benchmarks", REPO_ROOT / "scripts"]
    for folder in folders:
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    target = ast.unparse(node.func)
                    if target in ("sys.path.insert", "sys.path.append", "os.chdir"):
                        offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {target}")
    # preflight-check runs taskgraph's train action in a scratch directory, where taskgraph writes its artifacts/
    # (relative to the working directory), and goes back: the one change of directory left.
    assert [o.split(":")[0] for o in offenders] == ["taskcluster/translations_taskgraph/preflight.py"] * 2, (
        offenders
    )
