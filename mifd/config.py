"""Run settings as frozen dataclasses, named profiles, JSON round-trip and a stable hash.

Every number of SPEC §7 lives here once, with the profile that uses it. A `RunConfig`
bundles the task, model, estimator and training settings of one run; `profile(name, task)`
returns the named settings (`smoke`, `book`, `paper`), and `RunConfig.replace` derives a
variant (another λ, fewer epochs) without mutating anything.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

TASKS = ("wm", "separation")
PROFILES = ("smoke", "book", "paper")


def _check(rule: str) -> dict[str, Any]:
    """Field metadata naming the validity rule a value must satisfy."""
    return {"rule": rule}


_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "positive": (lambda v: v > 0, "must be > 0"),
    "nonnegative": (lambda v: v >= 0, "must be >= 0"),
    "probability": (lambda v: 0 <= v <= 1, "must lie in [0, 1]"),
    "unit_open": (lambda v: 0 < v <= 1, "must lie in (0, 1]"),
}


def _type_error(value: Any, annotation: str) -> str | None:
    """Why `value` does not fit the field annotation ("int", "float", "float | None", "bool",
    "str"), or None when it does."""
    if annotation.endswith("| None"):
        if value is None:
            return None
        annotation = annotation.removesuffix("| None").strip()
    if annotation == "bool":
        return None if isinstance(value, bool) else "expected true or false"
    if annotation == "str":
        return None if isinstance(value, str) else "expected a string"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "expected a whole number" if annotation == "int" else "expected a finite number"
    if annotation == "int" and not isinstance(value, int):
        return "expected a whole number"
    if isinstance(value, float) and not math.isfinite(value):
        return "expected a finite number"
    return None


class _Validated:
    """Mixin: check every field's type against its annotation and its value against the rule
    in its metadata, after construction."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(cast(Any, self)):  # every subclass is a dataclass
            value = getattr(self, f.name)
            problem = _type_error(value, str(f.type))
            if problem is not None:
                raise ValueError(f"{type(self).__name__}.{f.name}: {problem}, got {value!r}")
            rule = f.metadata.get("rule")
            if rule is None or value is None:
                continue
            ok, message = _RULES[rule]
            if not ok(value):
                raise ValueError(f"{type(self).__name__}.{f.name} {message}, got {value!r}")


@dataclass(frozen=True)
class WMTaskConfig(_Validated):
    """2-bit working memory (SPEC §3.1). Times are in steps."""

    pulse_length: int = field(default=40, metadata=_check("positive"))
    onset_prob: float = field(default=1 / 500, metadata=_check("probability"))
    amplitude: float = field(default=1.0, metadata=_check("positive"))
    slope: float = field(default=0.1, metadata=_check("positive"))
    n_transient: int = field(default=1000, metadata=_check("nonnegative"))
    n_learn: int = field(default=2000, metadata=_check("positive"))
    batch_size: int = field(default=20, metadata=_check("positive"))


