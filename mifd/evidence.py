"""The tables the claim rules read, built from stored records.

Chapters 4 and 5 and the results page call these functions, so a verdict on the results page
is the chapter's verdict by construction. Records come grouped by condition label
({label: [RunRecord, …]}, as `study.study` gives them per condition); the first label is
the condition with MI minimisation, the second its control (the order of
`sweep.conditions`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import (
    analysis,
    claims,
    costs,
    evaluate,
    machine,
    mine,
    separation,
    store,
    study,
    sweep,
)
from .config import RunConfig, deviation_rows, profile, sequence_length
from .models import GRUNet

WM_INDICES = ("Q_corr", "Q_str", "D_corr", "D_in", "D_out")
SEPARATION_INDICES = ("Q_corr", "Q_str", "D_corr", "D_out")
# test R² over all steps (as the authors score it) and over t ≥ washout (as the loss sees it)
R2_COLUMNS = ("r2_mean", "r2_min", "r2_mean_scored", "r2_min_scored")
NMI_CORR, NMI_WEIGHTS = "NMI (correlations)", "NMI (U_h weights)"


def deviation_table(profile_name: str, task: str, epochs: int | None = None):
    """What `profile_name` changes from `paper` for `task` (`config.deviation_rows`, a
    chapter's `epochs` parameter among them when given), as a table for the page, or a
    sentence when it changes nothing."""
    rows = deviation_rows(profile_name, task)
    if epochs is not None:
        rows.append(("training.epochs (chapter parameter)", profile("paper", task).training.epochs, epochs))
    if not rows:
        return "no deviations: paper settings"
    return (pd.DataFrame(rows, columns=["setting", "paper", profile_name])
            .map(lambda v: f"{v:g}" if isinstance(v, float) else str(v)).style.hide(axis="index"))


# --- working memory ------------------------------------------------------------------------

def wm_courses(records: dict[str, list], seed: int, legacy_bias_restore: bool = False) -> pd.DataFrame:
    """Every index at every snapshot of every run (`evaluate.index_courses` on the fresh batch
    drawn from `seed`), one row per (run, snapshot), with "condition" and "run" columns."""
    courses = pd.concat([evaluate.index_courses(r, seed, legacy_bias_restore=legacy_bias_restore)
                         .assign(condition=label)
                         for label, runs in records.items() for r in runs], ignore_index=True)
    courses["run"] = courses["condition"] + ", seed " + courses["seed"].astype(str)
    return courses


def wm_finals(courses: pd.DataFrame, records: dict[str, list],
              differentiation_q: float = claims.STRUCTURAL_Q) -> pd.DataFrame:
    """One row per run: the indices of its last snapshot, its final accuracy, "mi" (the median
    Î of its last epochs, `analysis.final_values`), and whether it is successful (accuracy >
    0.9) and differentiated (successful and final Q_str > `differentiation_q`)."""
    task = pd.concat([analysis.final_values(runs).assign(condition=label)
                      for label, runs in records.items()])
    finals = (courses.loc[courses.groupby("run")["epoch"].idxmax()]
              .merge(task[["condition", "seed", "accuracy", "mi_recent"]], on=["condition", "seed"])
              .rename(columns={"mi_recent": "mi"}))
    finals["success"] = finals["accuracy"] > claims.SUCCESS["accuracy"]
    finals["differentiated"] = finals["success"] & (finals["Q_str"] > differentiation_q)
    return finals.reset_index(drop=True)


def wm_lags(courses: pd.DataFrame, condition: str, pairs=(("Q_corr", "Q_str"),)) -> dict[str, pd.DataFrame]:
    """`analysis.precedence_lags` of the runs of one condition, per (functional, structural)
    pair: {"Q_corr → Q_str": table with a row per run ("seed N")}."""
    runs = courses[courses["condition"] == condition].assign(
        run=lambda table: "seed " + table["seed"].astype(str))
    return {f"{f} → {s}": analysis.precedence_lags(runs, f, s) for f, s in pairs}


def end_of_training(courses: pd.DataFrame, condition: str,
                    differentiation_q: float = claims.STRUCTURAL_Q) -> pd.DataFrame:
    """Per run of `condition` (a row per seed): the highest Q_corr of its course and its epoch,
    its last snapshot's Q_corr, D_corr and Q_str, and whether the last snapshot still shows
    functional modularity (D_corr > `claims.FUNCTIONAL_D`) and shows structural modularity
    (Q_str > `differentiation_q`) — the paper's description at the end of training."""
    rows = []
    for seed, course in courses[courses["condition"] == condition].groupby("seed"):
        course = course.sort_values("epoch")
        peak, last = course.loc[course["Q_corr"].idxmax()], course.iloc[-1]
        rows.append({"seed": seed, "highest Q_corr": peak["Q_corr"], "at epoch": int(peak["epoch"]),
                     "epoch": int(last["epoch"]), "Q_corr": last["Q_corr"], "D_corr": last["D_corr"],
                     "Q_str": last["Q_str"],
                     "functional at the end": bool(last["D_corr"] > claims.FUNCTIONAL_D),
                     "structural at the end": bool(last["Q_str"] > differentiation_q)})
    return pd.DataFrame(rows)


def _seeds_text(seeds) -> str:
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def endings_text(table: pd.DataFrame, runs: str, detail: bool = True) -> tuple[str, pd.Series]:
    """One sentence on how the runs of `table` (`end_of_training` rows; `runs` names them)
    end, then (with `detail`) one per run without functional modularity at the end, else
    their seeds; and which runs end as the paper describes (functional and structural)."""
    described = table["functional at the end"] & table["structural at the end"]
    lost = table[~table["functional at the end"]]
    text = (f"{described.sum()} of {len(table)} {runs} end as the paper describes, with "
            "functional and structural modularity"
            + (f" ({_seeds_text(table.loc[described, 'seed'])})" if described.any() else "")
            + ". ")
    if detail:
        text += " ".join(f"Seed {r.seed} reached Q_corr {r['highest Q_corr']:.2f} at epoch "
                         f"{r['at epoch']} and ends at epoch {r.epoch} with Q_corr {r.Q_corr:.2f}, "
                         f"D_corr {r.D_corr:.2f}, Q_str {r.Q_str:.3f}." for _, r in lost.iterrows())
    elif len(lost):
        text += (f"{len(lost)} end without functional modularity (D_corr ≤ {claims.FUNCTIONAL_D:g}): "
                 f"{_seeds_text(lost['seed'])}, whose highest Q_corr was "
                 + " to ".join(dict.fromkeys(f"{q:.2f}" for q in
                                             (lost['highest Q_corr'].min(), lost['highest Q_corr'].max())))
                 + ".")
    return text, described


def paper_ends_text(ends: pd.DataFrame, book_ends: pd.DataFrame, profile_name: str) -> str:
    """Chapter 4's comparison of how the `paper` runs with MI minimisation end (`ends` rows
    with "profile" = "paper") with how all the `profile_name` runs end (`book_ends`)."""
    paper_text, described = endings_text(ends[ends["profile"] == "paper"],
                                         "`paper` runs with MI minimisation")
    if described.all():
        paper_text += (" At the paper's settings these seeds differentiate functionally first and "
                       "structurally later.")
    elif described.any():
        paper_text += " At the paper's own settings, then, what 1000 epochs give depends on the seed."
    else:
        paper_text += " No `paper` seed shows the end of training that the paper describes."
    paper_text += (f" With {described.size} seed{'s' if described.size > 1 else ''} per condition this "
                   f"is an observation, not a test: an exact one-sided rank-sum test needs "
                   f"{claims.runs_to_decide()} runs per condition to reach p < {claims.ALPHA:g}.")
    book_text, _ = endings_text(book_ends, f"`{profile_name}` runs with MI minimisation (all seeds)",
                                detail=False)
    return paper_text + "\n\n" + book_text


def profile_verdicts(sources: dict[str, tuple[pd.DataFrame, pd.DataFrame]], seeds, mi_label: str,
                     control_label: str) -> pd.DataFrame:
    """The claims table of each seed of `seeds` under each profile ({name: (finals, courses)},
    the book's profile first, then "paper"), side by side: a row per (seed, claim, rule),
    columns ("verdict" | "numbers", profile)."""
    table = pd.concat([wm_verdicts(*tables, mi_label, control_label, seeds=[seed])
                       .assign(seed=seed, profile=name)
                       for seed in seeds for name, tables in sources.items()])
    return table.pivot_table(index=["seed", "claim", "rule"], columns="profile",
                             values=["verdict", "numbers"], aggfunc="first", sort=False)


def changed_verdicts_text(by_profile: pd.DataFrame, profile_name: str) -> str:
    """Which of `profile_verdicts`' verdicts the paper profile changes."""
    changed = by_profile[by_profile[("verdict", "paper")] != by_profile[("verdict", profile_name)]]
    return (f"The paper profile changes {len(changed)} of {len(by_profile)} verdicts"
            + "".join(f"; seed {s}, {r}: {changed.loc[(s, c, r), ('verdict', profile_name)]} → "
                      f"{changed.loc[(s, c, r), ('verdict', 'paper')]}" for s, c, r in changed.index) + ".")


def wm_verdicts(finals: pd.DataFrame, courses: pd.DataFrame, mi_label: str, control_label: str,
                seeds=None) -> pd.DataFrame:
    """The working-memory claims table (`claims.wm_claims`): the runs of condition `mi_label`
    against those of `control_label`, on the runs of `seeds` (all when None)."""
    if seeds is not None:
        finals, courses = (t[t["seed"].isin(list(seeds))] for t in (finals, courses))
    return claims.table(claims.wm_claims(finals[finals["condition"] == mi_label],
                                         finals[finals["condition"] == control_label],
                                         wm_lags(courses, mi_label)["Q_corr → Q_str"]))


@dataclass(frozen=True)
class VariantComparison:
    """Runs of the same seeds trained two ways, as chapter 3 shows them: `header` (Markdown),
    `summary` (the paired differences, a row per quantity), `values` (a column per seed) and
    `table` (`evaluate.paired_variants`' table: a row per seed)."""

    header: str
    summary: pd.DataFrame
    values: pd.DataFrame
    table: pd.DataFrame


def variant_comparison(baseline: list, variant: list, variant_label: str, baseline_label: str,
                       where: str, seed: int) -> VariantComparison | None:
    """The seed-by-seed comparison of `variant` runs with the `baseline` runs of the same seeds
    (`evaluate.paired_variants` on the analysis batch of `seed`), labelled for the page;
    `where` names the condition, profile and length; None without a seed in both."""
    table, summary = evaluate.paired_variants(baseline, variant, seed)
    if table.empty:
        return None
    shown = summary.drop(columns="seeds").rename(columns={
        "mean difference": f"mean of {variant_label} − {baseline_label}",
        "variant larger in": f"{variant_label} larger in (of {len(table)})",
        "baseline sd": f"sd over seeds, {baseline_label}"})
    shown["within spread"] = summary["within spread"].map({True: "yes", False: "no"})
    recent = "Î (median of last 10, nats)"
    return VariantComparison(
        f"{len(table)} paired seeds, {where}:",
        shown.rename(index={"mi_recent": recent}).round(3),
        table.round(3).rename(columns={"mi_recent": recent, "baseline": baseline_label,
                                       "variant": variant_label}).T,
        table)


def variant_extremes(table: pd.DataFrame, controls: list, seed: int, labels: tuple[str, str],
                     indices=("Q_corr", "D_corr")) -> str:
    """For each of `indices`: the lowest final value of an MI run in each arm of a
    `variant_comparison` (`labels`: baseline's, variant's) against the highest of the
    `controls` (working-memory records), a line each."""
    control = pd.DataFrame([evaluate.final_indices(r, seed) for r in controls])
    lines = []
    for name in indices:
        lowest = ", ".join(f"{table[name][v].min():.3f} ({label})"
                           for v, label in zip(("baseline", "variant"), labels))
        lines.append(f"{name}: lowest final value of an MI run {lowest};\n"
                     f"  highest of a control run {control[name].max():.3f} (all {len(control)} seeds)")
    return "\n".join(lines)


def study_finals(records: dict[str, list], seed: int,
                 differentiation_q: float = claims.STRUCTURAL_Q) -> pd.DataFrame:
    """A working-memory study beyond the paper (chapter 6): one row per run of `records`
    ({label: runs}) with its λ and c_L1, the final values and indices of `wm_finals`,
    Q_str / Q_corr (where Q_corr exceeds `differentiation_q`: a ratio to a Q_corr near zero
    says nothing), t50 of Q_corr and Q_str (fraction of the final value, epochs),
    `claims.structural_onset` (the first snapshot whose Q_str exceeds `differentiation_q`; one epoch past
    the last snapshot when none does), and the share of near-zero weights of W_rec, in all
    at the first snapshot ("near-zero at start") and at the end ("near-zero"), per block at
    the end ("near-zero G1→G2", …; `analysis.block_sparsity`) and between the groups minus
    within them ("near-zero between − within")."""
    courses = wm_courses(records, seed)
    finals = wm_finals(courses, records, differentiation_q)
    onsets = analysis.onset_table(courses, ("Q_corr", "Q_str"), fractions=(0.5,))
    runs = {(label, r.seed): r for label, rs in records.items() for r in rs}
    rows = []
    for row in finals.itertuples(index=False):
        record = runs[row.condition, row.seed]
        course = courses[courses["run"] == row.run].sort_values("epoch")
        past = course["epoch"][course["Q_str"] > differentiation_q]
        blocks = analysis.block_sparsity(evaluate.final_parameters(record.snapshots)["w_rec"])
        rows.append({"lambda": record.config.training.lambda_mi,
                     "c_l1": record.config.training.c_l1,
                     "Q_str / Q_corr": (row.Q_str / row.Q_corr if row.Q_corr > differentiation_q
                                        else float("nan")),
                     **onsets.loc[row.run].to_dict(),
                     claims.structural_onset(differentiation_q): (
                         float(past.iloc[0]) if len(past) else float(course["epoch"].max() + 1)),
                     "near-zero at start": analysis.block_sparsity(record.snapshots["w_rec"][0])["all"],
                     "near-zero": blocks.pop("all"),
                     **{f"near-zero {k}": v for k, v in blocks.items()},
                     "near-zero between − within": (blocks["G1→G2"] + blocks["G2→G1"]
                                                    - blocks["G1→G1"] - blocks["G2→G2"]) / 2})
    return pd.concat([finals, pd.DataFrame(rows, index=finals.index)], axis=1)


def dose_note(dose: pd.DataFrame) -> str:
    """What chapter 6's λ table shows (`dose`: `study_finals` rows with "lambda"), and where
    the runs' mean accuracy falls below the success threshold."""
    success, q = claims.SUCCESS["accuracy"], claims.STRUCTURAL_Q
    below = claims.settings_below(dose, "lambda")
    listed = " and ".join(f"{v:g}" for v in below)
    return ("Mean ± sd over the runs of each λ where the value is defined, with their count where "
            "that is not all of them (t50 needs a course that rises); *differentiated*: accuracy "
            f"above {success:g} and final Q_str above {q:g}. "
            + (f"Mean accuracy stays above {success:g} at every λ tried (up to {max(dose['lambda']):g})."
               if not below else f"Mean accuracy is below {success:g} at λ = {listed}"
               + ("" if len(below) == dose["lambda"].nunique() else ", at or above it at every other λ")
               + "."))


def study_configs(base: RunConfig, lambdas, c_l1s=(0.0,)) -> dict[str, RunConfig]:
    """A study beyond the paper (chapter 6): {label: config} for every (c_L1, λ) pair of `base`,
    labelled "λ = 0.1" or, when c_L1 > 0, "λ = 0.1, c_L1 = 0.001"; c_L1 outer, λ inner."""
    configs = {}
    for c_l1 in c_l1s:
        for lam in lambdas:
            label = f"λ = {lam:g}" + (f", c_L1 = {c_l1:g}" if c_l1 else "")
            configs[label] = base.replace(**{"training.lambda_mi": lam, "training.c_l1": c_l1})
    return configs


@dataclass(frozen=True)
class WMEvidence:
    """Everything the working-memory claims rest on: `courses` (a row per run and snapshot),
    `finals` (a row per run), `verdicts` (the claims table)."""

    courses: pd.DataFrame
    finals: pd.DataFrame
    verdicts: pd.DataFrame

    @property
    def alignment(self) -> pd.DataFrame:
        """A row per run: condition, seed and the final weight alignment r(d, d_out), r(d, d_in)."""
        return self.finals[["condition", "seed", *analysis.ALIGNMENT_COLUMNS]]


def wm_evidence(records: dict[str, list], seed: int, differentiation_q: float = claims.STRUCTURAL_Q,
                legacy_bias_restore: bool = False) -> WMEvidence:
    """The working-memory evidence of `records` ({MI label: runs, control label: runs})."""
    courses = wm_courses(records, seed, legacy_bias_restore)
    finals = wm_finals(courses, records, differentiation_q)
    return WMEvidence(courses, finals, wm_verdicts(finals, courses, *list(records)[:2]))


# --- chapter 3's pilot of the critic's row share -------------------------------------------

def late_course(record, replay_seed: int) -> dict[str, np.ndarray]:
    """What `claims.late_training_check` reads of a working-memory record: "mi" (history
    "mi_before") and "accuracy" per epoch, (E,); "epoch" and "Q_corr" per snapshot, (S,),
    from `evaluate.index_courses` on the analysis batch of `replay_seed`."""
    indices = evaluate.index_courses(record, replay_seed)
    return {"mi": record.history["mi_before"], "accuracy": record.history["accuracy"],
            "epoch": indices["epoch"].to_numpy(), "Q_corr": indices["Q_corr"].to_numpy()}


def pilot_checks(pilot_courses: dict, mi_courses: dict, control_courses: dict) -> pd.DataFrame:
    """`claims.late_training_check` for every pilot run ({(fraction, seed): course}) against
    the paper runs of the same seed ({seed: course}, λ > 0 and control), or of the first seed
    stored in both conditions when its own is missing: its rows with "fraction", "seed" and
    "reference" (which paper runs it was held against)."""
    stand_in = sorted(set(mi_courses) & set(control_courses))[0]
    checks = []
    for (fraction, seed), course in pilot_courses.items():
        mi_seed = seed if seed in mi_courses else stand_in
        control_seed = mi_seed if mi_seed in control_courses else stand_in
        reference = (f"paper seed {mi_seed}" if control_seed == mi_seed
                     else f"paper seed {mi_seed} (control: seed {control_seed})")
        checks.append(claims.late_training_check(
            course, mi_courses[mi_seed], control_courses[control_seed]).assign(
            fraction=fraction, seed=seed, reference=reference))
    return pd.concat(checks)


_CRITERION_SHORT = dict(zip(claims.LATE_CRITERIA, ("Î", "accuracy", "Q_corr")))


def pilot_text(checks: pd.DataFrame, fractions, mi_courses: dict, book_fraction: float) -> str:
    """The pilot's outcome as the chapter prints it: a line per fraction tried (runs that keep
    the constraint, and what the others lost), then the verdict of `claims.fraction_choice`,
    whether the `book` profile's `book_fraction` is what it chooses, and the paper MI runs'
    own smallest late window of Q_corr."""
    lines = []
    for f in fractions:
        table = checks[checks["fraction"] == f]
        if table.empty:
            lines.append(f"- {f:g} of the rows: no run stored yet.")
            continue
        failed = [f"seed {s} ({', '.join(_CRITERION_SHORT[c] for c in t.loc[~t['ok'], 'criterion'])})"
                  for s, t in table.groupby("seed") if not t["ok"].all()]
        n_runs = table["seed"].nunique()
        lines.append(f"- {f:g} of the rows: {n_runs - len(failed)} of {n_runs} runs keep the "
                     "constraint" + (f"; lost: {'; '.join(failed)}." if failed else "."))
    chosen = claims.fraction_choice(checks)
    verdict = (f"the rule chooses {chosen:g} of the rows." if chosen is not None
               else "no fraction tried so far keeps the constraint in every pilot run.")
    failed = checks.groupby("fraction")["ok"].apply(lambda ok: int((~ok).sum()))
    if chosen is None and len(failed) > 1:
        small, large = failed.iloc[0], failed.iloc[-1]
        verdict += (f" The largest fraction tried misses {large} of its "
                    f"{int((checks['fraction'] == failed.index[-1]).sum())} "
                    f"criteria, the smallest {small}: a larger critic sample "
                    + ("does not keep the constraint" if large >= small else "helps but does not suffice")
                    + ". Whether the `paper` settings keep it beyond the "
                    f"{len(mi_courses)} stored `paper` MI seed(s) is what more `paper` seeds decide.")
    if chosen == book_fraction:
        why = "as the rule chooses"
    elif chosen is None and book_fraction == min(fractions):
        why = "the smallest fraction tried, as the rule says when none keeps the constraint"
    else:
        why = "which is not what the rule chooses"
    verdict += f" The 1000-epoch `book` profile uses {book_fraction:g} of the rows, {why}."
    own = [f"seed {s} {analysis.q_corr_windows(c).min():.3f} (mean {analysis.late_q_corr(c):.3f})"
           for s, c in mi_courses.items()]
    verdict += (" The `paper` MI runs themselves, smallest window mean of Q_corr over epochs "
                f"{analysis.LATE_START}–1000: {'; '.join(own)}.")
    return "\n".join(lines) + f"\n\n**Verdict:** {verdict}"


# --- chaotic separation --------------------------------------------------------------------

def separation_nmi(record, replay: evaluate.SeparationReplay) -> dict[str, float]:
    """How well two detected communities match G1/G2: the normalised mutual information of the
    groups with the two communities of the sequence-averaged |corr(h)| matrix and of |U_h|."""
    groups = analysis.two_groups(record.config.model.n_units)
    gru = evaluate.stored_model(record.config, evaluate.final_parameters(record.snapshots))
    assert isinstance(gru, GRUNet)
    u_h = gru.recurrent_block("h").detach().numpy()
    matrices = {NMI_CORR: analysis.symmetrised_weights(analysis.mean_abs_correlation_matrix(replay.h)) / 2,
                NMI_WEIGHTS: analysis.symmetrised_weights(u_h, negative="abs") / 2}
    return {name: analysis.normalized_mutual_information(analysis.two_communities(m), groups)
            for name, m in matrices.items()}


def half_preferences(replays: dict) -> pd.DataFrame:
    """Which system each half leans towards, per run: the mean over G1's units and over G2's
    of C^L_i − C^R_i (mean |corr| with the Lorenz outputs minus with the Rössler outputs, all
    steps of the test set), whether the two halves lean towards different systems, and the
    units' mean (C^L_i + C^R_i)/2 for scale.
    `replays`: {(condition, seed): SeparationReplay}; one row per run."""
    rows = []
    for (label, seed), replay in replays.items():
        groups = analysis.two_groups(replay.h.shape[-1])
        c_l, c_r = analysis.system_strengths(analysis.output_correlations(replay.h, replay.y, 0))
        g1, g2 = ((c_l - c_r)[groups == k].mean() for k in (0, 1))
        rows.append({"condition": label, "seed": seed, "G1: C^L − C^R": g1,
                     "G2: C^L − C^R": g2, "halves lean apart": bool(np.sign(g1) != np.sign(g2)),
                     "mean C": float((c_l + c_r).mean() / 2)})
    return pd.DataFrame(rows)


# The search for the `book` separation profile (chapter 5): one change at a time from `book`
# as it stood when the search was made (`SEARCH_BASE` applied to today's `book`), each a
# {setting: value} ("task.seq_len" keeps the paper's sampling interval).
SEARCH_BASE = {"training.epochs": 30}
SEPARATION_SEARCH: dict[str, dict[str, Any]] = {
    "book": {},
    "sequences of 2000 steps": {"task.seq_len": 2000},
    "60 epochs": {"training.epochs": 60},
    "2 critic steps per update": {"training.n_sm_steps": 2},
    "5 % of the critic's rows": {"estimator.sample_fraction": 0.05},
}


def search_config(base: RunConfig, changes: dict[str, Any]) -> RunConfig:
    """`base` with `changes` ({"section.field": value}); "task.seq_len" goes through
    `config.sequence_length`, so the sampling interval stays the paper's."""
    changes = dict(changes)
    seq_len = changes.pop("task.seq_len", None)
    config = base if seq_len is None else sequence_length(base, seq_len)
    return config.replace(**changes) if changes else config


def separation_search(base: RunConfig, variants: dict[str, dict[str, Any]], seeds,
                      root=None) -> tuple[pd.DataFrame, str]:
    """The stored runs of each variant (`search_config(base, changes)`) for `seeds`: one row per
    stored run with the variant, its changes, the final test R² over all steps and over
    t ≥ washout (its network replayed on the test set), its core-minutes
    (`costs.core_hours`) and the processor that trained it (`machine.recorded_cpu`; records made
    before 2026-12-03 do not name it); and the `mifd sweep` commands that train the missing
    ones ("" when none is missing)."""
    rows, missing = [], []
    for name, changes in variants.items():
        config = search_config(base, changes)
        for seed in seeds:
            record = store.find_record(config, seed, root)
            if record is None:
                missing.append(sweep.Run(config, seed))
                continue
            replay = evaluate.replay_separation(config, evaluate.final_parameters(record.snapshots))
            scored = separation.scores(replay.targets, replay.y, config.separation_task.washout)
            rows.append({"variant": name,
                         "changes": ", ".join(f"{k} = {v:g}" for k, v in changes.items()) or "–",
                         "seed": seed, "R² (all steps)": scored["r2_mean"],
                         "R² (t ≥ washout)": scored["r2_mean_scored"],
                         "epochs": config.training.epochs,
                         "core-seconds per epoch": (3600 * costs.core_hours(record.provenance)
                                                    / config.training.epochs),
                         "core-minutes per run": 60 * costs.core_hours(record.provenance),
                         "CPU": machine.recorded_cpu(record.provenance, "not recorded")})
    commands = "\n".join(sweep.command({"": [run]}) for run in missing)
    return pd.DataFrame(rows), commands


def search_relative_cost(search: pd.DataFrame, variants: dict[str, dict[str, Any]],
                         book_epochs: int) -> pd.Series:
    """Each search run's cost as a multiple of a `book` run's on the same processor: its
    core-seconds per epoch × epochs ÷ (the book epoch's core-seconds × `book_epochs`). A variant
    that changes nothing but the epochs does a book epoch's work, so its multiple is its epochs ÷
    `book_epochs` on any processor, and its records give the book epoch's cost on theirs; a
    variant on a processor with no such record gets NaN."""
    same_epoch = {name for name, changes in variants.items() if set(changes) <= {"training.epochs"}}
    epoch_cost = (search[search["variant"].isin(same_epoch)]
                  .groupby("CPU")["core-seconds per epoch"].mean())
    reference = search["CPU"].map(epoch_cost) * book_epochs
    multiple = search["core-seconds per epoch"] * search["epochs"] / reference
    return multiple.where(~search["variant"].isin(same_epoch), search["epochs"] / book_epochs)


def half_lean_text(lean: pd.DataFrame, records: dict[str, list], mi_label: str,
                   control_label: str) -> str:
    """Chapter 5's reading of `half_preferences` (`lean`) beside the runs' last D_corr and
    Q_corr (history, mean over runs): whether the halves lean towards different systems,
    and what D_corr and Q_corr say of it."""
    apart = lean.groupby("condition", sort=False)["halves lean apart"].agg(["sum", "size"])
    final = {label: {key: np.mean([r.history[key][-1] for r in runs]) for key in ("Q_corr", "D_corr")}
             for label, runs in records.items()}
    mi_lean = lean[lean["condition"] == mi_label]
    gap = (mi_lean["G1: C^L − C^R"] - mi_lean["G2: C^L − C^R"]).abs().mean()
    d_mi, d_control = final[mi_label]["D_corr"], final[control_label]["D_corr"]
    return (f"Over all runs: with MI minimisation the two halves lean towards different systems in "
            f"{apart.loc[mi_label, 'sum']} of {apart.loc[mi_label, 'size']} runs (control: "
            f"{apart.loc[control_label, 'sum']} of {apart.loc[control_label, 'size']}); the "
            f"halves' mean leans C^L − C^R differ by {gap:.3f} on average, where a unit's C^L and C^R "
            f"are about {mi_lean['mean C'].mean():.2f}. D_corr, the index of this split over units, is {d_mi:.2f} "
            f"(control {d_control:.2f}), " + ("below" if d_mi < claims.FUNCTIONAL_D else "above")
            + f" the {claims.FUNCTIONAL_D:g} taken below as *one signal per half, mostly*. Q_corr, at "
            f"{final[mi_label]['Q_corr']:.2f} (control {final[control_label]['Q_corr']:.2f}), says that "
            "the two halves' activities decorrelate, which is what minimising Î asks for, not that each "
            "half carries one system: the *clear functional modularity* rows of the claims table "
            "should be read with that in mind.")


def search_outcome(search: pd.DataFrame, base_epochs: int, pending: bool) -> tuple[str, pd.DataFrame]:
    """The separation search as chapter 5 shows it (`separation_search`'s table of the
    variants stored; `pending`: some are not): the sentence saying what `claims.search_choice`
    picks, and the table with each run's cost as a multiple of a `book` run of
    `base_epochs` epochs ("× book")."""
    search = search.assign(**{"× book": search_relative_cost(search, SEPARATION_SEARCH, base_epochs)})
    choice, done = claims.search_choice(search), search["variant"].nunique()
    text = f"The rule picks {choice!r}" + (f" from the {done} of {len(SEPARATION_SEARCH)} variants "
                                           "stored so far." if pending else ".")
    shown = search.drop(columns=["changes", "core-seconds per epoch"]).replace(
        {"variant": {"book": "book before the search"}})
    return text, shown


def separation_finals(records: dict[str, list], replays: dict | None = None) -> pd.DataFrame:
    """One row per run: the final network's test R² (mean and smallest over outputs) over
    all steps and over t ≥ washout (`separation.scores` on the test set), the last epoch's Î
    and indices from its history, and `separation_nmi` on the test set (`replays`: {(label,
    seed): SeparationReplay}, computed when missing)."""
    rows = []
    for label, runs in records.items():
        for r in runs:
            replay = (replays or {}).get((label, r.seed)) or evaluate.replay_separation(
                r.config, evaluate.final_parameters(r.snapshots))
            scored = separation.scores(replay.targets, replay.y, r.config.task.washout)
            rows.append({"condition": label, "seed": r.seed,
                         **{k: scored[k] for k in R2_COLUMNS},
                         **{k: r.history[k][-1] for k in ("mi", *SEPARATION_INDICES)},
                         **separation_nmi(r, replay)})
    return pd.DataFrame(rows)


def separation_courses(runs: list) -> pd.DataFrame:
    """The indices after every epoch, from the runs' histories: a row per (run, epoch)."""
    return pd.DataFrame([{"run": f"seed {r.seed}", "epoch": e + 1,
                          **{name: r.history[name][e] for name in SEPARATION_INDICES}}
                         for r in runs for e in range(len(r.history["loss"]))])


def separation_lags(courses: pd.DataFrame, pairs=(("Q_corr", "Q_str"), ("D_corr", "D_out"))
                    ) -> dict[str, pd.DataFrame]:
    """`analysis.precedence_lags` per (functional, structural) pair."""
    return {f"{f} → {s}": analysis.precedence_lags(courses, f, s) for f, s in pairs}


def separation_verdicts(finals: pd.DataFrame, courses: pd.DataFrame, mi_label: str,
                        control_label: str) -> pd.DataFrame:
    """The separation claims table (`claims.separation_claims`): the runs of condition
    `mi_label` against those of `control_label`; `courses` are the MI runs'
    (`separation_courses`)."""
    return claims.table(claims.separation_claims(
        finals[finals["condition"] == mi_label], finals[finals["condition"] == control_label],
        separation_lags(courses)["Q_corr → Q_str"]))


# --- the results page ------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """One column of the results page: its verdicts (a `claims.table`), the runs in words,
    the chapter section that decides them, and the records ({label: [RunRecord, …]})."""

    verdicts: pd.DataFrame
    runs: str
    link: str
    records: dict[str, list]


def runs_text(records: dict[str, list]) -> str:
    """"10 runs at λ = 0.1, 10 controls": the runs of {MI label: runs, control label: runs}."""
    (mi_label, mi), (_, control) = records.items()
    return (f"{len(mi)} run{'s' * (len(mi) > 1)} at {mi_label}, "
            f"{len(control)} control{'s' * (len(control) > 1)}")


def results_sources(wm_profile: str, wm_seeds, wm_lambda: float, paper_seeds,
                    separation_profile: str, separation_seeds, separation_lambda: float,
                    results_dir=None, train_missing: bool = False, analysis_seed: int = 0,
                    dose_lambda: float | None = None) -> dict[str, Source]:
    """The results page's columns, {name: Source}: working memory at `wm_profile`, then (with
    `dose_lambda`) its well-posed critic at `wm_lambda` and its authors' critic at
    `dose_lambda` against the same controls, each where some of `wm_seeds` are stored (or
    trained, with `train_missing`), at `paper` where both conditions of some of `paper_seeds`
    are stored, and separation."""
    def collect(conditions, seeds):
        return study.study(conditions, seeds, results_dir, train_missing).complete()

    sources = {}
    wm_records = collect(sweep.conditions("wm", wm_profile, wm_lambda), wm_seeds)
    sources[f"working memory, {wm_profile}"] = Source(
        wm_evidence(wm_records, analysis_seed).verdicts, runs_text(wm_records),
        "04_functional_structural.html#the-paper-s-claims-one-by-one", wm_records)
    if dose_lambda is not None:
        variants = list(departure_conditions(wm_profile, wm_lambda, dose_lambda).items())[2:]
        control_label, control = list(wm_records.items())[1]
        for label, config in variants:
            runs = study.study({label: config}, wm_seeds, results_dir, train_missing).records[label]
            if runs:
                records = {label: runs, control_label: control}
                sources[f"working memory, {wm_profile}, {_at(label).removeprefix('the ')}"] = Source(
                    wm_evidence(records, analysis_seed).verdicts, runs_text(records),
                    "critic_dose.html#the-paper-s-claims-per-column", records)
    paper_stored = {label: {r.seed: r for r in runs} for label, runs in study.study(
        sweep.conditions("wm", "paper", wm_lambda), paper_seeds, results_dir).records.items()}
    paper_both = sorted(set.intersection(*(set(runs) for runs in paper_stored.values())))
    if paper_both:
        paper_records = {label: [runs[s] for s in paper_both] for label, runs in paper_stored.items()}
        sources["working memory, paper"] = Source(
            wm_evidence(paper_records, analysis_seed).verdicts, runs_text(paper_records),
            "04_functional_structural.html#paper-profile-beside-the-book-profile", paper_records)
    conditions = sweep.conditions("separation", separation_profile, separation_lambda)
    records = collect(conditions, separation_seeds)
    mi_label, control_label = conditions
    verdicts = separation_verdicts(separation_finals(records),
                                   separation_courses(records[mi_label]), mi_label, control_label)
    sources[f"separation, {separation_profile}"] = Source(
        verdicts, runs_text(records), "05_separation.html#final-values-and-the-paper-s-claims",
        records)
    return sources


# --- the critic's collapses (#35) ----------------------------------------------------------

def collapse_table(records: dict[str, list], finals: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run of {label: runs}: where its training estimate collapses
    (`analysis.collapses` of "mi_before": "collapses", "late share" of epochs 501–E, "first
    collapse", "lowest Î"), its mean accuracy over the last `claims.END_ACCURACY_EPOCHS` epochs, and, from
    `finals` (`wm_finals`: "condition", "seed", "D_corr") where given, its final D_corr."""
    rows = []
    for label, runs in records.items():
        for r in runs:
            found = analysis.collapses(r.history["mi_before"])
            rows.append({"condition": label, "seed": r.seed, "collapses": found["count"],
                         "late share": found["late_share"], "first collapse": found["first"],
                         "lowest Î": found["minimum"],
                         f"accuracy, last {claims.END_ACCURACY_EPOCHS}": float(
                             np.mean(r.history["accuracy"][-claims.END_ACCURACY_EPOCHS:]))})
    table = pd.DataFrame(rows)
    if finals is not None:
        table = table.merge(finals[["condition", "seed", "D_corr"]], on=["condition", "seed"])
    return table


