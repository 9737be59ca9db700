"""Build the book: stage the sources, execute every chapter with papermill, render HTML.

The sources (`_config.yml`, `_toc.yml`, `book/`, `notebooks/`) stay free of outputs. A build
copies the prose into `_build/staging/`, executes each chapter into
`_build/staging/notebooks/` (in the source folder, so relative paths behave as in nbval),
serves MathJax from the book's own `_static/` and renders with Jupyter Book 1.x with
`execute_notebooks: off` and warnings as errors.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

MATHJAX_VERSION = "3.2.2"
ROOT = Path(__file__).resolve().parent.parent


def chapters(root: Path = ROOT) -> list[Path]:
    """The chapter notebooks, in file-name order."""
    return sorted((root / "notebooks").glob("*.ipynb"))


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


def stage(root: Path = ROOT) -> Path:
    """Copy the prose and book configuration into `_build/staging/` (executed chapters kept)."""
    staging = root / "_build" / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, staging / name)
    shutil.copytree(root / "book", staging / "book", dirs_exist_ok=True)
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
