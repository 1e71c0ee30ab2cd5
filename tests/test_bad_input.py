"""Bad input through the CLI: one line ``error: ...`` naming the problem, exit code 2, no
traceback and nothing half-written, across catalog, graphs, pipelines, training, evaluation,
batch plans and notebook parameters.

Each case writes its files into a fresh folder (the working directory of the command), runs
``workbench ...`` in-process, and checks the exit code, the single stderr line, the words it
must hold and the paths that must not exist afterwards.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
from missing_files import SST_NAN_IN_TRAIN, text_zarr, text_zarr_case

from workbench import cli

GEN = """\
name: {name}
domain: test
source: {{kind: generator, grid: regular_latlon, resolution_deg: 10, start: "2020-01-01",
          end: "2020-01-02T18:00"}}
variables: [t2m]
time_step: 6h
grid: {{kind: regular_latlon, resolution: 10 deg}}
"""

GRAPH = """\
name: g
data: {datasets: [conus, global]}
hidden: {kind: icosahedral, level: 3}
encoder: {kind: knn, k: 3}
decoder: {kind: knn, k: 3}
"""

TRAIN = "name: t\nsampling: demo\n"

SAMPLING = """\
name: s
domains: [{name: g, dataset: global}]
variables: [t2m]
splits: {train: ["2020-01-01", "2020-01-31"], val: ["2020-02-01", "2020-02-10"]}
"""

PIPELINE = "steps:\n  - open: {dataset: conus}\n"

PLAN = "name: p\nsteps:\n  - name: graph\n    notebook: 01_graph_inspection\n"

PAYLOAD = base64.b64encode(b'"+str(__import__("os").system("touch MARK"))+"').decode()


RECIPE = """nodes:
  data: {node_builder: {_target_: anemoi.graphs.nodes.TriNodes, resolution: 2}}
  hidden: {node_builder: {_target_: anemoi.graphs.nodes.TriNodes, resolution: 1}}
edges:
  - source_name: data
    target_name: hidden
    edge_builders: [{_target_: anemoi.graphs.edges.KNNEdges, num_nearest_neighbours: 3}]
