"""The test suite's own guards (issue 23): tests that could pass while proving nothing.

- A kill -9 test must kill the step while it runs: the helpers fail a test whose step ended before the kill.
- A test's pytest timeout must leave its subprocesses the time their own timeouts give them: a global timeout
  below a subprocess timeout would stop the test first, without the subprocess's output.
- No branch of a test is dead code (`if False`, `x if True else y`).
"""

import ast
import importlib
import inspect
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pytest

from conftest import REPO_ROOT, kill_running, kill_step_after, step_env

TESTS = REPO_ROOT / "tests"
# What a test does besides waiting on its subprocesses (reading outputs, comparing): its pytest timeout must
# exceed the sum of its subprocess timeouts by at least this much.
MARGIN_SECONDS = 60

# ----- kill -9 helpers -----


def sleeper(tmp_path, seconds: float) -> dict:
    """A step module (`sleeper <output-dir>`) that creates its output folder, sleeps, then writes `done`; returns
    the environment that lets `python -m sleeper` find it."""
    (tmp_path / "sleeper.py").write_text(
        textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            out = Path(sys.argv[1])
            out.mkdir(parents=True, exist_ok=True)
            (out / "started").touch()
            time.sleep({seconds})
            (out / "done").touch()
        """)
    )
    return step_env(PYTHONPATH=str(tmp_path))


def test_a_kill_that_comes_after_the_step_finished_fails_the_test(tmp_path):
    env = sleeper(tmp_path, 0)
    with pytest.raises(pytest.fail.Exception, match="finished before the kill .*never killed mid-run"):
        kill_step_after("sleeper", [tmp_path / "out"], 20, env=env)
    assert (tmp_path / "out" / "done").exists()


def test_a_step_that_failed_before_the_kill_fails_the_test_with_its_error(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="failed \\(1\\) before the kill(.|\n)*No module named"):
        kill_step_after("no_such_step_module", [], 20, retry_dir=tmp_path / "out")


def test_a_step_killed_mid_run_passes_and_a_fast_one_is_retried_sooner_on_an_emptied_folder(tmp_path):
    out = tmp_path / "out"
    env = sleeper(tmp_path, 30)
    started = time.monotonic()
    assert kill_step_after("sleeper", [out], 1.0, env=env, retry_dir=out) == 1.0
    assert time.monotonic() - started < 20 and not (out / "done").exists()
    # A step of about 1.5 s against kills after 8, 4, 2, then 1 s: the first ones come too late, the last not;
    # each retry starts on an emptied folder (the `done` of a finished run is gone).
    env = sleeper(tmp_path, 1.5)
    delay = kill_step_after("sleeper", [out], 8.0, env=env, retry_dir=out)
    assert delay < 8.0 and not (out / "done").exists()


def test_kill_running_fails_unless_the_process_was_still_running():
    finished = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    time.sleep(1.0)  # ended, not yet reaped: a kill finds a zombie and no error
    with pytest.raises(pytest.fail.Exception, match="had already ended \\(exit status 0\\)"):
        kill_running(finished)
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    kill_running(running)
    assert running.returncode == -9
    alone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    kill_running(alone, group=False)
    assert alone.returncode == -9


# ----- timeouts -----


def global_timeout() -> float:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return float(pyproject["tool"]["pytest"]["ini_options"]["timeout"])


def pytest_timeout_of(test) -> float:
    """The timeout pytest-timeout gives a test: its own `timeout` marker, else the global one."""
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "timeout":
            return float(mark.args[0] if mark.args else mark.kwargs["timeout"])
    return global_timeout()


def _function_node(function) -> ast.FunctionDef:
    return ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]


def _is_suite_helper(value) -> bool:
    """A function of the test suite (whose own calls count), not one of a library."""
    if not inspect.isfunction(value):
        return False
    source = inspect.getsourcefile(value)
    return source is not None and Path(source).resolve().parent == TESTS


_EVALUABLE = (
    ast.Constant,
    ast.Name,
    ast.Attribute,
    ast.BinOp,
    ast.UnaryOp,
    ast.operator,
    ast.unaryop,
    ast.Load,
)


def _evaluate(node: ast.expr, scope: dict):
    """The value of a constant expression (literals, names, attributes, arithmetic) in scope, else None; calls
    are never evaluated (they could start a process)."""
    if not all(isinstance(n, _EVALUABLE) for n in ast.walk(node)):
        return None
    try:
        return eval(compile(ast.Expression(node), "<timeout>", "eval"), scope)  # noqa: S307 - constants only
    except Exception:
        return None


def _bind(function, call: ast.Call, scope: dict) -> dict:
    """The arguments of a call of a suite helper that evaluate to constants, by parameter name."""
    names = list(inspect.signature(function).parameters)
    bound = {}
    for name, arg in zip(names, call.args, strict=False):
        if (value := _evaluate(arg, scope)) is not None:
            bound[name] = value
    for keyword in call.keywords:
        if keyword.arg and (value := _evaluate(keyword.value, scope)) is not None:
            bound[keyword.arg] = value
    return bound


def subprocess_timeouts(function, bound: dict | None = None, stack: tuple = ()) -> list[float]:
    """Every subprocess timeout a call of `function` can wait through, in order: the `timeout=` of each call it
    makes (subprocess.run, Popen.communicate, .wait), and those of the suite's helpers it calls, with the
    arguments it gives them (their defaults otherwise)."""
    if function in stack or len(stack) > 12:
        return []
    scope = dict(function.__globals__)
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.default is not inspect.Parameter.empty:
            scope[name] = parameter.default
    scope.update(bound or {})
    timeouts = []
    body = ast.Module(body=_function_node(function).body, type_ignores=[])  # not its decorators
    for call in ast.walk(body):
        if not isinstance(call, ast.Call):
            continue
        callee = _evaluate(call.func, scope)
        if _is_suite_helper(callee):
            timeouts += subprocess_timeouts(callee, _bind(callee, call, scope), (*stack, function))
            continue
        for keyword in call.keywords:
            if keyword.arg == "timeout" and isinstance(value := _evaluate(keyword.value, scope), int | float):
                timeouts.append(float(value))
    return timeouts


def functions_under_test(path: Path) -> list:
    module = importlib.import_module(path.stem)
    return [
        value
        for name, value in vars(module).items()
        if name.startswith("test_") and inspect.isfunction(value)
    ]


ALL_MODULES = sorted(TESTS.glob("test_*.py"))


def is_e2e(path: Path, test) -> bool:
    return path.stem.startswith("test_e2e") or any(
        mark.name == "e2e" for mark in getattr(test, "pytestmark", [])
    )


def test_the_helpers_find_the_timeouts_of_an_e2e_run():
    """The inspection itself: the micro chain's engine run (1,500 s by default) and the two bergamot calls of
    its last mile (600 s each), reached through the suite's helpers."""
    import test_e2e_chain

    timeouts = subprocess_timeouts(test_e2e_chain.test_micro_chain_trains_and_finetunes_a_student)
    assert sorted(timeouts) == [600.0, 600.0, 1500.0]


@pytest.mark.parametrize("path", ALL_MODULES, ids=lambda p: p.stem)
def test_an_e2e_test_outlasts_the_sum_of_its_subprocess_timeouts(path):
    """The end-to-end tests (tests/test_e2e*.py, and those marked e2e): the global timeout is for the rest."""
    checked = 0
    for test in functions_under_test(path):
        if not is_e2e(path, test) or not (timeouts := subprocess_timeouts(test)):
            continue
        checked += 1
        limit = pytest_timeout_of(test)
        assert limit >= sum(timeouts) + MARGIN_SECONDS, (
            f"{path.name}::{test.__name__}: its pytest timeout ({limit:.0f} s) would stop it before its "
            f"subprocesses' own timeouts ({' + '.join(f'{t:.0f}' for t in timeouts)} s, plus {MARGIN_SECONDS} s "
            "for the rest): give it @pytest.mark.timeout(...) above them"
        )
    if path.stem.startswith("test_e2e"):
        assert checked, f"{path.name}: no subprocess timeout found (the inspection no longer sees them)"


@pytest.mark.parametrize("path", ALL_MODULES, ids=lambda p: p.stem)
def test_no_subprocess_timeout_is_above_its_tests_pytest_timeout(path):
    for test in functions_under_test(path):
        limit = pytest_timeout_of(test)
        longest = max(subprocess_timeouts(test), default=0.0)
        assert longest < limit, (
            f"{path.name}::{test.__name__} waits up to {longest:.0f} s on one subprocess, but pytest stops it "
            f"after {limit:.0f} s: give it @pytest.mark.timeout(...) above that"
        )


# ----- dead code -----


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.py")), ids=lambda p: p.name)
def test_no_test_has_a_branch_that_never_runs(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    dead = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.If | ast.IfExp) and isinstance(node.test, ast.Constant)
    ]
    assert not dead, f"{path.name}: a branch on a constant condition (line {', '.join(map(str, dead))})"
