"""Docker images read without a Docker engine: the Dockerfile parser, and the Python environment an image
declares (the virtual environments its RUN commands create and fill, and the one `python3` runs in by its PATH),
so that tests can check that every task runs in an image that has what its step imports.

What an image declares is read from its Dockerfile and the files it installs: `poetry sync` installs the packages
of poetry.lock in the groups it selects (main and every non-optional group unless --only/--with/--without say
otherwise); `<venv>/bin/pip install SPEC...` installs the named distributions in <venv> (their own dependencies
come along but are not counted: an import of one must be named). Anything else that installs Python packages
(`pip install -r`, a bare `pip`) is refused, so that the declaration cannot silently go stale.
"""

import ast
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = REPO_ROOT / "taskcluster" / "docker"
INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip
# Where a base image's own python3 lives: a PATH that reaches one of these before a virtual environment's bin/
# runs the base image's interpreter, whose packages no Dockerfile here declares.
SYSTEM_BINS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

# The import names of the distributions whose names do not give them (a distribution `foo-bar` is imported as
# `foo_bar` otherwise). tests/test_image_environments.py checks every entry against the installed RECORDs.
IMPORT_NAMES = {
    "pyyaml": {"yaml", "_yaml"},
    "pymarian": {"pymarian", "_pymarian"},
    "taskcluster-taskgraph": {"taskgraph"},
    "json-e": {"jsone"},
    "unbabel-comet": {"comet"},
    "gitpython": {"git"},
    "markdown-it-py": {"markdown_it"},
    "python-dateutil": {"dateutil"},
    "python-slugify": {"slugify"},
    "rpds-py": {"rpds"},
    "ruamel-yaml": {"ruamel"},
    "fonttools": {"fontTools"},
    "pillow": {"PIL"},
    "pysocks": {"socks", "sockshandler"},
    "websocket-client": {"websocket"},
    "cwevals": {"coreweave_evaluations"},
    "googleapis-common-protos": {"google"},
    "protobuf": {"google"},
    **{
        f"opentelemetry-{part}": {"opentelemetry"}
        for part in (
            "api",
            "exporter-http-transport",
            "exporter-otlp-common",
            "exporter-otlp-proto-common",
            "exporter-otlp-proto-http",
            "proto",
            "sdk",
            "semantic-conventions",
        )
    },  # fmt: skip
    "go-task-bin": set(),  # an executable, .venv/bin/task
}


def import_names(distribution: str) -> set[str]:
    name = canonicalize_name(distribution)
    return IMPORT_NAMES.get(name, {name.replace("-", "_")})


class DockerfileError(ValueError):
    pass


def parse_dockerfile(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(instruction, arguments) pairs with continuation lines joined, and taskgraph's `# %include` paths."""
    instructions, includes, pending = [], [], ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("# %include "):
            includes.append(stripped[len("# %include ") :].strip())
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        pending += " " + stripped
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        word, _, arguments = pending.strip().partition(" ")
        if word.upper() not in INSTRUCTIONS:
            raise DockerfileError(f"line {number}: unknown instruction {word!r}")
        if word != word.upper():
            raise DockerfileError(f"line {number}: write instructions in upper case ({word})")
        if not arguments.strip():
            raise DockerfileError(f"line {number}: {word} without arguments")
        instructions.append((word, arguments.strip()))
        pending = ""
    if pending:
        raise DockerfileError("the file ends inside a continued instruction")
    first = next((word for word, _ in instructions if word != "ARG"), None)
    if first != "FROM":
        raise DockerfileError(f"the first instruction (after ARGs) must be FROM, got {first}")
    return instructions, includes


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The instructions of the stage the image is made of (after the last FROM)."""
    last = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last:]


def _commands(script: str) -> list[list[str]]:
    """The simple commands of a RUN line: its words split at `&&`, `||`, `;` and `|`."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands, current = [], []
    for word in lexer:
        if word in ("&&", "||", ";", "|", "&"):
            if current:
                commands.append(current)
            current = []
        else:
            current.append(word)
    if current:
        commands.append(current)
    return commands


def _env_values(arguments: str) -> dict[str, str]:
    words = shlex.split(arguments)
    if words and "=" not in words[0]:  # the old form, `ENV KEY value with spaces`
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def _expand(word: str, variables: dict[str, str]) -> str:
    """`$NAME` and `${NAME}` of the Dockerfile's ENV and ARG values (others are left as they are)."""
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda m: variables.get(m.group(1) or m.group(2), m.group(0)),
        word,
    )


