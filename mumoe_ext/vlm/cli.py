"""`mumoe eval-vlm` and `mumoe score`: added to the main CLI's subparsers by `register`.

Also runnable alone: ``python -m mumoe_ext.vlm.cli eval-vlm ...``.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..cli_args import choice_list, densities, positive as _positive_int
from .data import TASKS, load_examples
from .prompts import TEMPLATES
from .sparsify import METHODS


def _method_list(text: str) -> list[str]:
    return choice_list(text, "--methods", METHODS)


def _density_list(text: str) -> list[float]:
    return densities(text)


class _Flatten(argparse.Action):
    """nargs="+" of comma lists -> one flat list: both `0.6 0.5` and `0.6,0.5` work, as in the
    main CLI's `eval`."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [v for group in values for v in group])


def _write_json(path: str, payload: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {path}")


def run_eval_vlm(args) -> int:
    from .model import load_llava
    from .report import format_table
    from .runner import VLMEvalConfig, evaluate_vlm

    config = VLMEvalConfig(
        task=args.task, methods=tuple(args.methods), densities=tuple(args.density),
        split=args.split, limit=args.limit, data_dir=args.data_dir, calib_task=args.calib_task,
        calib_split=args.calib_split, nsamples=args.nsamples, seed=args.seed,
        vision_tower=args.vision_tower, projector=args.projector, template=args.template,
        max_new_tokens=args.max_new_tokens, pad_to_square=not args.no_pad,
        predictions_dir=args.predictions_dir, progress=not args.no_progress).validate()
    model, processor = load_llava(args.model, dtype=args.dtype, device=args.device)
    result = evaluate_vlm(model, processor, config)
    result["model"] = args.model
    print(format_table(args.task, result["rows"]))
    if config.calib_task and any(r["calib_task"] for r in result["rows"]):
        print(f"offline methods calibrated on {config.calib_task}/{config.calib_split} "
              f"({config.nsamples} multimodal prompts, seed {config.seed})")
    if args.out:
        _write_json(args.out, result)
    return 0


def run_score(args) -> int:
    from .predictions import check_known_ids, read_predictions
    from .report import format_score
    from .scoring import score

    examples = load_examples(args.task, args.split, args.data_dir)
    preds = read_predictions(args.predictions, args.task)
    check_known_ids(preds, examples, args.predictions)
    missing = sum(str(ex.id) not in preds for ex in examples)
    if args.skip_missing:
        examples = [ex for ex in examples if str(ex.id) in preds]
    elif missing:
        print(f"warning: {missing} example(s) have no prediction and count as wrong "
              f"(--skip-missing scores only the predicted ones)", file=sys.stderr)
    result = score(args.task, examples, preds)
    print(format_score(args.task, result, label=args.label))
    if args.out:
        _write_json(args.out, {"predictions": args.predictions, **result})
    return 0


def _add_eval_vlm(subparsers) -> None:
    p = subparsers.add_parser(
        "eval-vlm", help="prune LLaVA with each method and score ScienceQA or TextVQA",
        description="Prune a LlavaForConditionalGeneration with each method and density, answer "
                    "every example greedily with the official LLaVA prompt, and score it.")
    p.add_argument("--model", required=True, help="hub id or folder, e.g. llava-hf/llava-1.5-7b-hf")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--methods", nargs="+", type=_method_list, action=_Flatten,
                   default=["dense", "magnitude", "sparsegpt", "wanda", "mumoe"],
                   help=f"any of {', '.join(METHODS)} (space or comma separated; default: all)")
    p.add_argument("--density", nargs="+", type=_density_list, action=_Flatten,
                   default=[0.6, 0.5, 0.4],
                   help="fractions of weights kept, e.g. 0.6 0.5 0.4 or 0.6,0.5,0.4 (the default)")
    p.add_argument("--calib-task", choices=TASKS,
                   help="calibration data of wanda/sparsegpt (default: the other task)")
    p.add_argument("--calib-split", help="default: train")
    p.add_argument("--nsamples", type=_positive_int, default=128, help="calibration prompts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", help="local data folder (default: the Hugging Face hub)")
    p.add_argument("--split", help="default: test (scienceqa), validation (textvqa)")
    p.add_argument("--limit", type=_positive_int, help="score only the first N examples")
    p.add_argument("--vision-tower", action="store_true", help="also prune the vision tower")
    p.add_argument("--projector", action="store_true", help="also prune the mm projector")
    p.add_argument("--template", choices=TEMPLATES, default="vicuna_v1",
                   help="conversation format (default: vicuna_v1, LLaVA-1.5's eval)")
    p.add_argument("--max-new-tokens", type=_positive_int, default=128)
    p.add_argument("--no-pad", action="store_true",
                   help="do not pad images to square (LLaVA-1.5 pads)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--predictions-dir", help="write each run's predictions as JSON lines here")
    p.add_argument("--out", help="write the results as JSON")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_eval_vlm)


def _add_score(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help="score a predictions file on ScienceQA or TextVQA",
        description='Score JSON lines {"id"|"question_id": ..., "prediction": "<raw text>"} with '
                    "the official rules and print the accuracy breakdown.")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--predictions", required=True, help="JSON lines file")
    p.add_argument("--data-dir", help="local data folder (default: the Hugging Face hub)")
    p.add_argument("--split", help="default: test (scienceqa), validation (textvqa)")
    p.add_argument("--skip-missing", action="store_true",
                   help="score only examples that have a prediction")
    p.add_argument("--label", default="predictions", help="row label in the table")
    p.add_argument("--out", help="write the scores (and per-example details) as JSON")
    p.set_defaults(func=run_score)


def register(subparsers) -> None:
    """Add ``eval-vlm`` and ``score`` to an argparse subparsers object; each sets ``func``."""
    _add_eval_vlm(subparsers)
    _add_score(subparsers)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mumoe", description="mumoe VLM evaluation")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