def collapse_shares(records: dict[str, list]) -> dict[str, np.ndarray]:
    """{label: (runs, windows) share of each window of `analysis.COLLAPSE_WINDOW` epochs in
    which the run's training Î collapsed}."""
    return {label: np.stack([analysis.collapses(r.history["mi_before"])["shares"] for r in runs])
            for label, runs in records.items()}



COLLAPSE_CLAIM = "collapses go with the end of training"


def collapse_relations(collapsed: pd.DataFrame, label: str) -> pd.DataFrame:
    """Whether the late collapse share of `label`'s runs (`collapse_table` rows) goes with
    their accuracy over the last epochs and their final D_corr (`claims.relation`)."""
    rows = collapsed[collapsed["condition"] == label]
    tail = f"accuracy, last {claims.END_ACCURACY_EPOCHS}"
    return claims.table([claims.relation(COLLAPSE_CLAIM, "late collapse share", name,
                                         rows["late share"], rows[column])
                         for name, column in (("accuracy", tail), ("D_corr", "D_corr"))])


def collapse_text(collapsed: pd.DataFrame, mi_label: str, control_label: str, epochs: int,
                  relations: pd.DataFrame) -> str:
    """Chapter 3's account of the collapses (`collapse_table` rows of both conditions, the
    runs' `epochs`, `collapse_relations` of the MI runs): how often each condition's critic
    collapses late in training, the runs that collapse most and least, and whether accuracy
    and D_corr go with the collapse share."""
    mi_rows, control_rows = (collapsed[collapsed["condition"] == label]
                             for label in (mi_label, control_label))
    late = {mi_label: mi_rows["late share"], control_label: control_rows["late share"]}
    if not all(v.notna().any() for v in late.values()):
        return f"These runs are too short for epochs after {analysis.LATE_START}."
    tail = f"accuracy, last {claims.END_ACCURACY_EPOCHS}"
    worst = mi_rows.loc[mi_rows["late share"].idxmax()]
    best = mi_rows.loc[mi_rows["late share"].idxmin()]

    def changes(row: int) -> str:
        return "changes" if relations.iloc[row]["verdict"] == "yes" else "does not change detectably"

    return (f"With {mi_label} the training estimate collapses in {late[mi_label].mean():.0%} of epochs "
            f"501–{epochs} (mean over {len(mi_rows)} runs; {late[mi_label].min():.0%} to "
            f"{late[mi_label].max():.0%}), the controls in {late[control_label].mean():.0%} "
            f"({late[control_label].min():.0%} to {late[control_label].max():.0%}); "
            f"{int((mi_rows['late share'].to_numpy() > late[control_label].max()).sum())} of {len(mi_rows)} "
            f"runs with MI minimisation collapse more often than any control. The run that collapses most "
            f"(seed {worst['seed']}, {worst['late share']:.0%}) ends at accuracy {worst[tail]:.2f}, "
            f"the one that collapses least (seed {best['seed']}, {best['late share']:.0%}) at {best[tail]:.2f}. "
            f"Across the runs with MI minimisation, accuracy {changes(0)} with the collapse share "
            f"({relations.iloc[0]['numbers']}), and D_corr {changes(1)} with it "
            f"({relations.iloc[1]['numbers']}).")