@lru_cache(maxsize=4)
def lock_groups(lock_path: Path = REPO_ROOT / "poetry.lock") -> dict[str, set[str]]:
    """{canonical distribution name: the dependency groups that install it} from poetry.lock."""
    lock = tomllib.loads(lock_path.read_text())
    return {
        canonicalize_name(package["name"]): set(package.get("groups", ["main"]))
        for package in lock["package"]
        if not package.get("optional", False)
    }


def default_groups(pyproject_path: Path = REPO_ROOT / "pyproject.toml") -> set[str]:
    """What a plain `poetry sync` installs: main and every group that is not optional."""
    pyproject = tomllib.loads(pyproject_path.read_text())
    groups = {"main", *pyproject.get("dependency-groups", {})}
    for name, group in pyproject.get("tool", {}).get("poetry", {}).get("group", {}).items():
        if group.get("optional", False):
            groups.discard(name)
        else:
            groups.add(name)
    return groups


def _poetry_groups(words: list[str]) -> set[str]:
    groups = default_groups()
    options = {"--only": set(), "--with": set(), "--without": set()}
    for i, word in enumerate(words):
        for option, chosen in options.items():
            if word == option and i + 1 < len(words):
                chosen.update(words[i + 1].split(","))
            elif word.startswith(option + "="):
                chosen.update(word.split("=", 1)[1].split(","))
    if options["--only"]:
        return options["--only"]
    return (groups | options["--with"]) - options["--without"]


@dataclass
class PythonEnvironment:
    prefix: str
    distributions: set[str] = field(default_factory=set)

    def provides(self, module: str) -> bool:
        return any(module in import_names(name) for name in self.distributions)


@dataclass
class ImageEnvironment:
    environments: dict[str, PythonEnvironment]
    path: list[str]
    links: dict[str, str] = field(default_factory=dict)  # symbolic link -> what it points to (`ln -s`)
    variables: dict[str, str] = field(default_factory=dict)  # the final stage's ENV and ARG values

    @property
    def python(self) -> PythonEnvironment | None:
        """The environment `python3` runs in (its bin/ first on PATH), or None (a base image's own Python)."""
        for entry in self.path:
            entry = entry.rstrip("/")
            for prefix, environment in self.environments.items():
                if entry == f"{prefix}/bin":
                    return environment
            if entry in SYSTEM_BINS:
                return None
        return None

    def has_command(self, name: str, distribution: str) -> bool:
        """Whether `name`, a console script of `distribution`, is on PATH: in the bin/ (on PATH) of an
        environment that has the distribution, or linked from there into a folder on PATH
        (`ln -s <venv>/bin/<name> <folder>/`)."""
        distribution = canonicalize_name(distribution)
        for entry in (entry.rstrip("/") for entry in self.path):
            linked = self.links.get(f"{entry}/{name}")
            for prefix, environment in self.environments.items():
                if distribution in environment.distributions and (
                    linked == f"{prefix}/bin/{name}" or entry == f"{prefix}/bin"
                ):
                    return True
        return False


_PIP_OPTIONS_WITH_VALUES = {
    "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--target", "-t", "--prefix", "--root",
    "--platform", "--python-version", "--implementation", "--abi", "--trusted-host", "--progress-bar",
}  # fmt: skip