"""

@dataclass
class Case:
    id: str
    argv: list[str]  # {d} is the case's folder
    words: list[str]  # the error line holds each
    files: dict[str, str] = field(default_factory=dict)
    absent: list[str] = field(default_factory=lambda: ["MARK"])  # paths under {d}


def catalog(body: str, name: str = "bad") -> dict[str, str]:
    return {f"cat/{name}.yaml": body}


def time_store(days: str, calendar: str = "standard", step: str = "1D") -> dict[str, str]:
    """The text zarr of :func:`missing_files.text_zarr` (sst all missing) with its 14 times
    replaced by ``days``: one ASCII byte a time, days since 2000-01-01 in ``calendar``
    (``"0"`` is day 48); and its catalog entry ``bad`` of ``time_step: step``."""
    files = text_zarr("s.zarr", None)
    files["s.zarr/time/0"] = days
    files["s.zarr/time/.zattrs"] = json.dumps({"_ARRAY_DIMENSIONS": ["time"], "calendar": calendar,
                                               "units": "days since 2000-01-01"})
    return {**files, **catalog("name: bad\ndomain: test\nsource: {kind: zarr, path: ../s.zarr}"
                               f"\nvariables: [sst]\ntime_step: {step}\n"
                               "grid: {kind: test, resolution: x}\n")}


FORECAST_CKPT = ["forecast", "{d}/m.ckpt", "--domain", "conus", "--start", "2020-03-20",
                 "--steps", "2", "--out", "{d}/f.zarr"]

CASES = [
    # ---------------------------------------------------------------- catalog
    Case("catalog-unknown-key", ["data", "show", "bad", "--catalog", "{d}/cat"],
         ["bad.yaml", "unknown key 'colour'", "allowed: name, domain"],
         catalog(GEN.format(name="bad") + "colour: red\n")),
    Case("catalog-missing-key", ["data", "list", "--catalog", "{d}/cat"],
         ["bad.yaml", "missing required key `time_step`"],
         catalog(GEN.format(name="bad").replace("time_step: 6h\n", ""))),
    Case("catalog-source-kind", ["data", "list", "--catalog", "{d}/cat"],
         ["source kind 'ftp' is not one of"],
         catalog(GEN.format(name="bad").replace("kind: generator", "kind: ftp"))),
    Case("catalog-path-and-url", ["data", "list", "--catalog", "{d}/cat"],
         ["exactly one of `path` or `url`"],
         catalog("name: bad\ndomain: x\nsource: {kind: zarr, path: a.zarr, url: 'gs://b'}\n"
                 "variables: [t2m]\ntime_step: 6h\ngrid: {kind: regular_latlon}\n")),
    Case("catalog-generator-no-start", ["data", "list", "--catalog", "{d}/cat"],
         ["(source)", "missing required key `start`"],
         catalog(GEN.format(name="bad").replace('start: "2020-01-01",', ""))),
    Case("catalog-malformed-yaml", ["data", "list", "--catalog", "{d}/cat"],
         ["bad.yaml:3", "not valid YAML", "flow sequence at line 2"],
         catalog("name: bad\ndomain: [x\nsource: {}\n")),
    Case("catalog-variables-number", ["data", "list", "--catalog", "{d}/cat"],
         ["variables: should be a valid dictionary", "got 3"],
         catalog(GEN.format(name="bad").replace("variables: [t2m]", "variables: 3"))),
    Case("catalog-resolution-text", ["data", "list", "--catalog", "{d}/cat"],
         ["resolution_deg: should be a valid number", "'0.25 deg'"],
         catalog(GEN.format(name="bad").replace("resolution_deg: 10", "resolution_deg: 0.25 deg"))),
    Case("catalog-coarsen-zero", ["data", "list", "--catalog", "{d}/cat"],
         ["coarsen: should be greater than or equal to 1, got 0"],
         catalog(GEN.format(name="bad").replace("grid: regular_latlon, resolution_deg: 10",
                                                "grid: hrrr, coarsen: 0"))),
    Case("catalog-folder-missing", ["data", "list", "--catalog", "{d}/nowhere"],
         ["catalog folder", "nowhere does not exist"]),
    Case("catalog-unknown-dataset", ["data", "show", "atlantis"],
         ["unknown dataset 'atlantis'"]),
    Case("catalog-cutout-global-first", ["data", "show", "bad", "--catalog", "{d}/cat"],
         ["'global' covers the globe but is listed before 'conus'", "global dataset last"],
         catalog("name: bad\ndomain: stretched\nsource: {kind: cutout, datasets: [global, conus]}"
                 "\nvariables: [t2m]\ntime_step: 6h\ngrid: {kind: cutout}\n")),
    Case("catalog-cutout-one-dataset", ["data", "list", "--catalog", "{d}/cat"],
         ["a cutout source needs `datasets`: two or more"],
         catalog("name: bad\ndomain: s\nsource: {kind: cutout, datasets: [conus]}\n"
                 "variables: [t2m]\ntime_step: 6h\ngrid: {kind: cutout}\n")),
    Case("stats-bad-start", ["data", "stats", "global", "--start", "yesterday-ish"],
         ["--start", "yesterday-ish"]),
    # ---------------------------------------------------------------- graphs
    Case("graph-k-text", ["graph", "build", "{d}/g.yaml", "--out", "{d}/g.pt"],
         ["g.yaml: encoder.k: should be a valid integer", "'three'"],
         {"g.yaml": GRAPH.replace("encoder: {kind: knn, k: 3}", "encoder: {kind: knn, k: three}")},
         ["g.pt"]),
    Case("graph-k-zero", ["graph", "build", "{d}/g.yaml", "--out", "{d}/g.pt"],
         ["decoder.k: should be greater than or equal to 1, got 0"],
         {"g.yaml": GRAPH.replace("decoder: {kind: knn, k: 3}", "decoder: {kind: knn, k: 0}")},
         ["g.pt"]),
    Case("graph-unknown-key", ["graph", "build", "{d}/g.yaml", "--out", "{d}/g.pt"],
         ["unknown key 'kk'", "allowed: kind, k, radius_km, cutoff_factor"],
         {"g.yaml": GRAPH.replace("{kind: knn, k: 3}\ndecoder", "{kind: knn, kk: 3}\ndecoder")},
         ["g.pt"]),
    Case("graph-hidden-kind", ["graph", "build", "{d}/g.yaml", "--out", "{d}/g.pt"],
         ["hidden.kind 'hexagonal' is not one of"],
         {"g.yaml": GRAPH.replace("kind: icosahedral", "kind: hexagonal")}, ["g.pt"]),
    Case("graph-level-range", ["graph", "build", "{d}/g.yaml", "--out", "{d}/g.pt"],
         ["hidden.level: should be less than or equal to 9, got 12"],
         {"g.yaml": GRAPH.replace("level: 3", "level: 12")}, ["g.pt"]),
    Case("graph-missing-decoder", ["graph", "build", "{d}/g.yaml", "--out", "{d}/g.pt"],
         ["missing required key `decoder`"],
         {"g.yaml": GRAPH.replace("decoder: {kind: knn, k: 3}\n", "")}, ["g.pt"]),
    Case("graph-no-datasets", ["graph", "build", "{d}/g.yaml", "--out", "{d}/g.pt"],
         ["data.datasets lists no dataset"],
         {"g.yaml": GRAPH.replace("[conus, global]", "[]")}, ["g.pt"]),
    Case("graph-negative-trim", ["graph", "build", "{d}/g.yaml", "--out", "{d}/g.pt"],
         ["trim_edge", "greater than or equal to 0", "-1"],
         {"g.yaml": GRAPH.replace("[conus, global]", "[{name: conus, trim_edge: -1}, global]")},
         ["g.pt"]),
    Case("graph-cutoff-both", ["graph", "build", "{d}/g.yaml", "--out", "{d}/g.pt"],
         ["cutoff needs exactly one of radius_km or cutoff_factor"],
         {"g.yaml": GRAPH.replace("encoder: {kind: knn, k: 3}",
                                  "encoder: {kind: cutoff, radius_km: 100, cutoff_factor: 0.6}")},
         ["g.pt"]),
    Case("graph-malformed-yaml", ["graph", "build", "{d}/g.yaml", "--out", "{d}/g.pt"],
         ["g.yaml:3", "not valid YAML"], {"g.yaml": "name: g\ndata: {datasets: [conus\n"},
         ["g.pt"]),
    Case("graph-global-first", ["graph", "build", "{d}/g.yaml", "--out", "{d}/g.pt"],
         ["'global' covers the globe but is listed before 'conus'"],
         {"g.yaml": GRAPH.replace("[conus, global]", "[global, conus]")}, ["g.pt"]),
    Case("graph-config-missing", ["graph", "build", "{d}/nope.yaml", "--out", "{d}/g.pt"],
         ["graphs config", "nope.yaml not found"], {}, ["g.pt"]),
    Case("graph-inspect-not-a-graph", ["graph", "inspect", "{d}/junk.pt"],
         ["junk.pt"], {"junk.pt": "this is not a torch file"}),
    Case("graph-sweep-k-text", ["graph", "sweep", "demo-conus", "--k", "few"],
         ["--k", "few"]),
    Case("graph-sweep-band-negative", ["graph", "sweep", "demo-conus", "--band-cells", "-1"],
         ["--band-cells", "whole number >= 0"]),
    Case("graph-sweep-trim-text", ["graph", "sweep", "demo-conus", "--trim", "a,b"],
         ["--trim", "whole numbers >= 0 separated by commas"]),
    # ---------------------------------------------------------------- pipelines
    Case("pipeline-unknown-step", ["data", "index", "{d}/p.yaml"],
         ["unknown step 'shuffle'"], {"p.yaml": PIPELINE + "  - shuffle: {}\n"}),
    Case("pipeline-tile-size", ["data", "index", "{d}/p.yaml"],
         ["(tile)", "tile_size"], {"p.yaml": PIPELINE + "  - tile: {tile_size: [16]}\n"}),
    Case("pipeline-bins-zero", ["data", "index", "{d}/p.yaml"],
         ["(bin_norm)", "n_bins: should be greater than or equal to 1, got 0"],
         {"p.yaml": PIPELINE + "  - tile: {tile_size: [16, 16]}\n  - bin_norm: {n_bins: 0}\n"}),
    Case("pipeline-fraction", ["data", "index", "{d}/p.yaml"],
         ["max_missing_fraction: should be less than or equal to 1, got 2"],
         {"p.yaml": PIPELINE + "  - tile: {tile_size: [16, 16], max_missing_fraction: 2}\n"}),
    # ---------------------------------------------------------------- training
    Case("train-max-steps-text", ["train", "{d}/t.yaml"],
         ["t.yaml: max_steps: should be a valid integer", "'ten'"],
         {"t.yaml": TRAIN + "max_steps: ten\n"}, ["runs"]),
    Case("train-hidden-text", ["train", "{d}/t.yaml"],
         ["t.yaml (model): hidden_dim: should be a valid integer", "'big'"],
         {"t.yaml": TRAIN + "model: {hidden_dim: big}\n"}, ["runs"]),
    Case("train-negative-lr", ["train", "{d}/t.yaml"],
         ["optimizer.lr: should be greater than or equal to 0, got -0.001"],
         {"t.yaml": TRAIN + "optimizer: {lr: -1.0e-3}\n"}, ["runs"]),
    Case("train-negative-warmup", ["train", "{d}/t.yaml"],
         ["optimizer.warmup_steps: should be greater than or equal to 0, got -5"],
         {"t.yaml": TRAIN + "optimizer: {warmup_steps: -5}\n"}, ["runs"]),
    Case("train-max-steps-zero-yaml", ["train", "{d}/t.yaml"],
         ["max_steps: should be greater than or equal to 1, got 0"],
         {"t.yaml": TRAIN + "max_steps: 0\n"}, ["runs"]),
    Case("train-domain-without-dataset", ["train", "{d}/t.yaml"],
         ["(sampling): domains[0]: missing required key `dataset`"],
         {"t.yaml": "name: t\nsampling: {preset: demo, domains: [{name: g}]}\n"}, ["runs"]),
    Case("train-weight-text", ["train", "{d}/t.yaml"],
         ["domains[0].weight: should be a valid number", "'heavy'"],
         {"t.yaml": "name: t\nsampling: {preset: demo, domains: [{name: g, dataset: global, "
                    "weight: heavy}]}\n"}, ["runs"]),
    Case("train-overlapping-splits", ["train", "{d}/t.yaml"],
         ["splits train", "and val", "overlap"],
         {"t.yaml": "name: t\nsampling: {preset: demo, splits: {train: [2020-01-01, 2020-02-29],"
                    " val: [2020-02-15, 2020-03-15]}}\n"}, ["runs"]),
    Case("train-split-not-dates", ["train", "{d}/t.yaml"],
         ["split test [soon, later] is not two dates"],
         {"t.yaml": "name: t\nsampling: {preset: demo, splits: {train: [2020-01-01, 2020-02-29],"
                    " test: [soon, later]}}\n"}, ["runs"]),
    Case("train-unknown-task", ["train", "{d}/t.yaml"], ["task 'denoise'"],
         {"t.yaml": TRAIN + "task: denoise\n"}, ["runs"]),
    Case("train-batch-zero", ["train", "{d}/t.yaml"],
         ["batch_size: should be greater than or equal to 1, got 0"],
         {"t.yaml": "name: t\nsampling: {preset: demo, batch_size: 0}\n"}, ["runs"]),
    Case("train-members-zero", ["train", "{d}/t.yaml"],
         ["members: should be greater than or equal to 1, got 0"],
         {"t.yaml": TRAIN + "members: 0\n"}, ["runs"]),
    Case("train-sampling-preset", ["train", "{d}/t.yaml"],
         ["sampling config nothing not found"], {"t.yaml": "name: t\nsampling: nothing\n"},
         ["runs"]),
    Case("train-malformed-yaml", ["train", "{d}/t.yaml"], ["t.yaml:3", "not valid YAML", "flow mapping at line 2"],
         {"t.yaml": "name: t\nsampling: {preset: demo\n"}, ["runs"]),
    Case("train-unknown-key", ["train", "{d}/t.yaml"], ["unknown key 'optimiser'"],
         {"t.yaml": TRAIN + "optimiser: {}\n"}, ["runs"]),
    Case("train-max-steps-cli", ["train", "demo", "--max-steps", "0"],
         ["--max-steps", "whole number >= 1, got '0'"], {}, ["runs"]),
    Case("train-devices-cli", ["train", "demo", "--devices", "abc"],
         ["--devices", "whole number >= 1 or 'auto'"], {}, ["runs"]),
    Case("train-accelerator-missing", ["train", "demo", "--accelerator", "gpu", "--max-steps", "1"],
         ["Lightning cannot train with accelerator='gpu'", "--accelerator cpu"], {}, ["runs"]),
    Case("train-strategy-unknown", ["train", "demo", "--strategy", "nonsense", "--max-steps", "1"],
         ["strategy='nonsense'", "invalid strategy name"], {}, ["runs"]),
    Case("train-resume-not-a-run", ["train", "--resume", "{d}"],
         ["is not a training run dir"]),
    Case("train-no-config", ["train"], ["name a config"]),
    Case("train-normalisation-output", ["train", "{d}/t.yaml"],
         ["unknown normalisation.output 'delta'", "use one of state, tendency"],
         {"t.yaml": TRAIN + "normalisation: {output: delta}\n"}, ["runs"]),
    Case("train-normalisation-statistics", ["train", "{d}/t.yaml"],
         ["unknown normalisation.statistics 'pooled'", "use one of domain, shared"],
         {"t.yaml": TRAIN + "normalisation: {statistics: pooled}\n"}, ["runs"]),
    Case("train-tendency-bert", ["train", "{d}/t.yaml"],
         ["output tendency applies to forecast training, not bert", "output: state"],
         {"t.yaml": TRAIN + "task: bert\nnormalisation: {output: tendency}\n"}, ["runs"]),
    # ---------------------------------------------------------------- evaluation
    Case("evaluate-steps-zero", ["evaluate", "{d}", "--domain", "conus", "--steps", "0"],
         ["--steps", "whole number >= 1"]),
    Case("evaluate-members-zero", ["evaluate", "{d}", "--domain", "conus", "--members", "0"],
         ["--members", "whole number >= 1"]),
    Case("evaluate-not-a-run", ["evaluate", "{d}", "--domain", "conus"],
         ["is not a training run dir"]),
    Case("evaluate-normalise-unknown", ["evaluate", "{d}", "--domain", "europe",
                                        "--normalise", "pooled"],
         ["--normalise", "invalid choice: 'pooled'", "training", "own"]),
    # ---------------------------------------------------------------- plans
    Case("plan-unknown-notebook", ["batch", "{d}/p.yaml", "--dry-run"], ["unknown notebook"],
         {"p.yaml": PLAN.replace("01_graph_inspection", "07_magic")}),
    Case("plan-unknown-parameter", ["batch", "{d}/p.yaml", "--dry-run"],
         ["unknown parameter(s) kk"], {"p.yaml": PLAN + "    params: {kk: 3}\n"}),
    Case("plan-cycle", ["batch", "{d}/p.yaml", "--dry-run"],
         ["dependency cycle"],
         {"p.yaml": PLAN + "    needs: [b]\n  - name: b\n    notebook: 00_catalog_tour\n"
                           "    needs: [graph]\n"}),
    Case("plan-unclosed-placeholder", ["batch", "{d}/p.yaml", "--dry-run"],
         ["is not closed"],
         {"p.yaml": PLAN + "  - name: b\n    notebook: 04_skill_maps\n    needs: [graph]\n"
                           "    params: {run_dir: '${graph.run_dir'}\n"}),
    Case("plan-slurm-mem-newline", ["batch", "{d}/p.yaml", "--dry-run"],
         ["(slurm)", "mem: should be a SLURM memory size"],
         {"p.yaml": 'name: p\nslurm: {mem: "32G\\ntouch MARK"}\n' + PLAN.split("\n", 1)[1]}),
    Case("plan-slurm-time", ["batch", "{d}/p.yaml", "--dry-run"],
         ["time: should be a SLURM time"],
         {"p.yaml": "name: p\nslurm: {time: 'soon; touch MARK'}\n" + PLAN.split("\n", 1)[1]}),
    Case("plan-slurm-extra-string", ["batch", "{d}/p.yaml", "--dry-run"],
         ["extra must be a list of single sbatch options"],
         {"p.yaml": "name: p\nslurm: {extra: --qos=high}\n" + PLAN.split("\n", 1)[1]}),
    Case("plan-slurm-extra-two-options", ["batch", "{d}/p.yaml", "--dry-run"],
         ["extra[0]: should be one sbatch option"],
         {"p.yaml": "name: p\nslurm: {extra: ['--qos=high --exclusive']}\n"
                    + PLAN.split("\n", 1)[1]}),
    Case("plan-slurm-partition-space", ["batch", "{d}/p.yaml", "--dry-run"],
         ["partition: should be a SLURM name"],
         {"p.yaml": "name: p\nslurm: {partition: 'gpu x'}\n" + PLAN.split("\n", 1)[1]}),
    Case("plan-slurm-gpus-text", ["batch", "{d}/p.yaml", "--dry-run"],
         ["gpus_per_node: should be a valid integer"],
         {"p.yaml": PLAN + "    slurm: {gpus_per_node: four}\n"}),
    Case("plan-grid-type", ["batch", "{d}/p.yaml", "--dry-run"],
         ["parameter band_cells must be a whole number", "'ten'"],
         {"p.yaml": PLAN + "    grid: {band_cells: [4, ten]}\n"}),
    Case("plan-step-without-notebook", ["batch", "{d}/p.yaml", "--dry-run"],
         ["step 2 needs `name` and `notebook`"], {"p.yaml": PLAN + "  - name: b\n"}),
    Case("plan-binary-tag", ["batch", "{d}/p.yaml", "--dry-run"],
         ["p.yaml:5", "!!binary is not allowed"],
         {"p.yaml": PLAN + f"    grid: {{trims: [!!binary {PAYLOAD}]}}\n"}),
    Case("plan-max-parallel-zero", ["batch", "demo", "--max-parallel", "0"],
         ["--max-parallel", "whole number >= 1"]),
    # ---------------------------------------------------------------- notebook parameters
    Case("param-int-text", ["run", "00_catalog_tour", "-p", "time_index", "abc",
                            "--runs-dir", "{d}/runs"],
         ["time_index must be a whole number", "'abc'"], {}, ["runs"]),
    Case("param-list-bare", ["run", "04_skill_maps", "-p", "domains", "europe",
                             "--runs-dir", "{d}/runs"],
         ["domains must be a list", "[europe]"], {}, ["runs"]),
    Case("param-binary", ["run", "01_graph_inspection", "-p", "trims", f"!!binary {PAYLOAD}",
                          "--runs-dir", "{d}/runs"],
         ["!!binary is not allowed"], {}, ["runs", "MARK"]),
    Case("param-file-malformed", ["run", "00_catalog_tour", "-f", "{d}/p.yaml",
                                  "--runs-dir", "{d}/runs"],
         ["p.yaml:2", "not valid YAML", "at line 1"], {"p.yaml": "variable: [t2m\n"}, ["runs"]),
    Case("param-file-missing", ["run", "00_catalog_tour", "-f", "{d}/none.yaml",
                                "--runs-dir", "{d}/runs"],
         ["parameter file", "none.yaml does not exist"], {}, ["runs"]),
    Case("param-unknown", ["run", "00_catalog_tour", "-p", "varaible", "z_500",
                           "--runs-dir", "{d}/runs"],
         ["unknown parameter(s) varaible"], {}, ["runs"]),
    Case("param-nan", ["run", "01_graph_inspection", "-p", "near_km", ".nan",
                       "--runs-dir", "{d}/runs"],
         ["near_km", "not a finite number"], {}, ["runs"]),
    Case("train-unknown-forcing", ["train", "{d}/t.yaml"],
         ["forcings ['moonlight'] are neither variables of dataset 'global'",
          "nor computed forcings (cos_latitude", "cos_solar_zenith_angle"],
         {"t.yaml": "name: t\nsampling: {preset: demo, forcings: [insolation, moonlight]}\n"},
         ["runs"]),
    # ---------------------------------------------------------------- GRIB sources
    Case("catalog-grib-not-grib", ["data", "show", "bad", "--catalog", "{d}/cat"],
         ["bad.grib2 is not a GRIB file (no GRIB message in it)"],
         {**catalog("name: bad\ndomain: test\nsource: {kind: grib, path: ../bad.grib2}\n"
                    "variables: [t2m]\ntime_step: 6h\ngrid: {kind: test, resolution: x}\n"),
          "bad.grib2": "CDF\x01 a netCDF file renamed\n"}),
    Case("catalog-grib-no-match", ["data", "show", "bad", "--catalog", "{d}/cat"],
         ["no file matches", "none/gfs.*.grib2", "fix `source.path`"],
         catalog("name: bad\ndomain: test\nsource: {kind: grib, path: ../none/gfs.*.grib2}\n"
                 "variables: [t2m]\ntime_step: 6h\ngrid: {kind: test, resolution: x}\n")),
    Case("catalog-grib-missing-file", ["data", "show", "bad", "--catalog", "{d}/cat"],
         ["grib source", "gone.grib2 does not exist"],
         catalog("name: bad\ndomain: test\nsource: {kind: grib, path: [../gone.grib2]}\n"
                 "variables: [t2m]\ntime_step: 6h\ngrid: {kind: test, resolution: x}\n")),
    Case("catalog-grib-step", ["data", "list", "--catalog", "{d}/cat"],
         ["bad.yaml: source step 'soon' is not a lead time such as 6h"],
         catalog("name: bad\ndomain: test\nsource: {kind: grib, path: x.grib2, step: soon}\n"
                 "variables: [t2m]\ntime_step: 6h\ngrid: {kind: test, resolution: x}\n")),
    Case("catalog-grib-path-list-for-zarr", ["data", "list", "--catalog", "{d}/cat"],
         ["a zarr source reads one `path`; only grib sources take a list"],
         catalog("name: bad\ndomain: test\nsource: {kind: zarr, path: [a.zarr, b.zarr]}\n"
                 "variables: [t2m]\ntime_step: 6h\ngrid: {kind: test, resolution: x}\n")),
    # ---------------------------------------------------------------- --catalog everywhere
    Case("catalog-folder-missing-graph-build",
         ["graph", "build", "{d}/g.yaml", "--out", "{d}/g.pt", "--catalog", "{d}/nowhere"],
         ["catalog folder", "nowhere does not exist", "--catalog"], {"g.yaml": GRAPH}, ["g.pt"]),
    Case("catalog-folder-missing-graph-sweep",
         ["graph", "sweep", "{d}/g.yaml", "--catalog", "{d}/nowhere"],
         ["catalog folder", "nowhere does not exist"], {"g.yaml": GRAPH}),
    Case("catalog-folder-missing-train", ["train", "{d}/t.yaml", "--catalog", "{d}/nowhere"],
         ["catalog folder", "nowhere does not exist"], {"t.yaml": TRAIN}, ["runs"]),
    Case("catalog-folder-missing-evaluate",
         ["evaluate", "{d}/run", "--domain", "global", "--catalog", "{d}/nowhere"],
         ["catalog folder", "nowhere does not exist"], {}, ["run/forecasts"]),
    Case("catalog-folder-missing-index", ["data", "index", "{d}/p.yaml", "--catalog", "{d}/no"],
         ["catalog folder", "no does not exist"], {"p.yaml": PIPELINE}),
    Case("catalog-folder-missing-run",
         ["run", "00_catalog_tour", "--catalog", "{d}/nowhere", "--runs-dir", "{d}/runs"],
         ["catalog folder", "nowhere does not exist"], {}, ["runs"]),
    Case("catalog-folder-missing-batch",
         ["batch", "{d}/p.yaml", "--catalog", "{d}/nowhere", "--runs-dir", "{d}/runs"],
         ["catalog folder", "nowhere does not exist"], {"p.yaml": PLAN}, ["runs"]),
    Case("catalog-folder-a-file", ["data", "list", "--catalog", "{d}/p.yaml"],
         ["catalog folder", "p.yaml is a file, not a folder"], {"p.yaml": PLAN}),
    Case("param-catalog-folder-missing",
         ["run", "00_catalog_tour", "-p", "catalog", "[{d}/nowhere]", "--runs-dir", "{d}/runs"],
         ["catalog folder", "nowhere does not exist", "`catalog` parameter"], {}, ["runs"]),
    Case("param-catalog-not-paths",
         ["run", "01_graph_inspection", "-p", "catalog", "[1, 2]", "--runs-dir", "{d}/runs"],
         ["parameter catalog takes folder paths", "[1, 2]"], {}, ["runs"]),
    # ---------------------------------------------------------------- calendars, time steps
    Case("catalog-time-gap", ["data", "show", "bad", "--catalog", "{d}/cat"],
         ["dataset 'bad': times are not evenly spaced: 2000-02-22T00:00:00 (index 3)",
          "48h after 2000-02-20T00:00:00"], time_store("012456789:;<=>")),
    Case("catalog-time-duplicate", ["data", "show", "bad", "--catalog", "{d}/cat"],
         ["dataset 'bad': time 2000-02-21T00:00:00 appears twice", "drop_duplicates"],
         time_store("0123345678:;<=")),
    Case("catalog-time-decreasing", ["data", "stats", "bad", "--catalog", "{d}/cat"],
         ["dataset 'bad': times are not strictly increasing at index 2", "sortby"],
         time_store("0213456789:;<=")),
    Case("catalog-time-step-mismatch", ["data", "show", "bad", "--catalog", "{d}/cat"],
         ["dataset 'bad': its times are 24h apart but", "bad.yaml says time_step: 6h"],
         time_store("0123456789:;<=", step="6h")),
    Case("catalog-time-step-not-a-step", ["data", "list", "--catalog", "{d}/cat"],
         ["bad.yaml: time_step: should be a time step such as 6h", "'often'"],
         catalog(GEN.format(name="bad").replace("time_step: 6h", "time_step: often"))),
    Case("catalog-calendar-unknown", ["data", "show", "bad", "--catalog", "{d}/cat"],
         ["calendar 'mars_sol' cannot be converted", "360_day, noleap", "`calendar` attribute"],
         time_store("0123456789:;<=", "mars_sol")),
    Case("stats-date-not-in-360-day", ["data", "stats", "bad", "--catalog", "{d}/cat",
                                       "--start", "2000-02-31"],
         ["--start 2000-02-31", "'2000-02-31' is not a date of the 360_day calendar"],
         time_store("0123456789:;<=", "360_day")),
    Case("stats-date-not-in-standard", ["data", "stats", "global", "--end", "2020-02-30"],
         ["--end 2020-02-30", "is not a date of the standard calendar"]),
    Case("train-time-step-not-dividing", ["train", "{d}/t.yaml"],
         ["domain 'global': its time step 6h does not divide", "time_step 4h"],
         {"t.yaml": "name: t\nsampling: {preset: demo, time_step: 4h}\n"}, ["runs"]),
    Case("train-time-step-not-a-step", ["train", "{d}/t.yaml"],
         ["time_step: should be a time step such as 6h", "'6 parsecs'"],
         {"t.yaml": "name: t\nsampling: {preset: demo, time_step: 6 parsecs}\n"}, ["runs"]),
    Case("train-split-not-in-calendar", ["train", "{d}/t.yaml"],
         ["domain 'global': split test: '2020-04-31' is not a date of the standard calendar"],
         {"t.yaml": "name: t\nsampling: {preset: demo, splits: {train: [2020-01-01, 2020-02-29],"
                    " test: [2020-03-16, 2020-04-31]}}\n"}, ["runs"]),
    # ---------------------------------------------------------------- missing values
    Case("train-variable-all-nan-in-train-split",
         ["train", "{d}/t.yaml", "--catalog", "{d}/cat"],
         ["domain 'sea'", "sst is NaN at every point of the train split",
          "2020-01-03T00:00:00 .. 2020-01-04T18:00:00", "move the split"],
         text_zarr_case(SST_NAN_IN_TRAIN), ["runs"]),
    Case("train-mask-leaves-no-valid-point", ["train", "{d}/t.yaml", "--catalog", "{d}/cat"],
         ["domain 'sea'", "sst has no valid point", "missing-value mask leaves nothing"],
         text_zarr_case(None), ["runs"]),
    Case("train-imputer-unknown-kind", ["train", "{d}/t.yaml"],
         ["imputer.variables.t2m: unknown kind 'median'", "mean, constant, nearest_time"],
         {"t.yaml": "name: t\nsampling: {preset: demo, imputer: {variables: {t2m: median}}}\n"},
         ["runs"]),
    Case("train-imputer-constant-without-value", ["train", "{d}/t.yaml"],
         ["imputer.default: kind constant needs a value in physical units"],
         {"t.yaml": "name: t\nsampling: {preset: demo, imputer: {default: constant}}\n"},
         ["runs"]),
    Case("train-imputer-channel-unknown", ["train", "{d}/t.yaml"],
         ["imputer.missing_channel: ['sst'] are not among the config's variables"],
         {"t.yaml": "name: t\nsampling: {preset: demo, imputer: {missing_channel: [sst]}}\n"},
         ["runs"]),
    # ---------------------------------------------------------------- plan parameters
    Case("plan-param-required", ["batch", "byod", "--runs-dir", "{d}/runs"],
         ["byod.yaml: plan parameter dataset has no default; give it with -p dataset VALUE"],
         absent=["runs"]),
    Case("plan-param-unknown", ["batch", "byod", "-p", "datset", "era5", "--dry-run"],
         ["unknown plan parameter(s) datset", "parameters: dataset, variables, catalog"]),
    Case("plan-param-type", ["batch", "byod", "-p", "dataset", "era5", "-p", "variables", "[t2m]",
                             "-p", "max_steps", "many", "--dry-run"],
         ["plan parameter max_steps must be a whole number (declared int), got 'many'"]),
    Case("plan-param-catalog-text", ["batch", "byod", "-p", "dataset", "era5", "-p", "variables",
                                     "[t2m]", "-p", "catalog", "{d}", "--dry-run"],
         ["plan parameter catalog must be a list", "for a list write ["]),
    Case("plan-param-catalog-missing", ["batch", "byod", "-p", "dataset", "era5", "-p",
                                        "variables", "[t2m]", "-p", "catalog", "[{d}/nowhere]",
                                        "--runs-dir", "{d}/runs"],
         ["catalog folder", "nowhere does not exist"], absent=["runs"]),
    Case("plan-param-variables-text", ["batch", "byod", "-p", "dataset", "era5", "-p",
                                       "variables", "t2m", "--dry-run"],
         ["${plan.variables.0}: no item '0' in \"t2m\"; for a list write [t2m]"]),
    Case("plan-param-undeclared", ["batch", "{d}/p.yaml", "--dry-run"],
         ["${plan.dataset} reads no plan parameter; declare dataset under `params`"],
         {"p.yaml": PLAN.replace("01_graph_inspection\n",
                                 "01_graph_inspection\n    params: {config: '${plan.dataset}'}\n")}),
    Case("plan-param-file-not-mapping", ["batch", "byod", "-f", "{d}/v.yaml", "--dry-run"],
         ["parameter file", "must hold a mapping NAME: VALUE"], {"v.yaml": "[era5]\n"}),
    Case("export-format", ["data", "export", "global", "--format", "grib", "--out", "{d}/g.grb"],
         ["unknown export format 'grib'", "anemoi, netcdf, zarr"], absent=["g.grb"]),
    Case("export-out-exists", ["data", "export", "global", "--format", "netcdf", "--out",
                               "{d}/g.nc", "--start", "2020-01-01", "--end", "2020-01-01"],
         ["--out", "g.nc exists", "--force"], {"g.nc": "mine\n"}),
    Case("export-anemoi-suffix", ["data", "export", "global", "--format", "anemoi", "--out",
                                  "{d}/g.nc"], ["ends in .zarr", "g.zarr"], absent=["g.nc"]),
    Case("export-period", ["data", "export", "global", "--format", "netcdf", "--out", "{d}/g.nc",
                           "--start", "2019-01-01", "--end", "2019-01-02"],
         ["outside the data of 'global'", "2020-01-01T00:00:00 .. 2020-03-31T18:00:00",
          "--start/--end"], absent=["g.nc"]),
    Case("export-statistics-period", ["data", "export", "global", "--format", "anemoi", "--out",
                                      "{d}/g.zarr", "--start", "2020-01-01", "--end",
                                      "2020-01-02", "--statistics-end", "2020-01-05"],
         ["outside the exported period", "--statistics-start/--statistics-end"],
         absent=["g.zarr"]),
    Case("export-statistics-all-nan", ["data", "export", "sea", "--format", "anemoi", "--out",
                                       "{d}/sea.zarr", "--catalog", "{d}/cat",
                                       "--statistics-end", "2020-01-04T18:00"],
         ["sst is NaN at every point between 2020-01-03T00:00:00 and 2020-01-04T18:00:00",
          "--statistics-start/--statistics-end"], text_zarr_case(SST_NAN_IN_TRAIN),
         absent=["sea.zarr"]),
]



def forecast_case(name: str = "sst", latitude: str = "BCD", units: str = "hours since 2020-01-03",
                  hours: str = "06<BHNTZ`flrx~") -> dict[str, str]:
    """A forecast made elsewhere, ``f.zarr``, for truth ``sea`` (:func:`text_zarr_case`): the
    text zarr with ``time`` the valid times ``hours`` (a byte an hour count) in ``units``
    since its initial time, as anemoi-inference writes them, its variable named ``name``, its
    latitudes ``latitude``."""
    files = {k.replace("f.zarr/sst/", f"f.zarr/{name}/"): v
             for k, v in text_zarr("f.zarr", None).items()}
    files["f.zarr/latitude/0"] = latitude
    files["f.zarr/time/0"] = hours
    attrs = json.loads(files["f.zarr/time/.zattrs"])
    files["f.zarr/time/.zattrs"] = json.dumps({**attrs, "units": units})
    for array, shape in (("time", [len(hours)]), (name, [len(hours), 3, 4])):
        meta = json.loads(files[f"f.zarr/{array}/.zarray"])
        files[f"f.zarr/{array}/.zarray"] = json.dumps({**meta, "shape": shape, "chunks": shape})
    return {**text_zarr_case(SST_NAN_IN_TRAIN), **files}


FORECAST = ["evaluate", "--forecast", "{d}/f.zarr", "--truth", "sea", "--catalog", "{d}/cat"]
CASES += [
    Case("evaluate-forecast-variables", FORECAST,
         ["forecast", "f.zarr", "none of its variables (t2m) is one of truth 'sea'", "(sst)",
          "--variables FILE_NAME=NAME"], forecast_case(name="t2m")),
    Case("evaluate-forecast-grid", FORECAST,
         ["f.zarr", "its points are not truth 'sea'", "no forecast point within 0.1 km",
          "regrid the forecast onto the truth's grid"], forecast_case(latitude="CDE")),
    Case("evaluate-forecast-times", FORECAST,
         ["f.zarr", "initial time 2019-12-31T00:00:00 is not a time of truth 'sea'",
          "2020-01-03T00:00:00 to 2020-01-06T06:00:00", "covers the forecast"],
         forecast_case(units="hours since 2019-12-31")),
    Case("evaluate-forecast-valid-times", FORECAST,
         ["valid time 2020-01-06T12:00:00 is not a time of truth 'sea'"], forecast_case()),
    Case("evaluate-forecast-missing", ["evaluate", "--forecast", "{d}/f.nc", "--truth", "global"],
         ["forecast file", "f.nc does not exist"]),
    Case("evaluate-forecast-unreadable", ["evaluate", "--forecast", "{d}/f.nc", "--truth",
                                          "global"],
         ["cannot read forecast file", "f.nc", "give a netCDF file or a zarr store"],
         {"f.nc": "mine\n"}),
    Case("evaluate-forecast-no-truth", ["evaluate", "--forecast", "{d}/f.nc"],
         ["evaluate --forecast FILE scores a file against --truth DATASET"]),
    Case("evaluate-forecast-variables-item", FORECAST + ["--variables", "2t"],
         ["--variables '2t'", "FILE_NAME=NAME"], forecast_case()),
    Case("evaluate-forecast-train-period", FORECAST[:-2] + ["--catalog", "{d}/cat",
                                                            "--train-period", "2019-01-01",
                                                            "2019-02-01"],
         ["--train-period 2019-01-01 2019-02-01 is not a period of truth 'sea'"],
         forecast_case(hours="06")),
    # ---------------------------------------------------------------- anemoi-graphs recipes
    Case("graph-recipe-hexnodes", ["graph", "build", "{d}/r.yaml", "--out", "{d}/r.pt"],
         ["nodes.data.node_builder: HexNodes need the h3 library",
          "supported node builders: NPZFileNodes"],
         {"r.yaml": RECIPE.replace("TriNodes, resolution: 2", "HexNodes, resolution: 2")},
         ["r.pt"]),
    Case("graph-recipe-option", ["graph", "inspect", "{d}/r.yaml"],
         ["edges[0].edge_builders[0]: KNNEdges option 'k' is not supported",
          "num_nearest_neighbours"],
         {"r.yaml": RECIPE.replace("num_nearest_neighbours: 3", "k: 3")}),
    Case("graph-recipe-unknown-nodes", ["graph", "sweep", "{d}/r.yaml"],
         ["edges[0]: node set 'mesh' is not defined under nodes (data, hidden)"],
         {"r.yaml": RECIPE.replace("target_name: hidden", "target_name: mesh")}),
    Case("graph-recipe-trim", ["graph", "sweep", "{d}/r.yaml", "--trim", "3"],
         ["--trim applies to workbench graph configs, not to an anemoi-graphs recipe"],
         {"r.yaml": RECIPE}),
    Case("graph-export-recipe-coarsened", ["graph", "export-recipe", "demo-conus", "--out",
                                           "{d}/r.yaml"],
         ["hidden.kind coarsened has no anemoi-graphs node builder"], {}, ["r.yaml", "r.npz"]),
    # ---------------------------------------------------------------- forecast from a checkpoint
    Case("forecast-not-a-checkpoint", FORECAST_CKPT,
         ["m.ckpt is not a checkpoint (not the zip archive torch.save writes)", "run dir"],
         {"m.ckpt": "weights\n"}, ["f.zarr"]),
    Case("evaluate-ckpt-not-a-checkpoint", ["evaluate", "{d}/m.ckpt", "--domain", "conus"],
         ["m.ckpt is not a checkpoint"], {"m.ckpt": "weights\n"}, ["forecasts"]),
    Case("forecast-ckpt-missing", FORECAST_CKPT, ["checkpoint", "m.ckpt does not exist"], {},
         ["f.zarr"]),
    Case("forecast-steps-zero", FORECAST_CKPT[:-4] + ["--steps", "0", "--out", "{d}/f.zarr"],
         ["--steps", "whole number >= 1"], {"m.ckpt": "weights\n"}, ["f.zarr"]),
    Case("forecast-start-not-a-date", FORECAST_CKPT[:-6] + ["--start", "soon", "--steps", "2",
                                                            "--out", "{d}/f.zarr"],
         ["forecast --start 'soon' is not a date"], {"m.ckpt": "weights\n"}, ["f.zarr"]),
    Case("forecast-out-suffix", FORECAST_CKPT[:-1] + ["{d}/f.grib"],
         ["forecast --out", "f.grib: name a .zarr or .nc file"], {"m.ckpt": "weights\n"},
         ["f.grib"]),
    # ---------------------------------------------------------------- a run's options or a file's
    Case("evaluate-forecast-run-options", ["evaluate", "--forecast", "{d}/f.nc", "--truth",
                                           "global", "--steps", "4", "--members", "3"],
         ["evaluate --forecast scores the files as they are", "--steps, --members",
          "leave them out"]),
    Case("evaluate-run-truth", ["evaluate", "{d}", "--domain", "conus", "--truth", "global"],
         ["--truth and --variables go with --forecast FILE"], {}, ["forecasts"]),
]

CASES += [  # workbench graph fixes
    Case("graph-fixes-unknown-region", ["graph", "fixes", "demo", "--region", "mars"],
         ["unknown region 'mars'", "lam, all"]),
    Case("graph-fixes-no-lam", ["graph", "fixes", "{d}/g.yaml", "--write-config", "{d}/f.yaml"],
         ["region 'lam' holds no data node (the config has no LAM dataset)", "--region all"],
         {"g.yaml": GRAPH.replace("[conus, global]", "[global]")}, ["f.yaml"]),
    Case("graph-fixes-not-knn", ["graph", "fixes", "{d}/g.yaml"],
         ["fixes start from a plain knn encoder", "reversed_knn"],
         {"g.yaml": GRAPH.replace("encoder: {kind: knn", "encoder: {kind: reversed_knn")}),
    Case("graph-fixes-k-max-zero", ["graph", "fixes", "demo", "--k-max", "0"],
         ["--k-max", "whole number >= 1"]),
    Case("graph-lam-k-decoder", ["graph", "build", "{d}/g.yaml", "--out", "{d}/g.pt"],
         ["decoder: lam_k applies to the encoder only"],
         {"g.yaml": GRAPH.replace("decoder: {kind: knn, k: 3}",
                                  "decoder: {kind: knn, k: 3, lam_k: 2}")}, ["g.pt"]),
    Case("graph-lam-k-without-lam", ["graph", "build", "{d}/g.yaml", "--out", "{d}/g.pt"],
         ["encoder.lam_k needs a LAM dataset"],
         {"g.yaml": GRAPH.replace("[conus, global]", "[global]").replace(
             "encoder: {kind: knn, k: 3}", "encoder: {kind: knn, k: 3, lam_k: 1}")}, ["g.pt"]),
    Case("graph-export-recipe-lam-k", ["graph", "export-recipe", "{d}/g.yaml", "--out",
                                       "{d}/r.yaml"],
         ["encoder: lam_k has no anemoi-graphs export here", "ReversedKNNEdges"],
         {"g.yaml": GRAPH.replace("encoder: {kind: knn, k: 3}",
                                  "encoder: {kind: knn, k: 3, lam_k: 1}")}, ["r.yaml", "r.npz"]),
]

CASES += [  # workbench lab
    Case("lab-no-folder", ["lab", "{d}/nothere"], ["nothere is not a folder", "workbench lab"]),
    Case("lab-port-zero", ["lab", "--port", "0"], ["--port", "from 1 to 65535"]),
    Case("lab-ip-name", ["lab", "{d}", "--ip", "my.host"], ["'my.host' is not an IP address"]),
    Case("evaluate-compare-no-run", ["compare", "{d}/a", "{d}/b", "--domain", "conus"],
         ["checkpoint", "/a does not exist", "train first"]),
    Case("evaluate-compare-reference", ["compare", "{d}/a", "{d}/b", "--domain", "conus",
                                        "--reference", "zero"], ["--reference", "invalid choice"]),
]

CASES += [  # notebook 03's seed, alone and as a plan grid (seed 004's study)
    Case("param-seed-text", ["run", "03_training", "-p", "seed", "first", "--runs-dir",
                             "{d}/runs"],
         ["parameter seed must be a whole number or null", "got 'first'"], {}, ["runs"]),
    Case("plan-seed-grid-text", ["batch", "{d}/p.yaml", "--dry-run", "--runs-dir", "{d}/runs"],
         ["step 't': parameter seed must be a whole number or null", "got 'one'"],
         {"p.yaml": "name: p\nsteps:\n  - name: t\n    notebook: 03_training\n"
                    "    grid: {seed: [0, one]}\n"}, ["runs"]),
]

CASES += [  # per-domain gradient norms (workbench.diagnostics, seed 000)
    Case("train-log-grad-norms-text", ["train", "{d}/t.yaml"],
         ["log_grad_norms: should be a valid boolean", "got 'yes'"],
         {"t.yaml": TRAIN + "log_grad_norms: 'yes'\n"}, ["runs"]),
]

CASES += [  # --dask on data stats / data index (workbench.dask_cluster)
    Case("pipeline-dask-form", ["data", "stats", "conus", "--dask", "cloud"],
         ["--dask", "'cloud'", "use local[:WORKERS[:MEMORY]], tcp://HOST:PORT or slurm"]),
    Case("pipeline-dask-workers", ["data", "index", "{d}/p.yaml", "--dask", "local:0"],
         ["--dask", "workers: should be greater than or equal to 1, got 0"],
         {"p.yaml": PIPELINE}),
    Case("pipeline-dask-memory", ["data", "stats", "conus", "--dask", "local:2:lots"],
         ["memory: should be a memory size of at least 1MB such as 1GB", "'lots'"]),
    Case("pipeline-dask-slurm-plan", ["data", "index", "{d}/p.yaml", "--dask", "local:1",
                                      "--slurm-plan", "demo"],
         ["--slurm-plan demo applies to --dask slurm only"], {"p.yaml": PIPELINE}),
]

CASES += [  # evaluate of a bert or interpolation run (workbench.evaluation_masked)
    Case("evaluate-masked-forecast-options", ["evaluate", "{d}", "--domain", "conus", "--steps",
                                              "2", "--format", "netcdf"],
         ["trained the 'bert' task and is scored on its masked steps",
          "--steps, --format apply to forecast runs; leave them out"],
         {"config.yaml": TRAIN + "task: bert\n", "checkpoints/last.ckpt": "weights\n"},
         ["forecasts"]),
    Case("evaluate-masked-train-period", ["evaluate", "{d}", "--domain", "conus",
                                          "--train-period", "2020-01-01", "2020-01-31"],
         ["trained the 'interpolation' task", "--train-period applies to forecast runs; leave it "
          "out"],
         {"config.yaml": "name: t\nsampling: {preset: demo, rollout: 2}\ntask: interpolation\n",
          "checkpoints/last.ckpt": "weights\n"}, ["forecasts"]),
]

CASES += [  # notebook 05 (seed 000's study): one comparison given without its list
    Case("param-comparisons-mapping", ["run", "05_study", "-p", "comparisons",
                                       "{question: forgetting, domain: global, a: x, b: y}",
                                       "--runs-dir", "{d}/runs"],
         ["parameter comparisons must be a list", "got {'question': 'forgetting'"], {},
         ["runs"]),
    Case("plan-study-comparisons-mapping", ["batch", "{d}/p.yaml", "--dry-run"],
         ["step 's': parameter comparisons must be a list"],
         {"p.yaml": "name: p\nsteps:\n  - name: s\n    notebook: 05_study\n"
                    "    params: {comparisons: {question: q, domain: global, a: x, b: y}}\n"},
         ["runs"]),
]

@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line(case: Case, tmp_path, monkeypatch, capsys):
    for name, text in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.chdir(tmp_path)
    argv = [arg.replace("{d}", str(tmp_path)) for arg in case.argv]
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for word in case.words:
        assert word in err, (word, err)
    for path in case.absent:
        assert not (tmp_path / path).exists(), f"{path} was written"


def test_case_count():
    """The issue asks for at least 60 cases across the areas."""
    assert len(CASES) >= 60
    areas = {c.id.split("-")[0] for c in CASES}
    assert {"catalog", "graph", "pipeline", "train", "evaluate", "plan", "param"} <= areas


def test_through_a_real_process(tmp_path):
    """The same contract outside pytest's process: a bad plan via ``python -m workbench``."""
    plan = tmp_path / "p.yaml"
    plan.write_text('name: p\nslurm: {mem: "32G\\nrm -rf /"}\n' + PLAN.split("\n", 1)[1])
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "batch", str(plan),
                           "--executor", "slurm", "--dry-run"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: p.yaml (slurm)")
    assert "Traceback" not in done.stderr


