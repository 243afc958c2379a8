"""What decides a task's outputs, digested the same way for both engines.

`step_digest(step)` covers a step's definition (module, resolved arguments, which carry the config values the
step reads, environment, outputs), the content of the local files it imports (`local-inputs`, `repo-inputs`)
and its code: the step script, the `pipeline` modules it imports (transitively, found by parsing the imports,
not by hashing the whole tree), the files those modules name by path (`pymarian_cli.py`, which Marian steps run
by path; folders such as `configs`) and the data files in the script's folder (presets). Python sources are
digested as their syntax tree, printed back without docstrings, comments or formatting (`ast.unparse`), so an
edit that cannot change what a step does changes no digest; other files byte for byte. The local engine keys
its `done.json` on it (with the upstream digests, localrun/plan.py); the Taskcluster cache key adds the worker
command and the docker image's digest (transforms/cache.py).

The printed tree depends on the Python version that renders the graph (the decision image's pinned one).
"""

import ast
import functools
import hashlib
import json
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGE = "pipeline"
MODULE_NAME = re.compile(rf"{PACKAGE}(\.[A-Za-z_][A-Za-z0-9_]*)+")
# The parts of a step's definition that decide its outputs (not its resources: threads and memory).
DEFINITION_KEYS = ("module", "args", "env", "outputs", "local-inputs", "repo-inputs")


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def _module_path(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _package_inits(module: str, root: Path) -> list[Path]:
    parts = module.split(".")
    inits = [root.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]
    return [path for path in inits if path.is_file()]


@functools.cache
def _references(data: bytes, filename: str, package: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """The `pipeline` modules a module's source imports or runs by name, and the strings it holds. Cached by
    content: a graph asks for the same modules once per task."""
    tree = ast.parse(data, filename=filename)
    found = set()
    strings = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, node.module] if node.module else parent)
            else:
                base = node.module or ""
            found.add(base)
            # `from pipeline.common import io` imports the module pipeline.common.io.
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.append(node.value)
            # Modules run by name: `[sys.executable, "-m", "pipeline.train.curriculum_feed", ...]`.
            if MODULE_NAME.fullmatch(node.value):
                found.add(node.value)
    imports = frozenset(name for name in found if name == PACKAGE or name.startswith(PACKAGE + "."))
    return imports, tuple(strings)


def _module_references(path: Path, module: str, is_package: bool) -> tuple[frozenset[str], tuple[str, ...]]:
    package = module if is_package else module.rpartition(".")[0]
    return _references(read_bytes(path), str(path), package)


def _files_named(strings: tuple[str, ...], folder: Path) -> set[Path]:
    """Files (and the files of folders) of `folder` that a module names in a string: `"pymarian_cli.py"` in
    `Path(__file__).with_name("pymarian_cli.py")`, `"configs"` in `Path(__file__).parent / "configs"`."""
    found = set()
    for name in strings:
        if not name or name.startswith(".") or "/" in name or "\0" in name or len(name) > 100:
            continue
        path = folder / name
        if path.is_file():
            found.add(path)
        elif path.is_dir() and name != "__pycache__":
            found.update(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return found


def script_sources(script: str, root: Path = REPO_ROOT) -> list[str]:
    """The repository paths of the script, every `pipeline` module it imports and every file they name or
    keep beside the script, sorted."""
    module = script.removesuffix(".py").replace("/", ".")
    seen: dict[str, Path] = {}
    files: set[Path] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        path = _module_path(name, root)
        if path is None or name in seen:
            continue
        seen[name] = path
        files.update(_package_inits(name, root))
        imports, strings = _module_references(path, name, path.name == "__init__.py")
        pending.extend(imports - set(seen))
        for named in _files_named(strings, path.parent):
            files.add(named)
            if named.suffix == ".py":  # a script run by path: its own imports count too
                pending.extend(_module_references(named, name, False)[0] - set(seen))
    if module not in seen:
        raise FileNotFoundError(f"step script {script} does not exist")
    files.update(seen.values())
    # Data files next to the script (e.g. pipeline/train/configs/ presets) are read by it too.
    folder = seen[module].parent
    files.update(
        path
        for path in folder.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    )
    return sorted(path.relative_to(root).as_posix() for path in files)


def _without_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


def normalized_content(path: Path) -> bytes:
    """What of a file decides a step's behaviour: a Python module's code without docstrings, comments or
    formatting; any other file's bytes."""
    return _normalized(read_bytes(path), path.suffix == ".py", str(path))


@functools.cache
def _normalized(data: bytes, is_python: bool, filename: str) -> bytes:
    if not is_python:
        return data
    try:
        tree = ast.parse(data, filename=filename)
    except SyntaxError:
        return data
    return ast.unparse(_without_docstrings(tree)).encode()


def source_digest(script: str, root: Path = REPO_ROOT) -> str:
    digest = hashlib.sha256()
    for relative in script_sources(script, root):
        digest.update(
            relative.encode() + b"\0" + hashlib.sha256(normalized_content(root / relative)).digest()
        )
    return digest.hexdigest()


def step_digest(step: dict, root: Path = REPO_ROOT) -> str:
    """The digest of what decides a step's outputs (the module docstring says what): one function for the
    local engine's task digests and the Taskcluster cache key."""
    definition = {key: step[key] for key in DEFINITION_KEYS if key in step}
    payload = json.dumps(definition, sort_keys=True) + "\0" + source_digest(step["script"], root)
    return hashlib.sha256(payload.encode()).hexdigest()