def symmetric_text(collapsed: pd.DataFrame, label: str, command: str) -> str:
    """What the pilot of the critic with noise on both terms found (`label`'s rows of
    `collapse_table`), judged by `claims.critic_pilot`; `command` trains it when none is stored."""
    rows = collapsed[collapsed["condition"] == label]
    if rows.empty:
        return (f"No run with the noise on both terms is stored for these seeds yet; `{command}` "
                "trains them.")
    pilot = claims.critic_pilot(rows["late share"])
    tail = f"accuracy, last {claims.END_ACCURACY_EPOCHS}"
    return (f"The runs with the noise on both terms (seeds {', '.join(map(str, rows['seed']))}): "
            f"late collapse shares {', '.join(f'{v:.0%}' for v in rows['late share'])}; by the "
            f"rule stated before they ran ({pilot.rule}): **{pilot.verdict}**, "
            + ("the symmetric critic no longer collapses and is kept. "
               if pilot.verdict == "yes" else "the symmetric critic still collapses; a bounded variant is next. ")
            + f"Their accuracy over the last {claims.END_ACCURACY_EPOCHS} epochs: "
            f"{', '.join(f'{v:.3f}' for v in rows[tail])}; final D_corr "
            f"{', '.join(f'{v:.3f}' for v in rows['D_corr'])}.")


