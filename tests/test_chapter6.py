"""Chapter 6 executed end to end at the smoke profile, training its own small studies."""
from __future__ import annotations

import json
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parent.parent


def _outputs(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    texts = []
    for cell in cells:
        for output in cell.get("outputs", []):
            texts.append("".join(output.get("text", "")))
            texts.append("".join(output.get("data", {}).get("text/html", "")))
    return "\n".join(texts)


def test_chapter6_runs_both_studies_and_decides_its_findings(tmp_path):
    out = tmp_path / "06_beyond.ipynb"
    papermill.execute_notebook(
        ROOT / "notebooks" / "06_beyond.ipynb", out, cwd=ROOT / "notebooks", progress_bar=False,
        parameters={"profile_name": "smoke", "epochs": 4, "critic_precision": "float32",
                    "seeds": [1, 2, 3, 4], "lambdas": [0.0, 0.1, 1.0], "pilot_l1": [0.001, 0.01],
                    "pilot_seed": 1, "pilot_epochs": 4, "l1_kept": 1, "l1_accuracy": 0.0,
                    "l1_seeds": [1, 2, 3], "control_seeds": [1, 2, 3, 4], "results_dir": str(tmp_path / "results"),
                    "train_missing": True})
    text = _outputs(out)
    assert "12 of 12 runs stored." in text and "kept for the study: c_L1 = 0.01" in text
    assert "6 of 6 runs stored." in text                  # 2 λ × one strength × 3 seeds
    assert "8 of 8 runs stored." in text                  # 2 λ × no L1 × 4 seeds (the λ study's)
    assert "(3 vs 4 runs" in text                         # every control, not only the same seeds
    assert "near-zero between − within higher than λ = 0 without L1" in text
    for rule in ("Q_str changes monotonically with λ",
                 "Q_str higher than λ = 0.1 without L1", "near-zero share higher than λ = 0 without L1"):
        assert rule in text
    assert "Runs not stored yet" not in text
