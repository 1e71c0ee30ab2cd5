"""Redraw time of the hanging-node slider on seed 004's 15 km case (mmgt), against the
obvious peer: rebuilding the knn encoder for the new k and counting hanging nodes.

    .venv/bin/python benchmarks/hanging_slider.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from common import report

from workbench import graphs, inspection, plotting


def median_time(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    import holoviews as hv

    config = graphs.load_config("mmgt")
    ks = list(range(1, 33))
    start = time.perf_counter()
    ranks = inspection.hanging_ranks(config, ks)
    ranks_s = time.perf_counter() - start
    slider = plotting.hanging_slider(ranks.latitude, ranks.longitude, ranks.free_at, ks,
                                     dynamic=True)
    hv.render(slider[1], backend="bokeh")  # warm-up: imports, first datashader compile
    k_values = iter([4, 8, 12, 16, 20, 24, 28])
    redraw_s = median_time(lambda: hv.render(slider[next(k_values)], backend="bokeh"))

    data = graphs.build_data_nodes(config.data)
    mesh = graphs.build_hidden(config.hidden, data, first_dataset=config.data.datasets[0].name)
    src, dst = data.xyz, mesh.xyz
    k_iter = iter([4, 8, 12, 16, 20, 24, 28])

    def rebuild():
        index = graphs.knn_edges(src, dst, next(k_iter))
        return np.bincount(index[0], minlength=len(src)) == 0

    rebuild_s = median_time(rebuild)
    rows = [
        {"step": "one query for k=1..32 (nodes, mesh, ranks, regions)", "seconds": ranks_s},
        {"step": "slider redraw for a new k (filter + datashader + bokeh render)",
         "seconds": redraw_s},
        {"step": "peer: rebuild knn encoder for a new k + count (no drawing)", "seconds": rebuild_s},
    ]
    report(f"Hanging-node slider on mmgt ({data.size} data nodes, {mesh.size} hidden)", rows,
           "Goal (issue 3): a redraw under 1 s on the 15 km case.")


if __name__ == "__main__":
    main()