def stored_records(task: str, results_dir=None) -> list:
    """Every complete record of `task` under `results_dir` (default: the repository's results/)."""
    root = store.RESULTS if results_dir is None else Path(results_dir)
    return [store.load_record(p.parent) for p in sorted(root.glob(f"{task}/*/seed-*/{store.MANIFEST}"))]


# --- beside the authors' code ---------------------------------------------------------------

STEP_DIFFERENTIAL = Path("reference") / "step_differential.json"


def step_differential(results_dir=None) -> dict[str, Any] | None:
    """The stored report of `reference/step_differential.py` (one step of mifd and of the
    authors' code on the same weights and draws), or None when none is stored."""
    root = store.RESULTS if results_dir is None else Path(results_dir)
    path = root / STEP_DIFFERENTIAL
    return json.loads(path.read_text()) if path.exists() else None


def step_differential_table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per quantity of the report, one column per case: the largest relative
    difference between mifd and the authors' code, the negative control's beside it where
    there is one (mifd against itself with the rows summed in reverse order), and the
    verdict ("rounding", "within mifd's own drift" or "differs")."""
    def cell(row: dict) -> str:
        if not row["within_rounding"]:
            word = "differs"
        else:
            word = "within mifd's own drift" if "control_relative" in row else "rounding"
        control = (f" (itself {row['control_relative']:.2g})" if "control_relative" in row
                   else "")
        return f"{row['relative']:.2g}{control}: {word}"

    columns = {"quantity": [r["quantity"] for r in next(iter(report["cases"].values()))["rows"]]}
    for case, content in report["cases"].items():
        columns[case] = [cell(row) for row in content["rows"]]
    return pd.DataFrame(columns)


def _differing(report: dict[str, Any]) -> set[str]:
    """The tensors where some quantity of the report differs beyond its tolerance."""
    return {r["largest_in"] for c in report["cases"].values() for r in c["rows"]
            if not r["within_rounding"]}


def step_differential_summary(report: dict[str, Any]) -> str:
    """The report in sentences: per case, how many quantities agree within rounding and which
    differ (with the tensor), and the stated tolerance."""
    parts = []
    for case, content in report["cases"].items():
        rows = content["rows"]
        differ = [f"{r['quantity']} ({r['largest_in']}, relative {r['relative']:.2g})"
                  for r in rows if not r["within_rounding"]]
        agree = len(rows) - len(differ)
        where = f" ({content['record']})" if content.get("record") else ""
        parts.append(f"On the {case}{where}, {agree} of {len(rows)} quantities agree within float32 "
                     "rounding, or within the drift of mifd against itself" +
                     (f"; {len(differ)} differ: " + "; ".join(differ) if differ else "") + ".")
    if _differing(report) == {"dense_out.bias"}:
        parts.append("Apart from the critic's output bias, on which the bound does not depend, "
                     "one training step of this companion computes what one step of the "
                     "authors' code computes.")
    return (" ".join(parts) + f" Rounding here means a relative difference of at most "
            f"{report['tolerance']:.2g}, the worst case of a float32 sum over the batch's rows "
            f"(authors' code at {report['authors_commit'][:7]}, TensorFlow "
            f"{report['tensorflow']}, tf-keras {report['tf_keras']}; mifd at "
            f"{report['mifd_commit'][:7]}; {report['cpu']}).")


def step_differential_short(report: dict[str, Any] | None) -> str:
    """One clause for the front page: what the step comparison found."""
    if report is None:
        return "no step of the two has been compared yet."
    differing = sorted(_differing(report))
    if not differing:
        return ("one training step of this companion computes what one step of theirs "
                "computes, within float32 rounding, on the same weights and draws.")
    if differing == ["dense_out.bias"]:
        return ("one training step of this companion computes what one step of theirs "
                "computes, within float32 rounding, on the same weights and draws, except "
                "the critic's output bias, which their float32 arithmetic moves although the "
                "bound does not depend on it.")
    return ("one training step of the two differs beyond float32 rounding in "
            + ", ".join(differing) + ".")


def authors_records(results_dir=None) -> list:
    """Every stored record of the authors' code (results/reference/wm/…)."""
    root = store.RESULTS if results_dir is None else Path(results_dir)
    return stored_records("wm", root / "reference")


