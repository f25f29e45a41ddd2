"""``dpunlearn bench``: every method × every scenario × data set (:mod:`dpunlearn.benchmark`).

Writes ``table.md`` (also printed), ``results.json`` (list ``records``) and
one PNG per data set to ``--out``; a progress bar goes to stderr. Unknown
names print one line ``dpunlearn: error: ...`` and exit 2. The heavy imports
(JAX, the methods) happen only when the command runs.
"""

from __future__ import annotations

import json
import os
import sys

from dpunlearn.benchmark import DATASETS, METHODS, SCENARIOS
from dpunlearn.cli._output import CLIError, _jsonable


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="benchmark every method against every scenario",
        description=(
            "Run unlearning methods (retraining, certified removal, the noisy methods, "
            "SISA, ...) against scenarios (utility, forgetting, membership inference, "
            "audit, reconstruction, slow-down, camouflage, backdoor, fairness, cost) on "
            "the same splits and seeds; write table.md, results.json and PNG plots."
        ),
    )
    p.add_argument(
        "--methods",
        default="all",
        help="comma-separated method names, or 'all' (default): " + ", ".join(METHODS),
    )
    p.add_argument(
        "--scenarios",
        default="all",
        help="comma-separated scenario names, or 'all' (default): "
        + ", ".join(SCENARIOS),
    )
    p.add_argument(
        "--datasets",
        default=None,
        help="comma-separated among "
        + ", ".join(DATASETS)
        + " (default: the size's data sets; all at full size)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of splits and keys (default 0)"
    )
    p.add_argument(
        "--out", default="results/bench", help="output folder (default results/bench)"
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--smoke", action="store_true", help="small size: a few minutes on 2 cores"
    )
    size.add_argument("--tiny", action="store_true", help="tiny size (tests)")
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="worker processes, one method x data set at a time "
        "(default: the number of CPUs, at most 4; 1: in this process)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar on stderr"
    )
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    from dpunlearn import benchmark as B

    try:
        methods = B.parse_names(args.methods, B.METHODS, "--methods")
        scenarios = B.parse_names(args.scenarios, B.SCENARIOS, "--scenarios")
        datasets = (
            None
            if args.datasets is None
            else B.parse_names(args.datasets, B.DATASETS, "--datasets")
        )
    except ValueError as e:
        raise CLIError(str(e)) from None
    if args.jobs is not None and args.jobs < 1:
        raise CLIError(f"expected --jobs to be a positive integer, got {args.jobs}")
    size = "tiny" if args.tiny else "smoke" if args.smoke else "full"
    os.makedirs(args.out, exist_ok=True)
    result = B.run(
        methods=methods,
        scenarios=scenarios,
        datasets=datasets,
        size=size,
        seed=args.seed,
        progress=not args.no_progress,
        jobs=args.jobs,
    )
    pngs = [] if args.no_plots else B.plot(result, args.out)
    result["pngs"] = [os.path.basename(p) for p in pngs]
    table = B.markdown_table(result) + "\n\n" + B.summary_tables(result)
    header = (
        f"# dpunlearn bench ({size}, seed {args.seed})\n\n"
        f"{len(result['records'])} records in {result['seconds']:.0f} s "
        f"({result['config']['jobs']} worker process(es)) "
        f"(load average {', '.join(f'{x:.1f}' for x in result['load_average'] or [])}).\n\n"
    )
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(header + table + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(_jsonable(result), f, indent=1, sort_keys=True)
    print(header + table)
    sys.stdout.flush()
    return 0
