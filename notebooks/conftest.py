"""nbval runs every chapter of this folder with the small parameters below.

The book build (tests/test_book.py, the README's `make book`) already executes every chapter
at its defaults with papermill, against the stored records; nbval executing them at the
defaults again would only repeat that. Here it checks what the build does not: that each
chapter runs end to end when a reader re-runs it with other parameters, at the `smoke`
profile, training the few seconds' runs it reads into a temporary results folder of its own
(`train_missing`), and with small synthetic studies. The parameters are checked against each
chapter's `parameters` cell, like `mifd book -p`, and appended to that cell, so the chapter
sees them as papermill would inject them.

`pytest --nbval-lax notebooks/NAME.ipynb` (nbval's own option) validates a chapter at its
defaults instead.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from nbval.plugin import IPyNbFile

from mifd import book

EMPTY_STAGING = "/nonexistent/mifd-staging"  # the costs page's "build the book first" path

PARAMETERS = {
    "01_tasks": {"n_sequences": 40},
    "02_mine": {"n_seeds": 2, "dims": [1, 20, 50], "rhos": [0.3, 0.9], "sample_sizes": [128, 512],
                "steps": 20, "hidden": 16, "noise_scales": [0.1, 0.2], "group_steps": 20,
                "bf16": False},
    "03_training": {"profile_name": "smoke", "seeds": [1, 2], "eps_seeds": [1, 2],
                    "bf16_seeds": [1], "pilot_seeds": [1], "comparison_epochs": 3},
    "04_functional_structural": {"profile_name": "smoke", "seeds": [1, 2]},
    "critic_dose": {"profile_name": "smoke", "seeds": [1, 2]},
    "05_separation": {"profile_name": "smoke", "seeds": [1, 2], "search_seeds": [1]},
    "06_beyond": {"profile_name": "smoke", "epochs": 4, "seeds": [1, 2], "lambdas": [0.0, 0.1],
                  "pilot_seed": 1, "pilot_epochs": 4, "l1_seeds": [1, 2],
                  "control_seeds": [1, 2]},
    "07_authors_code": {"results_dir": "/nonexistent/mifd-results"},  # nothing stored
    "results": {"wm_profile": "smoke", "wm_seeds": [1, 2], "paper_seeds": [1],
                "separation_profile": "smoke", "separation_seeds": [1, 2]},
    "costs": {"staging_dir": EMPTY_STAGING, "wm_seeds": [1, 2], "separation_seeds": [1, 2]},
}


# Chapters that read training records train their smoke runs into a folder of their own.
TRAINS = {"03_training", "04_functional_structural", "critic_dose", "05_separation", "06_beyond", "results"}


class ParameterisedChapter(IPyNbFile):
    """nbval's collector for one chapter, its `parameters` cell followed by PARAMETERS'
    assignments; only cells marked NBVAL_CHECK_OUTPUT compare outputs (as `--nbval-lax`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.compare_outputs = False

    def collect(self):
        given = dict(PARAMETERS.get(self.path.stem, {}))
        if self.path.stem in TRAINS:
            given.update(results_dir=str(_results(self.config) / self.path.stem),
                         train_missing=True)
        if given:
            book.check_parameters(self.path, given)
        assignments = "".join(f"\n{name} = {value!r}" for name, value in given.items())
        for item in super().collect():
            if assignments and "parameters" in item.cell.metadata.get("tags", []):
                item.cell.source += "\n# nbval (notebooks/conftest.py):" + assignments
            yield item


def _results(config) -> Path:
    """One temporary folder per pytest process, removed when it ends."""
    if not hasattr(config, "_mifd_nbval_results"):
        config._mifd_nbval_results = Path(tempfile.mkdtemp(prefix="mifd-nbval-"))
        config.add_cleanup(lambda: shutil.rmtree(config._mifd_nbval_results, ignore_errors=True))
    return config._mifd_nbval_results


def pytest_collect_file(file_path, parent):
    options = parent.config.option
    if file_path.suffix == ".ipynb" and not (options.nbval or options.nbval_lax):
        return ParameterisedChapter.from_parent(parent, path=file_path)
