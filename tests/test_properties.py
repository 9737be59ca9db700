"""Property-based checks: every setting and every command line either becomes a valid run or
is refused with a message naming what is wrong, with no traceback and nothing written."""
import contextlib
import dataclasses
import io
import tempfile
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mifd import runs
from mifd.cli import main
from mifd.config import RunConfig, profile

BASES = [profile("smoke", "wm"), profile("smoke", "separation")]
FIELDS = sorted({f"{section}.{f.name}" for base in BASES
                 for section in ("task", "model", "estimator", "training")
                 for f in dataclasses.fields(getattr(base, section))})
VALUES = st.one_of(
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.none(), st.text(max_size=6),
    st.sampled_from(["relu", "adam", "gru", "float32", "bfloat16", "float16"]),
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(BASES), st.sampled_from(FIELDS), VALUES)
def test_any_setting_is_valid_or_refused_naming_the_field(base, name, value):
    try:
        config = base.replace(**{name: value})
    except ValueError as error:
        field = name.split(".")[1]
        assert field in str(error), (name, value, str(error))
        return
    assert RunConfig.from_json(config.to_json()) == dataclasses.replace(config)
    assert config.config_hash() == RunConfig.from_json(config.to_json()).config_hash()


TOKENS = st.one_of(
    st.text(alphabet="0123456789-.,=ae", max_size=6), st.integers(-5, 2000).map(str),
    st.sampled_from(["smoke", "book", "paper", "huge", "cpu", "cuda", "nan", "inf", "1-3",
                     "3-1", "training.epochs=2", "training.epochs=0", "model.kind=gru",
                     "task.nothing=1", "estimator.lr=x", "estimator.precision=bfloat16",
                     "estimator.precision=float16", "training.lambda_mi=0.1,0"]),
)
OPTIONS = {
    "train": ["--profile", "--seed", "--lambda-mi", "--epochs", "--set", "--device"],
    "sweep": ["--profile", "--seeds", "--lambda-mi", "--set", "--workers", "--cohort-size",
              "--memory-gb", "--device"],
}


def _argv(command):
    return st.lists(st.tuples(st.sampled_from(OPTIONS[command]), TOKENS), max_size=5).map(
        lambda pairs: [command, "wm", *(token for pair in pairs for token in pair)])


def _run_cli(argv):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    return code, stderr.getvalue().strip()


def _fake_training(calls):
    def fake(loop, config, seed, root=None, progress=True, device="cpu"):
        calls.append((config, seed, device))
        return SimpleNamespace(path=Path(root or "."), config=config,
                               history={"accuracy": [1.0], "mi_before": [0.0]},
                               provenance={"train_seconds": 0.0})
    return fake


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_command_line_runs_or_is_refused_in_one_line(data):
    command = data.draw(st.sampled_from(["train", "sweep"]))
    argv = data.draw(_argv(command))
    calls = []
    with tempfile.TemporaryDirectory() as results:
        extra = ["--results", results] + (["--dry-run"] if command == "sweep" else [])
        with mock.patch.object(runs, "train_run", _fake_training(calls)):
            code, err = _run_cli(argv + extra)
        assert "Traceback" not in err
        assert not any(Path(results).iterdir()), "nothing may be written"
    if code == 0:
        if command == "train":
            config, seed, device = calls[0]
            assert isinstance(config, RunConfig) and seed >= 0 and device == "cpu"
    else:
        assert code == 2, (argv, code, err)
        assert len(err.splitlines()) == 1 and err.startswith("mifd"), (argv, err)
        assert not calls
