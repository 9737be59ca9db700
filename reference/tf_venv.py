"""TensorFlow in its own virtual environment, _build/tf-venv, never in the project's."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

TF_VENV = Path(__file__).resolve().parent.parent / "_build" / "tf-venv"


def tensorflow_python(packages: Sequence[str] = ("tensorflow-cpu",)) -> Path | None:
    """The Python of _build/tf-venv with `packages` installed (made and installed from PyPI
    on first use; a package already there is kept), or None after saying why not."""
    python = TF_VENV / "bin" / "python"
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(TF_VENV)], capture_output=True,
                              text=True)
        if made.returncode:
            print(f"TensorFlow: cannot make {TF_VENV} ({made.stderr.strip()})")
            return None
    modules = [p.replace("tensorflow-cpu", "tensorflow").replace("tf-keras", "tf_keras")
               .replace("scikit-learn", "sklearn") for p in packages]
    check = subprocess.run([str(python), "-c", "import " + ", ".join(modules)],
                           capture_output=True)
    if check.returncode:
        print(f"TensorFlow: installing {' '.join(packages)} into {TF_VENV} ...", flush=True)
        installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages],
                                   capture_output=True, text=True)
        if installed.returncode:
            last = (installed.stderr.strip().splitlines() or ["no message"])[-1]
            print(f"TensorFlow: {' '.join(packages)} could not be installed ({last})")
            return None
    return python
