"""Plots of notebook 05 (run against run across seeds): pure functions, data in, the figure
out, nothing saved. ``table`` is :func:`workbench.study.compare_across_seeds`' frame."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["seed_differences"]


def seed_differences(table: pd.DataFrame, ncols: int = 4, title: str | None = None):
    """One panel per comparison: each seed's difference A - B at each lead with its 95 %
    interval as an error bar (seeds side by side; a filled marker where the interval excludes
    0, hollow where it does not), the mean across seeds as a black line and a zero line. A
    difference is real where every seed's bar stays on one side of 0."""
    comps = list(dict.fromkeys(table[["question", "domain", "a", "b"]].itertuples(
        index=False, name=None)))
    ncols = max(1, min(ncols, len(comps)))
    nrows = max(1, math.ceil(len(comps) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.7 * ncols, 3.1 * nrows), dpi=80,
                             squeeze=False)
    leads = np.sort(table["lead_hours"].unique())
    width = 0.5 * (float(np.min(np.diff(leads))) if leads.size > 1 else 6.0)
    for ax, (question, domain, a, b) in zip(axes.flat, comps, strict=False):
        part = table[(table.question == question) & (table.domain == domain) & (table.a == a)
                     & (table.b == b)]
        seeds = sorted(part["seed"].unique())
        for i, seed in enumerate(seeds):
            rows = part[part["seed"] == seed].sort_values("lead_hours")
            x = rows["lead_hours"].to_numpy() + width * ((i + 0.5) / len(seeds) - 0.5)
            y = rows["difference"].to_numpy()
            err = np.nan_to_num(np.stack([y - rows["ci_low"].to_numpy(),
                                          rows["ci_high"].to_numpy() - y]))
            color = f"C{i}"
            ax.errorbar(x, y, yerr=err, fmt="none", ecolor=color, capsize=3, lw=1.2)
            real = rows["significant"].to_numpy()
            ax.scatter(x[real], y[real], color=color, s=22, zorder=3, label=f"seed {seed}")
            ax.scatter(x[~real], y[~real], facecolors="white", edgecolors=color, s=22, zorder=3,
                       label=None if real.any() else f"seed {seed}")
        mean = part.groupby("lead_hours")["difference"].mean()
        ax.plot(mean.index, mean.to_numpy(), color="k", lw=1, label="mean over seeds")
        ax.axhline(0, color="0.4", lw=0.8, ls="--")
        ax.set_title(f"{question} on {domain}\n{a} - {b}", fontsize=9)
        ax.set_xticks(leads)
        ax.set_xlabel("lead (h)")
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(comps):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel("skill difference A - B")
    axes.flat[0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
