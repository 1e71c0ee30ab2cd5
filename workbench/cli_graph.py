"""``workbench graph ...``: build, inspect and sweep graphs (workbench configs, presets and
anemoi-graphs recipes) and export a config as an anemoi-graphs recipe."""

from __future__ import annotations

from .cli_args import catalog_option, distance, print_json, whole, whole_list
from .errors import WorkbenchError


def cmd_graph_build(args) -> int:
    from .graphs import save_graph
    from .inspection import inspect_graph
    from .recipes import build_any

    graph = build_any(args.config)  # a workbench graph config or an anemoi-graphs recipe
    path = save_graph(graph, args.out)
    report = inspect_graph(graph)
    encoder = report["edge_sets"].get("data->hidden")
    if set(report["nodes"]) != {"data", "hidden"} or encoder is None:
        nodes = ", ".join(f"{name} {n}" for name, n in report["nodes"].items())
        edges = ", ".join(f"{name} {e['edges']}" for name, e in report["edge_sets"].items())
        print(f"{path}: graph {graph.graph_id} ({graph.name}), nodes {nodes}; edges {edges}")
        return 0
    print(f"{path}: graph {graph.graph_id} ({graph.name}), data {report['nodes']['data']}, "
          f"hidden {report['nodes']['hidden']} nodes; hanging encoder sources "
          f"{encoder['hanging_sources']['total']}")
    return 0


def cmd_graph_inspect(args) -> int:
    from .inspection import RegionSettings, inspect_graph
    from .recipes import load_or_build

    report = inspect_graph(load_or_build(args.graph),
                           RegionSettings(args.band_cells, args.near_km))
    if args.json:
        print_json(report)
        return 0
    print(f"graph {report['graph_id']} ({report['name']}): nodes {report['nodes']}")
    for name, edges in report["edge_sets"].items():
        hs, ht = edges["hanging_sources"], edges["hanging_targets"]
        length = edges["edge_length_km"]
        print(f"  {name:<16} {edges['edges']:>9} edges  hanging sources {hs['total']:>6} "
              f"targets {ht['total']:>6}  length km {length['min']:.1f}..{length['max']:.1f}")
        for side, counts in (("sources", hs), ("targets", ht)):
            detail = ", ".join(f"{r} {n}" for r, n in counts.items() if r != "total" and n)
            if detail:
                print(f"    hanging {side}: {detail}")
    return 0


def cmd_graph_sweep(args) -> int:
    from .graphs import load_config
    from .inspection import RegionSettings, parse_k_range, sweep, sweep_table
    from .recipes import read_recipe, sweep_recipe

    trims = args.trim or [0]
    if read_recipe(args.config) is not None:  # an anemoi-graphs recipe: no LAM trimming
        if trims != [0]:
            raise WorkbenchError("--trim applies to workbench graph configs, not to an "
                                 "anemoi-graphs recipe (its data nodes are given)")
        result = sweep_recipe(args.config, parse_k_range(args.k), args.edges, args.region,
                              RegionSettings(args.band_cells, args.near_km))
    else:
        result = sweep(load_config(args.config), parse_k_range(args.k), trims, args.edges,
                       args.region, RegionSettings(args.band_cells, args.near_km),
                       progress=not args.json)
    if args.json:
        print_json(result)
        return 0
    table = sweep_table(result)
    print(table.to_string(index=False))
    for trim, k in result["min_k_without_hanging"].items():
        found = k if k is not None else f"none up to {table['k'].max()}"
        print(f"trim {trim}: smallest k without hanging {result['side']} in {args.region}: {found}")
    return 0


