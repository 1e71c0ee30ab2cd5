"""Notebook 02 (domain sampling): a sampling config's domains as a table, the shares its
batch sampler draws against the requested ones, samples to browse, and summary.json."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .errors import WorkbenchError
from .sampling import MultiDomainBatchSampler, MultiDomainDataModule
from .sampling_config import SPLITS


def domain_table(datamodule: MultiDomainDataModule) -> pd.DataFrame:
    """One row per domain: dataset, grid points, samples per split, weight, loss weight."""
    datamodule.setup()
    rows = []
    for d in datamodule.domains:
        row = {"domain": d.name, "dataset": d.domain.dataset, "graph": d.domain.graph,
               "grid_points": d.n_grid}
        row.update({f"{s}_samples": len(d.samples(s)) if s in d.splits else 0 for s in SPLITS})
        row.update({"weight": float(d.domain.weight), "loss_weight": float(d.domain.loss_weight)})
        rows.append(row)
    return pd.DataFrame(rows).set_index("domain")


def domain_sampler(datamodule: MultiDomainDataModule, n_batches: int,
                   weights: Sequence[float] | None = None) -> MultiDomainBatchSampler:
    """The training batch sampler of ``datamodule`` drawing ``n_batches`` (its seed and batch
    size), with ``weights`` (one per domain) replacing the domains' weights when given.

    With ``domain_weighting: size`` and no ``weights`` every training batch comes once and
    ``n_batches`` is ignored. Only (domain, t0) pairs are drawn: no data is read.
    """
    if n_batches < 1:
        raise WorkbenchError(f"n_batches={n_batches} must be at least 1")
    return datamodule.batch_sampler(
        "train", [float(w) for w in weights] if weights is not None else None, n_batches)


def domain_frequency(datamodule: MultiDomainDataModule, n_batches: int,
                     weights: Sequence[float] | None = None) -> pd.DataFrame:
    """Per domain: requested share of training batches, batches drawn and drawn share.

    Requested: the normalised weights, or (``domain_weighting: size``) each domain's share of
    all training batches. Drawn: over the batches of :func:`domain_sampler`.
    """
    sampler = domain_sampler(datamodule, n_batches, weights)
    names = [d.name for d in datamodule.domains]
    drawn = np.bincount([batch[0][0] for batch in sampler], minlength=len(names))
    if sampler.weights is not None:
        requested = sampler.weights
    else:
        per_domain = np.array([-(-len(s) // sampler.batch_size) for s in sampler.samples], float)
        requested = per_domain / per_domain.sum()
    table = pd.DataFrame({"requested": requested, "batches": drawn,
                          "drawn": drawn / max(int(drawn.sum()), 1)},
                         index=pd.Index(names, name="domain"))
    table["difference"] = table["drawn"] - table["requested"]
    return table


def take_samples(datamodule: MultiDomainDataModule, n: int, split: str = "train") -> list[dict]:
    """The first ``n`` samples of the ``split`` loader, in batch order, each a dict with the
    domain label, its dataset (coordinates), t0, the first input time, the variable names and
    ``x``: the normalised first input step [variable, grid] as numpy, NaN where the value was
    missing (a map shows it as missing, not as its imputed value)."""
    datamodule.setup()
    samples: list[dict] = []
    variables = list(datamodule.config.variables)
    for batch in datamodule.dataloader(split):
        domain = datamodule.domains[batch["domain_index"]]
        for i in range(batch["x"].shape[0]):
            if len(samples) >= n:
                return samples
            samples.append({
                "domain": batch["domain"], "ds": domain.ds, "t0": int(batch["t0"][i]),
                "time": domain.times[int(batch["t0"][i])],
                "variables": variables,
                "x": batch["x"][i, 0].where(batch["x_mask"][i, 0], torch.nan).numpy(),
            })
        if len(samples) >= n:
            break
    return samples


def _plain(value):
    """numpy scalars and arrays as plain Python numbers and lists (for JSON)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def share_figures(shares: pd.DataFrame) -> dict[str, float]:
    """``requested_share_<domain>`` and ``drawn_share_<domain>`` of a :func:`domain_frequency`
    table, domain by domain."""
    figures: dict[str, float] = {}
    for name, row in shares.to_dict("index").items():
        figures[f"requested_share_{name}"] = float(row["requested"])
        figures[f"drawn_share_{name}"] = float(row["drawn"])
    return figures


def notebook_summary(table: pd.DataFrame, shares: pd.DataFrame, index: Mapping,
                     counts_before: Sequence[int], counts_after: Sequence[int]) -> dict:
    """summary.json of notebook 02: requested vs drawn domain shares, tiles and bin counts."""
    key_figures: dict = share_figures(shares)
    key_figures.update({
        "max_abs_share_diff": float(shares["difference"].abs().max()),
        "tiles_total": int(index.get("tiles_total", 0)),
        "dropped": int(index.get("dropped_missing", 0)),
        "samples": int(index.get("samples", index.get("tiles_kept", 0))),
        "batches": int(shares["batches"].sum()),
    })
    records = table.reset_index().to_dict("records")
    return {
        "key_figures": key_figures,
        "bin_edges": [float(e) for e in index.get("bin_edges", [])],
        "bin_counts_before": [int(c) for c in counts_before],
        "bin_counts_after": [int(c) for c in counts_after],
        "domain_shares": {str(name): {k: _plain(v) for k, v in row.items()}
                          for name, row in shares.to_dict("index").items()},
        "domains": [{k: _plain(v) for k, v in r.items()} for r in records],
        "index": {k: _plain(v) for k, v in index.items()},
    }