def authors_table(records: list) -> pd.DataFrame:
    """One row per stored run of the authors' code: seed, λ, epochs trained, the median
    training Î of the last 10, `collapse_table`'s columns (collapses and the mean accuracy of
    the last `claims.END_ACCURACY_EPOCHS` epochs), the epoch it died (a non-finite loss or Î, else None)
    and seconds per epoch with the processor."""
    collapsed = collapse_table({"authors' code": records}).drop(columns=["condition", "seed"])
    own = pd.DataFrame([{
        "seed": r.seed, "λ": r.config.training.lambda_mi, "epochs": len(r.history["loss"]),
        "Î, median of last 10 (nats)": float(np.median(r.history["mi_before"][-10:])),
        "died at": r.provenance.get("died_at"), "s/epoch": r.provenance.get("seconds_per_epoch"),
        "processor": machine.recorded_cpu(r.provenance, "")}
        for r in records])
    return pd.concat([own.iloc[:, :4], collapsed, own.iloc[:, 4:]], axis=1)


# --- why the book departs from the paper (#35): the critic or the dose -----------------------

AUTHORS_CRITIC, WELL_POSED, CONTROL = "authors' critic", "well-posed critic", "λ = 0 (control)"


def departure_conditions(profile_name: str, lambda_mi: float, dose_lambda: float,
                         epochs: int | None = None) -> dict[str, RunConfig]:
    """The four conditions of the departure: {label: config} for the authors' critic at
    `lambda_mi` (the reference), the control, the well-posed critic (the estimator's noise on
    both terms of the bound, `estimator.noise_asymmetric = False`) at `lambda_mi`, and the
    authors' critic at `dose_lambda`; the order in which figures colour them."""
    mi, control = sweep.conditions("wm", profile_name, lambda_mi, epochs).values()
    return {f"λ = {lambda_mi:g}, {AUTHORS_CRITIC}": mi, CONTROL: control,
            f"λ = {lambda_mi:g}, {WELL_POSED}": mi.replace(**{"estimator.noise_asymmetric": False}),
            f"λ = {dose_lambda:g}, {AUTHORS_CRITIC}": mi.replace(**{"training.lambda_mi": dose_lambda})}


