"""The pip pins (pyproject.toml) and the conda list (environment.yml) name the same versions."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_deps() -> list[str]:
    """The dependencies and every optional extra's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + [
        d for extra in project.get("optional-dependencies", {}).values() for d in extra]


def _pyproject_pins() -> dict[str, str]:
    return dict(re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", d).groups() for d in _pyproject_deps())


def _environment_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        match = re.fullmatch(r"\s*-\s+([A-Za-z0-9_.\-]+)==(\S+)\s*", line)
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def test_every_dependency_is_pinned_exactly():
    deps = _pyproject_deps()
    assert all("==" in d for d in deps), deps


def test_environment_yml_matches_pyproject_pins():
    assert _environment_pins() == _pyproject_pins()


def test_torch_is_the_cpu_pin_and_jupyter_book_is_1x():
    pins = _pyproject_pins()
    assert pins["torch"] == "2.13.0"
    assert pins["jupyter-book"].startswith("1.")