def cmd_graph_fixes(args) -> int:
    from .fixes import find_fixes, fixes_table, write_config
    from .graphs import load_config
    from .inspection import RegionSettings

    config = load_config(args.config)
    result = find_fixes(config, args.region, RegionSettings(args.band_cells, args.near_km),
                        args.k_max)
    if args.write_config:
        result["written"] = str(write_config(config, result, args.write_config))
    if args.json:
        print_json(result)
        return 0
    print(f"graph {result['graph']}: {result['data_nodes']} data nodes "
          f"({result['lam_data_nodes']} LAM), {result['hidden_nodes']} hidden; encoder "
          f"knn k={result['encoder']['k']} leaves {result['hanging_as_is']} data nodes hanging "
          f"in {args.region}")
    print(fixes_table(result).to_string())
    goal = result["goal"]
    baseline = next(r for r in result["fixes"] if r["name"] == "global_k")
    verdict = (f"no baseline (global_k hangs up to k={args.k_max})" if not baseline["found"]
               else f"{'met' if goal['met'] else 'not met'}: best {goal['best']} at "
                    f"{goal['best_vs_global_k']:.0%}" if goal["best"] else "not met: no fix")
    print(f"goal (no hanging {args.region} data node at <= {goal['ratio']:.0%} of global_k's "
          f"{goal['global_k_edges']} encoder edges, keeping every data node): {verdict}")
    if "written" in result:
        print(f"{result['written']}: graph config of {result['chosen']}")
    return 0


def cmd_graph_export_recipe(args) -> int:
    from .recipe_export import export_recipe

    path = export_recipe(args.config, args.out)
    print(f"{path}: anemoi-graphs recipe, data nodes in {path.with_suffix('.npz')}; build it with "
          f"`anemoi-graphs create {path.name} GRAPH.pt` in {path.parent}")
    return 0


def add_graph_commands(sub) -> None:
    """The ``graph`` subcommands, added to the top-level subparsers ``sub``."""
    graph = sub.add_parser("graph", help="build and inspect graphs").add_subparsers(
        dest="graph", required=True)
    p = graph.add_parser("build", help="build a graph from a config, preset or anemoi-graphs "
                                       "recipe into a .pt")
    p.add_argument("config", help="configs/graphs/NAME.yaml, a preset name (demo, mmgt, ...) "
                                  "or an anemoi-graphs recipe YAML")
    p.add_argument("--out", required=True)
    catalog_option(p)
    p.set_defaults(func=cmd_graph_build)
    p = graph.add_parser("export-recipe", help="write a graph config as an anemoi-graphs recipe")
    p.add_argument("config", help="configs/graphs/NAME.yaml or a preset name (demo, mmgt, ...)")
    p.add_argument("--out", required=True, help="RECIPE.yaml (data nodes: RECIPE.npz beside it)")
    catalog_option(p)
    p.set_defaults(func=cmd_graph_export_recipe)
    p = graph.add_parser("fixes", help="hanging-node fixes: smallest setting, edges, memory")
    p.add_argument("config", help="configs/graphs/NAME.yaml or a preset name (demo-mmgt, ...)")
    p.add_argument("--region", default="lam", help="lam, all, or one region")
    p.add_argument("--k-max", type=whole(1), default=64, help="largest global k searched")
    p.add_argument("--write-config", metavar="PATH",
                   help="write the cheapest fix keeping every data node as a graph config")
    p.add_argument("--band-cells", type=whole(0), default=10, help="LAM boundary band width")
    p.add_argument("--near-km", type=distance, default=500.0, help="'near_lam' distance")
    p.add_argument("--json", action="store_true")
    catalog_option(p)
    p.set_defaults(func=cmd_graph_fixes)
    for name, func, text in [("inspect", cmd_graph_inspect, "hanging nodes, degrees, lengths"),
                             ("sweep", cmd_graph_sweep, "hanging counts for a range of k")]:
        p = graph.add_parser(name, help=text)
        if name == "inspect":
            p.add_argument("graph", help="a graph .pt (workbench's or anemoi-graphs'), an "
                                         "anemoi-graphs recipe YAML, a graph config or preset")
        else:
            p.add_argument("config")
            p.add_argument("--k", default="1:32", help="START:STOP[:STEP] or a comma list")
            p.add_argument("--trim", type=whole_list, metavar="N[,N...]",
                           help="LAM cells trimmed per side, comma list (e.g. 0,5,10,15)")
            p.add_argument("--region", default="lam", help="lam, all, or one region")
            p.add_argument("--edges", default="encoder", help="encoder, decoder (a recipe: "
                                                               "also SRC->DST)")
        p.add_argument("--band-cells", type=whole(0), default=10, help="LAM boundary band width")
        p.add_argument("--near-km", type=distance, default=500.0, help="'near_lam' distance")
        p.add_argument("--json", action="store_true")
        catalog_option(p)
        p.set_defaults(func=func)
