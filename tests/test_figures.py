"""Figure functions that no chapter exercises with the committed records' default parameters."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mifd import figures


def test_profile_courses_draws_one_line_per_run_styled_by_profile():
    rows = [{"profile": profile, "condition": condition, "seed": 7, "epoch": epoch,
             "Q_corr": epoch / n, "Q_str": -epoch / n}
            for profile, n in (("paper", 1000), ("book", 300))
            for condition in ("λ = 0.1", "λ = 0 (control)")
            for epoch in np.arange(0, n + 1, 25)]
    fig = figures.profile_courses(pd.DataFrame(rows), {"Q_corr": "Q_corr", "Q_str": "Q_str"})
    assert len(fig.axes) == 2
    lines = fig.axes[0].get_lines()
    assert len(lines) == 4
    by_label = {line.get_label(): line for line in lines}
    paper = by_label["paper, λ = 0.1, seed 7"]
    book = by_label["book, λ = 0.1, seed 7"]
    assert (paper.get_linestyle(), book.get_linestyle()) == ("-", "--")
    assert paper.get_xdata()[-1] == 1000 and book.get_xdata()[-1] == 300
    assert by_label["paper, λ = 0 (control), seed 7"].get_color() != paper.get_color()
    assert fig.axes[1].get_ylabel() == "Q_str"


def test_dose_response_draws_each_seed_and_the_mean_with_its_sd():
    finals = pd.DataFrame([{"lambda": lam, "seed": seed, "c_l1": c, "Q_str": lam + seed / 10 + c}
                           for c in (0.0, 1.0) for seed in (1, 2) for lam in (0.0, 0.1, 1.0)])
    fig = figures.dose_response(finals, "lambda", {"Q_str": "Q_str"}, "λ", hue="c_l1", linthresh=0.01)
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog" and ax.get_xlabel() == "λ"
    thin = [line for line in ax.get_lines() if line.get_linewidth() < 1]
    assert len(thin) == 4                       # two seeds × two c_L1 values
    means = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert np.allclose([line.get_ydata() for line in means], [[0.15, 0.25, 1.15], [1.15, 1.25, 2.15]])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["c_l1 = 0: each seed thin, mean ± sd of 2 thick",
                      "c_l1 = 1: each seed thin, mean ± sd of 2 thick"]
    assert ax.get_xlim() == (-0.005, 1.5)       # from just left of the control to past the largest
    # controls of more seeds than the other settings: the legend gives the range
    more = pd.concat([finals, finals[finals["lambda"] == 0.0].assign(seed=3)])
    legend = [t.get_text() for t in figures.dose_response(more, "lambda", {"Q_str": "Q_str"}, "λ",
                                                          linthresh=0.01).legends[0].get_texts()]
    assert legend == ["each seed thin, mean ± sd of 4–8 thick"]


def test_recurrent_weights_whiten_the_near_zero_weights_on_one_scale():
    rng = np.random.default_rng(0)
    panels = {"dense": rng.normal(0, 0.2, (6, 6)), "sparse": np.where(np.eye(6) > 0, 0.5, 0.001)}
    fig = figures.recurrent_weights(panels, near_zero=0.01)
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in shown] == ["dense", "sparse"]
    images = [ax.get_images()[0] for ax in shown]
    assert images[0].get_clim() == images[1].get_clim()          # one colour scale
    sparse = images[1].get_array()
    assert sparse.mask.sum() == 30 and not sparse.mask.diagonal().any()  # only the small ones
    assert "below 0.01" in fig.axes[-1].get_ylabel()              # the colour bar says so


def test_learning_curves_take_an_abscissa_per_panel():
    curves = {"Q_corr": {"A": np.zeros((2, 5))}, "accuracy": {"A": np.ones((2, 3))}}
    fig = figures.learning_curves(curves, {"Q_corr": "Q_corr", "accuracy": "accuracy"},
                                  x={"Q_corr": np.arange(0, 101, 25)})
    first, second = (ax.get_lines()[-1].get_xdata() for ax in fig.axes[:2])
    assert list(first) == [0, 25, 50, 75, 100] and list(second) == [1, 2, 3]


def test_importing_figures_changes_no_setting_and_book_style_sets_the_page_look():
    import subprocess
    import sys

    script = ("import matplotlib as mpl, pandas as pd; before = mpl.rcParams['font.size']; "
              "from mifd import figures; assert mpl.rcParams['font.size'] == before; "
              "assert pd.get_option('display.max_colwidth') == 50; figures.book_style(); "
              "assert mpl.rcParams['font.size'] == 9 and pd.get_option('display.max_colwidth') is None")
    subprocess.run([sys.executable, "-c", script], check=True)


def test_specialisation_scatter_titles_each_panel_with_the_r_it_is_given():
    d = np.array([1.0, -1.0, 0.5, -0.5])
    fig = figures.specialisation_scatter(d, {"d_out": d, "d_in": -d}, [1.0, -1.0],
                                         np.array([0, 1, 0, 1]), "a run")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["Pearson r = 1.00", "Pearson r = -1.00"]