def _pip_install(words: list[str], environment: PythonEnvironment):
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in ("-r", "--requirement", "-c", "--constraint", "-e", "--editable") or word.startswith(
            ("--requirement=", "--constraint=", "--editable=")
        ):
            raise DockerfileError(f"pip install {word}: name the distributions (this check cannot read it)")
        if word in _PIP_OPTIONS_WITH_VALUES:
            skip = True
            continue
        if word.startswith("-"):
            continue
        environment.distributions.add(canonicalize_name(Requirement(word).name))


def image_environment(dockerfile_text: str, lock_path: Path = REPO_ROOT / "poetry.lock") -> ImageEnvironment:
    """The Python environments the image's final stage declares, and its PATH."""
    instructions, _ = parse_dockerfile(dockerfile_text)
    environments: dict[str, PythonEnvironment] = {}
    workdir, path, lock_copied, variables, links = "/", [], False, {}, {}
    for word, arguments in final_stage(instructions):
        if word == "WORKDIR":
            workdir = arguments if arguments.startswith("/") else f"{workdir.rstrip('/')}/{arguments}"
        elif word in ("ENV", "ARG") and "=" in arguments:
            values = {key: _expand(value, variables) for key, value in _env_values(arguments).items()}
            variables.update(values)
            if "PATH" in values:
                path = values["PATH"].split(":")
        elif word == "COPY" and any(Path(w).name == "poetry.lock" for w in arguments.split()[:-1]):
            lock_copied = True
        elif word == "RUN":
            for command in _commands(arguments):
                command = [_expand(w, variables) for w in command]
                program = Path(command[0]).name
                if program.startswith("python") and command[1:3] == ["-m", "venv"]:
                    prefix = command[-1].rstrip("/")
                    environments.setdefault(prefix, PythonEnvironment(prefix))
                elif program == "pip" or (program.startswith("python") and command[1:3] == ["-m", "pip"]):
                    rest = command[1:] if program == "pip" else command[3:]
                    if not rest or rest[0] != "install":
                        continue
                    if "/bin/" not in command[0]:
                        raise DockerfileError(f"{' '.join(command)}: name the environment's pip by its path")
                    prefix = command[0].rsplit("/bin/", 1)[0]
                    _pip_install(rest[1:], environments.setdefault(prefix, PythonEnvironment(prefix)))
                elif program == "ln" and "-s" in command:
                    source, destination = [w for w in command[1:] if not w.startswith("-")][-2:]
                    name = Path(source).name
                    if destination.endswith("/") or Path(destination).name != name:
                        destination = f"{destination.rstrip('/')}/{name}"
                    links[destination] = source
                elif program == "poetry" and len(command) > 1 and command[1] in ("sync", "install"):
                    if not lock_copied:
                        raise DockerfileError("poetry sync before poetry.lock was copied into the image")
                    # poetry.toml: virtualenvs.in-project, so the environment is .venv beside the lock.
                    prefix = f"{workdir.rstrip('/')}/.venv"
                    groups = _poetry_groups(command[2:])
                    environment = environments.setdefault(prefix, PythonEnvironment(prefix))
                    environment.distributions.update(
                        name for name, of in lock_groups(lock_path).items() if of & groups
                    )
    return ImageEnvironment(environments, path, links, variables)


@lru_cache(maxsize=8)
def declared_environment(image: str) -> ImageEnvironment:
    return image_environment((IMAGES_DIR / image / "Dockerfile").read_text())


# --- what a step imports ---

FIRST_PARTY = {"pipeline"}
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _catches_import_errors(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(kind, ast.Name) and kind.id in IMPORT_ERRORS for kind in kinds)


def _optional_imports(tree: ast.Module) -> set[int]:
    """ids of the import statements a step can do without: inside a `try` whose ImportError handler goes on
    (does not raise). An import whose handler raises (a clear error) is still needed."""
    optional = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        handlers = [h for h in node.handlers if h.type is not None and _catches_import_errors(h)]
        if handlers and not any(isinstance(n, ast.Raise) for h in handlers for n in ast.walk(h)):
            optional.update(
                id(n)
                for statement in node.body
                for n in ast.walk(statement)
                if isinstance(n, ast.Import | ast.ImportFrom)
            )
    return optional


