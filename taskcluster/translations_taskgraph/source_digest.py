"""The source files a step script runs: the script, the `pipeline` modules it imports (transitively) and the
data files in the script's folder (presets).

A cached task's digest covers exactly these files (found by parsing the imports, not by hashing the whole
tree), so editing one step script re-runs only its tasks and what depends on them, and editing a helper in
pipeline/common/ re-runs only the steps that import it.
"""

import ast
import hashlib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGE = "pipeline"


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


def _imported_modules(path: Path, module: str, root: Path) -> set[str]:
    tree = ast.parse(read_bytes(path), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
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
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


def script_sources(script: str, root: Path = REPO_ROOT) -> list[str]:
    """The repository paths of the script and every `pipeline` module it imports, sorted."""
    module = script.removesuffix(".py").replace("/", ".")
    seen: dict[str, Path] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        path = _module_path(name, root)
        if path is None or name in seen:
            continue
        seen[name] = path
        for init in _package_inits(name, root):
            seen.setdefault(init.relative_to(root).as_posix(), init)
        pending.extend(_imported_modules(path, name, root) - set(seen))
    if module not in seen:
        raise FileNotFoundError(f"step script {script} does not exist")
    files = {path.relative_to(root).as_posix() for path in seen.values()}
    # Data files next to the script (e.g. pipeline/train/configs/ presets) are read by it too.
    folder = seen[module].parent
    files.update(
        path.relative_to(root).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    )
    return sorted(files)


def source_digest(script: str, root: Path = REPO_ROOT) -> str:
    digest = hashlib.sha256()
    for relative in script_sources(script, root):
        digest.update(relative.encode() + b"\0" + hashlib.sha256(read_bytes(root / relative)).digest())
    return digest.hexdigest()