@dataclass(frozen=True)
class SeparationTaskConfig(_Validated):
    """Lorenz/Rössler separation (SPEC §3.2). Times in model time units or samples."""

    lorenz_sigma: float = 10.0
    lorenz_rho: float = 28.0
    lorenz_beta: float = 8 / 3
    rossler_a: float = 0.2
    rossler_b: float = 0.2
    rossler_c: float = 5.7
    lorenz_t_end: float = field(default=100.0, metadata=_check("positive"))
    rossler_t_end: float = field(default=700.0, metadata=_check("positive"))
    n_samples: int = field(default=14_000, metadata=_check("positive"))
    n_discard: int = field(default=4000, metadata=_check("nonnegative"))
    rtol: float = field(default=1e-3, metadata=_check("positive"))
    atol: float = field(default=1e-6, metadata=_check("positive"))
    pool_size: int = field(default=10_000, metadata=_check("positive"))
    n_test: int = field(default=50, metadata=_check("positive"))
    batch_size: int = field(default=50, metadata=_check("positive"))
    washout: int = field(default=200, metadata=_check("nonnegative"))
    data_seed: int = field(default=0, metadata=_check("nonnegative"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_discard >= self.n_samples:
            raise ValueError(
                f"SeparationTaskConfig.n_discard must be < n_samples ({self.n_samples}), "
                f"got {self.n_discard}"
            )
        if self.washout >= self.seq_len:
            raise ValueError(
                f"SeparationTaskConfig.washout must be < the sequence length ({self.seq_len}), "
                f"got {self.washout}"
            )

    @property
    def seq_len(self) -> int:
        """Samples per sequence after the discarded transient."""
        return self.n_samples - self.n_discard


@dataclass(frozen=True)
class ModelConfig(_Validated):
    """Leaky-integrator RNN (SPEC §2.1) or GRU (SPEC §2.2)."""

    kind: str = "leaky_rnn"
    n_units: int = field(default=40, metadata=_check("positive"))
    alpha: float = field(default=0.1, metadata=_check("unit_open"))
    noise_std: float = field(default=0.1, metadata=_check("nonnegative"))
    gain: float = field(default=1.0, metadata=_check("positive"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind not in ("leaky_rnn", "gru"):
            raise ValueError(f"ModelConfig.kind must be 'leaky_rnn' or 'gru', got {self.kind!r}")
        if self.n_units % 2:
            raise ValueError(f"ModelConfig.n_units must be even (two groups), got {self.n_units}")


@dataclass(frozen=True)
class EstimatorConfig(_Validated):
    """MINE statistics network and its optimiser (SPEC §4)."""

    hidden: int = field(default=512, metadata=_check("positive"))
    activation: str = "relu"
    negative_slope: float = field(default=0.25, metadata=_check("nonnegative"))
    output_bias: bool = True
    noise_std: float = field(default=0.1, metadata=_check("nonnegative"))
    noise_inside: bool = True
    noise_asymmetric: bool = True
    optimizer: str = "rmsprop"
    lr: float = field(default=3e-3, metadata=_check("positive"))
    eps: float = field(default=1e-7, metadata=_check("positive"))
    clip_norm: float | None = field(default=4.0, metadata=_check("positive"))
    clip_value: float | None = field(default=None, metadata=_check("positive"))
    sample_fraction: float = field(default=1.0, metadata=_check("unit_open"))
    # The hidden layer's products in bfloat16 (float32 accumulation) where the device does
    # bf16 natively; the DV bound and its log-sum-exp stay float32 (mine.check_precision).
    precision: str = "float32"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.precision not in ("float32", "bfloat16"):
            raise ValueError(
                f"EstimatorConfig.precision must be 'float32' or 'bfloat16', got {self.precision!r}"
            )
        if self.activation not in ("relu", "leaky_relu"):
            raise ValueError(
                f"EstimatorConfig.activation must be 'relu' or 'leaky_relu', got {self.activation!r}"
            )
        if self.optimizer not in ("rmsprop", "adam"):
            raise ValueError(
                f"EstimatorConfig.optimizer must be 'rmsprop' or 'adam', got {self.optimizer!r}"
            )


@dataclass(frozen=True)
class TrainingConfig(_Validated):
    """The alternating SM/MM loop (SPEC §5) and the main model's optimiser."""

    epochs: int = field(default=1000, metadata=_check("positive"))
    n_sm_pretrain: int = field(default=100, metadata=_check("nonnegative"))
    n_sm_steps: int = field(default=10, metadata=_check("nonnegative"))
    n_mm_steps: int = field(default=1, metadata=_check("positive"))
    lambda_mi: float = field(default=0.1, metadata=_check("nonnegative"))
    optimizer: str = "rmsprop"
    lr: float = field(default=2e-3, metadata=_check("positive"))
    rho: float = field(default=0.9, metadata=_check("probability"))
    eps: float = field(default=1e-7, metadata=_check("positive"))
    rmsprop_eps_inside_sqrt: bool = True  # ε inside √ (Keras ≥ 2.11), model and critic alike
    clip_norm: float | None = field(default=4.0, metadata=_check("positive"))
    c_reg: float = field(default=0.01, metadata=_check("nonnegative"))
    c_reg_in: float = field(default=0.01, metadata=_check("nonnegative"))
    c_l1: float = field(default=0.0, metadata=_check("nonnegative"))  # L1 on W_rec (mifd only)
    snapshot_every: int = field(default=25, metadata=_check("positive"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.optimizer not in ("rmsprop", "adam"):
            raise ValueError(
                f"TrainingConfig.optimizer must be 'rmsprop' or 'adam', got {self.optimizer!r}"
            )


_SECTIONS: dict[str, type | None] = {
    "task": None,  # resolved per task by _TASK_CONFIG
    "model": ModelConfig,
    "estimator": EstimatorConfig,
    "training": TrainingConfig,
}
# One number per run: runs that differ only in these (and the seed) train as one cohort.
PER_RUN_FIELDS = ("training.lambda_mi", "training.c_l1")
# (section, field): default, for every field added after the first records were stored.
_LATER_FIELDS = {("estimator", "precision"): "float32", ("training", "c_l1"): 0.0}
_TASK_CONFIG = {"wm": WMTaskConfig, "separation": SeparationTaskConfig}
_TASK_MODEL = {"wm": "leaky_rnn", "separation": "gru"}  # SPEC §2: the model of each task


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run, apart from its seed."""

    task_name: str
    profile: str
    task: WMTaskConfig | SeparationTaskConfig
    model: ModelConfig
    estimator: EstimatorConfig
    training: TrainingConfig

    def __post_init__(self) -> None:
        if self.task_name not in TASKS:
            raise ValueError(f"RunConfig.task_name must be one of {TASKS}, got {self.task_name!r}")
        expected = _TASK_CONFIG[self.task_name]
        if not isinstance(self.task, expected):
            raise ValueError(
                f"RunConfig.task must be a {expected.__name__} for task {self.task_name!r}"
            )
        kind = _TASK_MODEL[self.task_name]
        if self.model.kind != kind:
            raise ValueError(f"ModelConfig.kind must be {kind!r} for task {self.task_name!r}, "
                             f"got {self.model.kind!r}")

    @property
    def wm_task(self) -> WMTaskConfig:
        """The task settings of a working-memory configuration (TypeError for another task)."""
        if not isinstance(self.task, WMTaskConfig):
            raise TypeError(f"a {self.task_name} configuration has no working-memory task")
        return self.task

    @property
    def separation_task(self) -> SeparationTaskConfig:
        """The task settings of a separation configuration (TypeError for another task)."""
        if not isinstance(self.task, SeparationTaskConfig):
            raise TypeError(f"a {self.task_name} configuration has no separation task")
        return self.task

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        task_name = data.get("task_name")
        if task_name not in TASKS:
            raise ValueError(f"RunConfig.task_name must be one of {TASKS}, got {task_name!r}")
        sections = {name: section or _TASK_CONFIG[task_name] for name, section in _SECTIONS.items()}
        kwargs: dict[str, Any] = {"task_name": task_name, "profile": data.get("profile", "custom")}
        for name, section_cls in sections.items():
            values = data.get(name, {})
            if not isinstance(values, dict):
                raise ValueError(f"RunConfig.{name}: expected a mapping of fields, got {values!r}")
            known = {f.name for f in dataclasses.fields(section_cls)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(f"RunConfig.{name}: unknown field(s) {', '.join(unknown)}")
            kwargs[name] = section_cls(**values)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls.from_dict(json.loads(text))

    def config_hash(self) -> str:
        """12 hex digits of SHA-256 over the canonical JSON of every setting but the profile name.

        Settings added after records were stored (`_LATER_FIELDS`) enter the hash only when
        they differ from their default, so every stored record keeps its hash.
        """
        data = self.to_dict()
        data.pop("profile")
        for (section, name), default in _LATER_FIELDS.items():
            if data[section].get(name) == default:
                del data[section][name]
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @staticmethod
    def per_run_fields() -> tuple[str, ...]:
        """The settings that may differ between the runs of one cohort."""
        return PER_RUN_FIELDS

    def cohort_key(self) -> str:
        """The hash of every setting a cohort's runs share (the per-run fields set to 0)."""
        return self.replace(**{name: 0.0 for name in PER_RUN_FIELDS}).config_hash()

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with `section.field=value` changes, e.g. replace(**{"training.epochs": 5}).

        The profile name becomes "<profile>+custom" when a setting other than the per-run
        ones (`PER_RUN_FIELDS`, e.g. λ) differs from the named profile's, and is the profile's
        own name again when none does (a profile's control is that profile).
        """
        grouped: dict[str, dict[str, Any]] = {}
        for dotted, value in changes.items():
            section, _, name = dotted.partition(".")
            if section not in _SECTIONS or not name:
                raise ValueError(f"unknown setting {dotted!r}; use 'section.field'")
            known = {f.name for f in dataclasses.fields(getattr(self, section))}
            if name not in known:
                raise ValueError(f"RunConfig.{section}: unknown field {name!r}")
            grouped.setdefault(section, {})[name] = value
        new = dataclasses.replace(self, **{
            section: dataclasses.replace(getattr(self, section), **values)
            for section, values in grouped.items()
        })
        base = self.profile.split("+")[0]
        if not changes or new == self or base not in PROFILES:
            return new
        same = _shared_settings(new) == _shared_settings(profile(base, self.task_name))
        return dataclasses.replace(new, profile=base if same else base + "+custom")


def _shared_settings(config: RunConfig) -> RunConfig:
    """`config` with its name and per-run fields blanked: what runs of one cohort share."""
    per_run: dict[str, Any] = {name.split(".")[1]: 0.0 for name in PER_RUN_FIELDS}
    return dataclasses.replace(config, profile="", training=dataclasses.replace(config.training, **per_run))


def _paper(task_name: str) -> RunConfig:
    """SPEC §7 exactly."""
    return _PAPER[task_name]()


def _paper_wm() -> RunConfig:
    return RunConfig(
        task_name="wm",
        profile="paper",
        task=WMTaskConfig(),
        model=ModelConfig(),
        estimator=EstimatorConfig(),
        training=TrainingConfig(),
    )


def _paper_separation() -> RunConfig:
    return RunConfig(
        task_name="separation",
        profile="paper",
        task=SeparationTaskConfig(),
        model=ModelConfig(kind="gru", n_units=100, alpha=1.0, noise_std=0.0),
        estimator=EstimatorConfig(
            hidden=100,
            activation="leaky_relu",
            output_bias=False,
            noise_std=0.05,
            noise_inside=False,
            noise_asymmetric=False,
            optimizer="adam",
            lr=1e-2,
            clip_norm=None,
            clip_value=1.0,
        ),
        training=TrainingConfig(
            epochs=200,
            n_sm_pretrain=100,
            n_sm_steps=20,
            n_mm_steps=20,
            lambda_mi=0.005,
            optimizer="adam",
            lr=1e-3,
            clip_norm=None,
            c_reg=1e-5,
            c_reg_in=1e-5,
            snapshot_every=1,
        ),
    )


_PAPER = {"wm": _paper_wm, "separation": _paper_separation}


# Deviations of the smaller profiles from `paper`, as (section.field, value) pairs; the book
# lists them from here, so this table is the single source of what differs.
_DEVIATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("smoke", "wm"): {
        "task.n_transient": 100,
        "task.n_learn": 200,
        "task.batch_size": 4,
        "estimator.hidden": 32,
        "training.epochs": 4,
        "training.n_sm_pretrain": 3,
        "training.n_sm_steps": 2,
        "training.snapshot_every": 2,
    },
    ("smoke", "separation"): {
        "task.n_samples": 1400,
        "task.n_discard": 400,
        "task.pool_size": 8,
        "task.n_test": 4,
        "task.batch_size": 4,
        "task.washout": 20,
        "model.n_units": 20,
        "estimator.hidden": 16,
        "training.epochs": 2,
        "training.n_sm_pretrain": 2,
        "training.n_sm_steps": 2,
        "training.n_mm_steps": 2,
    },
    # The critic sees a tenth of the rows (chapter 3's pilot found a quarter no closer to the
    # paper runs); everything else, the 1000 epochs included, is the paper's. What a run
    # costs is measured on the cost page, from the records' provenance.
    ("book", "wm"): {"estimator.sample_fraction": 0.1},
    # The paper's sequences are 10 000 samples; these keep the sampling interval and cut them
    # to 5000 (the time spans scale with n_samples), subsample the critic's rows, and take
    # fewer critic steps and epochs; the 60 epochs are chapter 5's search's choice
    # (`evidence.SEPARATION_SEARCH`). Costs: the cost page and benchmarks/bench_separation.py.
    ("book", "separation"): {
        "task.n_samples": 5000,
        "task.lorenz_t_end": 100.0 * 5000 / 14_000,
        "task.rossler_t_end": 700.0 * 5000 / 14_000,
        "task.pool_size": 500,
        "estimator.sample_fraction": 0.2,
        "training.epochs": 60,
        "training.n_sm_steps": 5,
        "training.snapshot_every": 5,
    },
}


def deviations(name: str, task_name: str) -> dict[str, Any]:
    """The settings in which profile `name` differs from `paper`, as {section.field: value}."""
    _check_profile(name, task_name)
    return dict(_DEVIATIONS.get((name, task_name), {}))


def _check_profile(name: str, task_name: str) -> None:
    if task_name not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task_name!r}")
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {name!r}")


def profile(name: str, task_name: str) -> RunConfig:
    """The named settings for a task: `paper` (SPEC §7), `book` or `smoke`."""
    _check_profile(name, task_name)
    base = _paper(task_name)
    config = base.replace(**deviations(name, task_name))
    return dataclasses.replace(config, profile=name)


def sequence_length(config: RunConfig, seq_len: int) -> RunConfig:
    """A separation configuration whose sequences have `seq_len` samples after the discarded
    transient, at the paper's sampling interval: n_samples = n_discard + seq_len, and both
    systems' integration spans scaled with n_samples (the `book` profile shortens them so)."""
    if config.task_name != "separation":
        raise ValueError("sequence_length: only separation configurations have sequences to set")
    paper = profile("paper", "separation").separation_task
    n_samples = config.separation_task.n_discard + seq_len
    return config.replace(**{
        "task.n_samples": n_samples,
        "task.lorenz_t_end": paper.lorenz_t_end * n_samples / paper.n_samples,
        "task.rossler_t_end": paper.rossler_t_end * n_samples / paper.n_samples})


def deviation_rows(name: str, task_name: str) -> list[tuple[str, Any, Any]]:
    """(setting, paper value, profile value) for every setting where `name` differs from paper."""
    paper = _paper(task_name)
    return [
        (dotted, getattr(getattr(paper, dotted.split(".")[0]), dotted.split(".")[1]), value)
        for dotted, value in deviations(name, task_name).items()
    ]


# Where each `paper` setting comes from: a file of the authors' repository cncs-fit/mio_rnn
# (read at commit 59a2f79), or this package where the authors' code has no such setting (then
# the `paper` value reproduces their behaviour). Keys are `section.field`; a section's entry
# covers every field of it that has no entry of its own.
MIFD_ONLY = "mifd only: the authors' code has no such switch; this value does what it does"
_SOURCES: dict[str, dict[str, str]] = {
    "wm": {
        "task": "wm/run_once.py (the runner's values)",
        "task.pulse_length": "wm/run_once.py (wm/tasks.py's class default is 50)",
        "task.onset_prob": "wm/run_once.py (wm/tasks.py's class default is 1/1000)",
        "task.slope": "wm/run_once.py (wm/tasks.py's class default is 0.2)",
        "task.amplitude": "wm/tasks.py",
        "model": "wm/rnnmodel.py, wm/gp_wm.py",
        "estimator": "wm/run_once.py, wm/wmtask_train.py",
        "estimator.eps": "Keras RMSprop default (1e-7), as wm/wmtask_train.py uses it",
        "training": "wm/run_once.py, wm/wmtask_train.py",
        "training.lr": "wm/run_once.py (0.0012 is assigned first, then overwritten by 0.002)",
        "training.rho": "Keras RMSprop default, as wm/wmtask_train.py uses it",
        "training.eps": "Keras RMSprop default, as wm/wmtask_train.py uses it",
        "training.rmsprop_eps_inside_sqrt": "Keras ≥ 2.11's RMSprop rule (the authors' TF version is not recorded)",
        "estimator.noise_inside": "wm/wmtask_train.py's estimator adds the noise itself (the switch is mifd's)",
        "estimator.noise_asymmetric": "wm/wmtask_train.py's estimator: the shuffled y stays noise-free (the switch is mifd's)",
    },
    "separation": {
        "task": "separation/chaos.py, separation/generate_chaos_dataset.py",
        "task.pool_size": "separation/gru_training.py (files 1 and 2 of 5000 pairs each)",
        "task.n_test": "separation/gru_training.py (the first 50 pairs of file 120)",
        "task.batch_size": "separation/gru_training.py",
        "task.washout": "separation/gru_training.py",
        "task.data_seed": "mifd only: the authors generate files from unrecorded seeds",
        "model": "separation/model.py (Keras GRU defaults)",
        "model.alpha": "unused by the GRU", "model.noise_std": "unused by the GRU", "model.gain": "unused by the GRU",
        "estimator.noise_inside": "separation/gru_training.py adds the noise before the estimator (the switch is mifd's)",
        "estimator.noise_asymmetric": "separation/gru_training.py: both groups noisy (the switch is mifd's)",
        "estimator": "separation/gru_training.py",
        "training": "separation/run_multipule_trials.py, separation/gru_training.py",
        "training.c_reg": "separation/run_multipule_trials.py at HEAD (1e-4 before commit 7ea4429)",
        "training.c_reg_in": "separation/run_multipule_trials.py at HEAD (1e-4 before commit 7ea4429)",
        "training.snapshot_every": "mifd (the authors keep every epoch's weights in memory and discard them)",
        "training.rho": "unused with Adam",
        "training.rmsprop_eps_inside_sqrt": "unused with Adam",
    },
}
_MIFD_FIELDS = ("estimator.sample_fraction", "estimator.precision", "training.c_l1")


def setting_source(task_name: str, dotted: str) -> str:
    """Where the `paper` value of setting `section.field` comes from, in words."""
    if dotted in _MIFD_FIELDS:
        return MIFD_ONLY
    sources = _SOURCES[task_name]
    return sources.get(dotted) or sources[dotted.split(".")[0]]


def settings_table(task_name: str, profiles=("paper", "book")) -> list[dict[str, Any]]:
    """Every setting of a task: one row per `section.field` with its value in each of
    `profiles` and `setting_source`."""
    configs = {name: profile(name, task_name).to_dict() for name in profiles}
    rows = []
    for section in ("task", "model", "estimator", "training"):
        for name in configs[profiles[0]][section]:
            dotted = f"{section}.{name}"
            rows.append({"setting": dotted, **{p: configs[p][section][name] for p in profiles},
                         "source": setting_source(task_name, dotted)})
    return rows