def module_imports(source: str, filename: str = "<module>") -> dict[str, str]:
    """{third-party top-level module: "file:line"} of the imports a module cannot do without."""
    tree = ast.parse(source, filename=filename)
    optional = _optional_imports(tree)
    found = {}
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in FIRST_PARTY or top == "__future__":
                continue
            found.setdefault(top, f"{filename}:{node.lineno}")
    return found


# Files a step runs with another environment's Python, named by an environment variable (their pins clash with
# the lock): their imports are checked against that environment (own_python_imports), not the step's.
OWN_PYTHON_SCRIPTS = {"pipeline/eval/comet_scorer.py": "COMET_PYTHON"}


def own_python_imports(relative: str, image: ImageEnvironment) -> list[str]:
    """What a file of OWN_PYTHON_SCRIPTS imports that the environment its variable names lacks, one line each;
    ["<variable> is not set"] where the image does not name one."""
    variable = OWN_PYTHON_SCRIPTS[relative]
    python = image.variables.get(variable)
    if python is None:
        return [f"{variable} is not set"]
    environment = image.environments.get(python.rsplit("/bin/", 1)[0])
    if environment is None:
        return [f"{variable}={python} is in no environment the image creates"]
    return [
        f"{module} ({where}) is not installed in {environment.prefix}"
        for module, where in sorted(module_imports((REPO_ROOT / relative).read_text(), relative).items())
        if not environment.provides(module)
    ]


@lru_cache(maxsize=256)
def step_imports(script: str) -> dict[str, str]:
    """The third-party modules a step script needs: its own imports and those of every `pipeline` module it
    imports or runs with its own Python (translations_taskgraph.source_digest.script_sources finds them)."""
    from translations_taskgraph.source_digest import script_sources

    found = {}
    for relative in script_sources(script):
        if relative.endswith(".py") and relative not in OWN_PYTHON_SCRIPTS:
            for module, where in module_imports((REPO_ROOT / relative).read_text(), relative).items():
                found.setdefault(module, where)
    return found


# Commands of Python distributions that steps run as programs (not importable: another environment): the
# distribution that provides each, and the step argument without which the step does not run it (bicleaner-ai's
# scorer needs a model pack; a dataset with threshold 0 is copied through without one, on a CPU worker). A step
# needs a command when one of its modules names it in a string and it is given that argument.
COMMANDS = {"bicleaner-ai-classify": {"distribution": "bicleaner-ai", "when-given": "--pack"}}


@lru_cache(maxsize=256)
def step_commands(script: str) -> dict[str, str]:
    """{command of COMMANDS: "file:line"} that a step script's modules name."""
    from translations_taskgraph.source_digest import script_sources

    found = {}
    for relative in script_sources(script):
        if relative.endswith(".py"):
            tree = ast.parse((REPO_ROOT / relative).read_text(), filename=relative)
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and node.value in COMMANDS:
                    found.setdefault(node.value, f"{relative}:{node.lineno}")
    return found


def missing_commands(script: str, image: ImageEnvironment, flags=None) -> list[str]:
    """The commands the step runs (given the argument `flags`; None: every argument) that are not on the image's
    PATH from an environment holding their distribution, one line each."""
    problems = []
    for name, where in sorted(step_commands(script).items()):
        distribution, when = COMMANDS[name]["distribution"], COMMANDS[name]["when-given"]
        if flags is not None and when not in flags:
            continue
        if not image.has_command(name, distribution):
            problems.append(
                f"the command {name} ({where}) is not on PATH from an environment with {distribution}"
            )
    return problems


def missing_imports(script: str, image: ImageEnvironment) -> list[str]:
    """What the step imports that the image's python3 environment does not declare, one line each."""
    python = image.python
    if python is None:
        return [f"python3 is the base image's own (PATH {':'.join(image.path)}): no declared environment"]
    return [
        f"{module} ({where}) is not installed in {python.prefix}"
        for module, where in sorted(step_imports(script).items())
        if not python.provides(module)
    ]