def end_table(courses: pd.DataFrame, records: dict[str, list]) -> pd.DataFrame:
    """One row per run of {label: runs} (`courses`: `wm_courses` of the same records): the
    collapse columns of `collapse_table`, "accuracy end" (the mean accuracy of the last
    `claims.END_ACCURACY_EPOCHS` epochs), "Q_corr end", "D_corr end" and "Q_str end" (the
    mean of the last `analysis.END_SNAPSHOTS` snapshots), and per run whether it "succeeds"
    (accuracy end > claims.SUCCESS["accuracy"]), is "functional" (D_corr end >
    claims.FUNCTIONAL_D) and "structural" (Q_str end > claims.STRUCTURAL_Q) at the end, and
    "paper end": succeeds and functional, the rule of `claims.departure`."""
    table = collapse_table(records).rename(
        columns={f"accuracy, last {claims.END_ACCURACY_EPOCHS}": "accuracy end"})
    ends = (courses.sort_values("epoch").groupby(["condition", "seed"], sort=False)
            [["Q_corr", "D_corr", "Q_str"]].agg(lambda v: v.iloc[-analysis.END_SNAPSHOTS:].mean())
            .add_suffix(" end").reset_index())
    table = table.merge(ends, on=["condition", "seed"])
    table["succeeds"] = table["accuracy end"] > claims.SUCCESS["accuracy"]
    table["functional"] = table["D_corr end"] > claims.FUNCTIONAL_D
    table["structural"] = table["Q_str end"] > claims.STRUCTURAL_Q
    table["paper end"] = table["succeeds"] & table["functional"]
    return table