def test_error_paths_name_mapping_keys_and_list_items():
    """Inside mappings of config classes the key is named (imputer.variables.sst.value), a
    list index is kept (domains[0]) and a short fixed-length list says how many items."""
    from workbench.errors import WorkbenchError
    from workbench.sampling_config import sampling_config_from_dict

    base = {"name": "x", "domains": [{"name": "g", "dataset": "global"}],
            "variables": ["sst"], "splits": {"train": ["2020-01-01", "2020-01-31"]}}
    for change, message in [
        ({"imputer": {"variables": {"sst": {"kind": "constant", "value": "warm"}}}},
         "imputer.variables.sst.value: should be a valid number"),
        ({"fixed_scaling": {"tp": {"scale": -1}}}, "fixed_scaling.tp.scale: should be greater"),
        ({"fixed_scaling": {"tp": {"scal": 1}}},
         "fixed_scaling.tp: unknown key 'scal' (allowed: transform, offset, scale, unit)"),
        ({"domains": [{"name": "g", "dataset": "global", "weight": "heavy"}]},
         "domains[0].weight: should be a valid number"),
        ({"splits": {"train": ["2020-01-01"]}}, "splits.train: needs 2 items, got fewer"),
    ]:
        with pytest.raises(WorkbenchError) as err:
            sampling_config_from_dict({**base, **change})
        assert message in str(err.value), str(err.value)
