"""Build the book: stage the sources, execute every chapter with papermill, render HTML.

The sources (`_config.yml`, `_toc.yml`, `book/`, `notebooks/`) stay free of outputs. A build
copies the prose into `_build/staging/`, executes each chapter into
`_build/staging/notebooks/` (in the source folder, so relative paths behave as in nbval),
serves MathJax from the book's own `_static/` and renders with Jupyter Book 1.x with
`execute_notebooks: off` and warnings as errors.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from . import store
from .config import PROFILES

MATHJAX_VERSION = "3.2.2"
ROOT = Path(__file__).resolve().parent.parent


def chapters(root: Path = ROOT) -> list[Path]:
    """The notebooks, in the order of the table of contents (so the cost page, listed after
    the chapters, measures them in the same build), then any others by file name."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    listed = [root / f"{entry['file']}.ipynb" for entry in toc.get("chapters", [])]
    listed = [path for path in listed if path.exists()]
    return listed + sorted(set((root / "notebooks").glob("*.ipynb")) - set(listed))


def parameters_of(notebook: Path) -> dict[str, Any]:
    """A chapter's parameters and their defaults, {name: value}, from running its cell tagged
    `parameters` alone (papermill's own inspection skips lines whose comment is not ASCII);
    {} for a page without one."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    defaults: dict[str, Any] = {}
    if cell is None:
        return defaults
    exec(compile("".join(cell["source"]), str(notebook), "exec"),
         {"__builtins__": {"list": list, "range": range}}, defaults)
    return defaults


_PROFILE = ("one of " + ", ".join(PROFILES), lambda v: v in PROFILES)
_FOLDER = ("a folder path (a string) or None", lambda v: v is None or isinstance(v, str))
# parameters whose default (None) does not say what else they accept, or whose range matters
_FORMS = {
    "profile_name": _PROFILE, "wm_profile": _PROFILE, "separation_profile": _PROFILE,
    "epochs": ("a positive whole number or None",
               lambda v: v is None or (type(v) is int and v > 0)),
    "results_dir": _FOLDER, "staging_dir": _FOLDER,
}


def _form(default: Any) -> tuple[str, Any]:
    """(the accepted form in words, a test) for a parameter with this default."""
    if isinstance(default, bool):
        return "True or False", lambda v: isinstance(v, bool)
    if isinstance(default, int):
        return "a whole number", lambda v: type(v) is int
    if isinstance(default, float):
        return "a number", lambda v: type(v) in (int, float)
    if isinstance(default, str):
        return "a string (quoted, e.g. '\"text\"')", lambda v: isinstance(v, str)
    if isinstance(default, list) and default:
        words, test = _form(default[0])
        item = words.split(" (")[0].removeprefix("a ")
        return f"a list of {item}s, e.g. {default[:2]!r}", (
            lambda v: isinstance(v, list) and all(test(item) for item in v))
    return f"a {type(default).__name__}", lambda v: isinstance(v, type(default))


def check_parameters(notebook: Path, given: dict[str, Any]) -> None:
    """ValueError (one line naming the chapter, the parameter and the accepted form) when a
    name is not among the chapter's parameters or a value does not fit its default's type."""
    chapter, defaults = Path(notebook).stem, parameters_of(notebook)
    for name, value in given.items():
        if name not in defaults:
            raise ValueError(f"chapter {chapter} has no parameter {name!r}; its parameters: "
                             + ", ".join(defaults))
        words, test = _FORMS.get(name) or _form(defaults[name])
        if not test(value):
            raise ValueError(f"chapter {chapter}: parameter {name} must be {words}, got {value!r}")


def folded(table, summary: str):
    """`table` (a DataFrame or its Styler) behind a toggle on the page: an HTML <details>
    element that shows `summary` and opens to the table."""
    from IPython.display import HTML

    return HTML(f"<details><summary>{summary}</summary>\n{table.to_html()}\n</details>")


def mathjax(root: Path = ROOT) -> Path:
    """The MathJax `es5/` folder, fetched once from the npm registry into `_build/`."""
    target = root / "_build" / f"mathjax-{MATHJAX_VERSION}"
    es5 = target / "package" / "es5"
    if (es5 / "tex-chtml.js").exists():
        return es5
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["npm", "pack", "--silent", f"mathjax@{MATHJAX_VERSION}", "--pack-destination", str(target)],
        check=True, stdout=subprocess.DEVNULL,
    )
    with tarfile.open(target / f"mathjax-{MATHJAX_VERSION}.tgz") as archive:
        archive.extractall(target, filter="data")
    return es5


def footer(root: Path = ROOT) -> str:
    """The line under every page: the commit the book is built from and when."""
    commit = store.git_commit(root)
    changes = " with uncommitted changes" if commit.endswith("+dirty") else ""
    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"Built {built} from commit <code>{commit.removesuffix('+dirty')[:12]}</code>{changes}."


def stage(root: Path = ROOT) -> Path:
    """Copy the prose and book configuration into `_build/staging/` (executed chapters kept);
    the staged configuration gains the `footer`."""
    staging = root / "_build" / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "_toc.yml", staging / "_toc.yml")
    config = yaml.safe_load((root / "_config.yml").read_text())
    config.setdefault("html", {})["extra_footer"] = footer(root)
    (staging / "_config.yml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    shutil.copytree(root / "book", staging / "book", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("_static"))
    # The book's own style sheet (`book/_static/`), served from the HTML's `_static/`.
    shutil.copytree(root / "book" / "_static", staging / "_static", dirs_exist_ok=True)
    # Not `_static/`: Jupyter Book would add every .js file found there as a <script>.
    # Sphinx copies this folder into the HTML's `_static/` (see html_static_path).
    vendored = staging / "_mathjax" / "mathjax"
    if not (vendored / "tex-chtml.js").exists():
        shutil.copytree(mathjax(root), vendored, dirs_exist_ok=True)
    return staging


def execute(notebook: Path, staging: Path, parameters: dict[str, Any] | None = None) -> Path:
    """Run one chapter with papermill into the staging folder; returns the executed copy."""
    import papermill

    out = staging / "notebooks" / notebook.name
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(notebook), str(out), parameters=parameters or {}, cwd=str(notebook.parent),
        kernel_name="python3", progress_bar=False,
    )
    return out


def render(staging: Path, root: Path = ROOT) -> Path:
    """Render the staged book to HTML (warnings are errors); returns the HTML folder."""
    output = root / "_build" / "book"
    subprocess.run(
        [str(Path(sys.executable).with_name("jupyter-book")), "build", str(staging), "--path-output",
         str(output), "-W", "--keep-going", "-q"],
        check=True,
    )
    return output / "_build" / "html"


def build(
    only: list[str] | None = None, parameters: dict[str, Any] | None = None, root: Path = ROOT
) -> Path:
    """Execute the chapters (all, or those named in `only`, with `parameters`) and render.

    Chapters not named in `only` are executed with their defaults if no staged copy exists.
    """
    staging = stage(root)
    for notebook in chapters(root):
        named = only is None or notebook.stem in only
        if named or not (staging / "notebooks" / notebook.name).exists():
            print(f"executing {notebook.name}", flush=True)
            execute(notebook, staging, parameters if named else None)
    return render(staging, root)