def end_counts(ends: pd.DataFrame) -> pd.DataFrame:
    """Per condition of an `end_table` (rows in its order): how many runs succeed, are
    functional, structural, both, and end as the paper describes, each as a count with its
    exact interval (`claims.rate_text`), and the median late collapse share."""
    rows = {}
    for label, runs in ends.groupby("condition", sort=False):
        counts = {name: claims.rate_text(int(runs[column].sum()), len(runs)) for name, column in
                  (("succeed", "succeeds"), ("functional at the end", "functional"),
                   ("structural at the end", "structural"), ("end as the paper describes", "paper end"))}
        both = runs["paper end"] & runs["structural"]
        counts["as the paper describes, and structural"] = claims.rate_text(int(both.sum()), len(runs))
        counts["late collapse share, median"] = f"{runs['late share'].median():.1%}"
        rows[label] = counts
    return pd.DataFrame(rows)


def carrier_table(records: dict[str, list]) -> pd.DataFrame:
    """Per condition of {label: runs}, over the runs that log the bound's terms
    (`analysis.carriers`): runs, collapsed epochs, the critic's rows (`mine.kept_rows`), the
    median number of marginal samples that carry a collapsed epoch's log-mean-exp, and the
    median height of the largest marginal score above the joint term in collapsed and in the
    other epochs. A condition none of whose runs log the terms is left out."""
    rows = []
    for label, runs in records.items():
        task, estimator = runs[0].config.task, runs[0].config.estimator
        n_rows = mine.kept_rows(task.batch_size * task.n_learn, estimator.sample_fraction)
        found = [c for r in runs if (c := analysis.carriers(r.history, n_rows))]
        if not found:
            continue
        pooled = {key: np.concatenate([c[key] for c in found]) for key in found[0]}
        rows.append({"condition": label, "runs": len(found), "collapsed epochs": pooled["epoch"].size,
                     "critic rows": n_rows,
                     **{name: float(np.median(pooled[key])) if pooled[key].size else float("nan")
                        for name, key in (("samples carrying a collapse, median", "n_eff"),
                                          ("top score above joint, collapsed (nats)", "gap"),
                                          ("top score above joint, other epochs (nats)", "gap_ordinary"))}})
    return pd.DataFrame(rows)


def _departures(ends: pd.DataFrame, reference: str, variants) -> dict[str, tuple]:
    """{variant label: (its runs, the `reference` runs, `claims.departure` verdicts)} for each
    label of `variants` present in the `end_table` `ends` (with the reference)."""
    by = {label: runs for label, runs in ends.groupby("condition", sort=False)}
    return {label: (by[label], by[reference],
                    claims.departure(by[label], by[reference], against=_at(reference)))
            for label in variants if label in by and reference in by}


def departure_verdicts(ends: pd.DataFrame, reference: str, variants) -> dict[str, pd.DataFrame]:
    """{variant label: `claims.departure` table of that condition's runs against the
    `reference` condition's} for each label of `variants`."""
    return {label: claims.table(verdicts)
            for label, (_, _, verdicts) in _departures(ends, reference, variants).items()}


def _at(label: str) -> str:
    """"the well-posed critic at λ = 0.1" for the `departure_conditions` label "λ = 0.1,
    well-posed critic"."""
    lam, critic = label.split(", ", 1)
    return f"the {critic} at {lam}"


def departure_text(ends: pd.DataFrame, reference: str, variants, pushes_less: bool | None) -> str:
    """The departure in sentences (Markdown): per label of `variants` stored in `ends` (an
    `end_table`; labels of `departure_conditions`), how many of its runs end as the paper
    describes against the `reference`'s, its D_corr at the end and its collapses, with the
    tests of `claims.departure`; then which explanation the rule supports. `pushes_less`:
    whether a critic on the `book` share of the rows pushed the network less than one on all
    of them (chapter 3's measurement; None when none is stored)."""
    said, parts = {}, []
    for label, (runs, base, (rule, d_corr, collapse)) in _departures(ends, reference, variants).items():
        said[label] = {"more": rule.verdict == "yes", "fewer": collapse.verdict == "yes",
                       "decided": rule.verdict != "not decidable"}
        word = {"yes": "more", "no": "not detectably more", "not decidable": "too few runs to decide"}
        parts.append(
            f"With {_at(label)}, {claims.rate_text(int(runs['paper end'].sum()), len(runs))} runs end "
            f"as the paper describes, against {claims.rate_text(int(base['paper end'].sum()), len(base))} "
            f"with {_at(reference)}: {word[rule.verdict]} (exact one-sided Fisher p = {rule.p:.2g}). "
            f"Its D_corr at the end is {claims.mean_sd(runs['D_corr end'])} against "
            f"{claims.mean_sd(base['D_corr end'])} (p = {d_corr.p:.2g}, "
            f"{claims.shift_text(runs['D_corr end'], base['D_corr end'])}), and its training "
            f"estimate collapses in a median {runs['late share'].median():.0%} of epochs 501–1000 "
            f"against {base['late share'].median():.0%} (p = {collapse.p:.2g}, "
            f"{claims.shift_text(runs['late share'], base['late share'])}).")
    well_posed = next((label for label in said if WELL_POSED in label), None)
    dose = next((label for label in said if label != well_posed), None)
    named = [label for label in (well_posed, dose) if label is not None and said[label]["more"]]
    undecided = [label for label in (well_posed, dose)
                 if label is not None and not said[label]["decided"]]
    if well_posed in named and dose in named:
        text = (f"By the rule both variants explain the departure: changing only the critic's "
                f"noise form, or only λ, restores the paper's end of training. What departs is the "
                f"authors' critic at {reference.split(', ')[0]}, not the method: with a well-posed "
                f"critic that λ suffices; the authors' critic gets there at {dose.split(', ')[0]}.")
    elif named:
        text = (f"By the rule only {_at(named[0])} explains the departure"
                + (": the two columns at the same λ differ only in which samples the critic's "
                   "noise reaches, so the authors' noise form is what makes these runs depart."
                   if named[0] == well_posed else ": a larger λ restores the paper's end of training."))
    elif len(undecided) < len([v for v in (well_posed, dose) if v is not None]):
        text = "By the rule neither variant explains the departure with the runs stored."
    else:
        text = ""
    if undecided:
        text += (" Too few runs are stored to decide for " + " and ".join(map(_at, undecided)) + ".")
    text = text.strip()
    if dose is not None and pushes_less is False:
        text += (" Whether the `book` profile's critic, on a tenth of each batch's rows, pushes too "
                 "little is a separate question: chapter 3's measurement (*How hard the critic "
                 "pushes*: one run, two snapshots, three fresh critics) found it pushing about as "
                 "hard as a critic on all of the rows, so "
                 + ("the larger λ does not make up for the row share"
                    if dose in named else "the row share is not what sets the book's runs apart")
                 + ", as far as that measurement goes.")
    if text:
        parts.append(text.strip())
    return "\n\n".join(parts)


def departure_short(ends: pd.DataFrame, reference: str, variants) -> str:
    """One clause for the front pages: per label of `variants` stored in `ends` (an
    `end_table`), how many of its runs end as the paper describes against the `reference`'s,
    with the rule's p; "" when nothing is compared."""
    def count(runs: pd.DataFrame) -> str:
        return f"{int(runs['paper end'].sum())} of {len(runs)}"

    compared = _departures(ends, reference, variants)
    interim = any(len(runs) < len(base) for runs, base, _ in compared.values())
    return ("; ".join(
        f"with {_at(label)}, {count(runs)} runs end as the paper describes, against "
        f"{count(base)} with {_at(reference)} (exact one-sided Fisher p = {rule.p:.2g}"
        f"{'' if rule.verdict == 'yes' else ', not detectably more'})"
        for label, (runs, base, (rule, _, _)) in compared.items())
        + (" (interim: not every seed of these columns is stored yet)" if interim else ""))


def stored_text(records: dict[str, list], seeds) -> str:
    """"Interim: …" naming every condition of {label: runs} with fewer stored runs than
    `seeds`, how many and which; "" when every condition has them all."""
    seeds = list(seeds)
    short = [f"{label} has {len(runs)} of its {len(seeds)} seeds stored "
             f"({sweep.seed_ranges(r.seed for r in runs)})"
             for label, runs in records.items() if len(runs) < len(seeds)]
    return ("Interim: " + "; ".join(short) + "; the verdicts read the runs stored so far."
            if short else "")


def carrier_text(table: pd.DataFrame) -> str:
    """The `carrier_table` in sentences: per condition with collapsed epochs, how many marginal
    samples carry a collapse (median) and how far the top score then stands above the joint
    term, beside the other epochs; "" when no condition has a collapsed epoch."""
    parts = []
    for row in table[table["collapsed epochs"] > 0].to_dict("records"):
        n = row["samples carrying a collapse, median"]
        parts.append(
            f"In the {row['collapsed epochs']} collapsed epochs of {row['condition']} "
            f"({row['runs']} runs), a median of {n:.0f} of the {row['critic rows']} marginal samples "
            f"carries the log-mean-exp, the top score standing "
            f"{row['top score above joint, collapsed (nats)']:.1f} nats above the joint term "
            f"({row['top score above joint, other epochs (nats)']:.1f} in the other epochs)"
            + (": one exploding score makes a collapse." if round(n) <= 1 else "."))
    return " ".join(parts)
