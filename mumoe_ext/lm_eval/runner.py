"""The grid behind `mumoe lm-eval`: methods × densities × lm-eval tasks → JSON-ready records."""
from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from ..eval.datasets import dataset_label
from ..eval.resume import save_records
from ..eval.runner import plan
from ..models import load_model, restore
from .model import MuMoELM, prepare_model

SKIP_KEYS = ("alias", "name", "sample_len", "samples")


def metric_records(results: dict, base: dict) -> list[dict]:
    """One record per (task, metric, filter) of lm-eval's ``results`` dict, stderr beside it."""
    records = []
    for task, values in results.get("results", {}).items():
        for key, value in values.items():
            if key in SKIP_KEYS or "_stderr" in key or not isinstance(value, (int, float)):
                continue
            metric, _, filt = key.partition(",")
            stderr = values.get(f"{metric}_stderr,{filt}")
            n = results.get("n-samples", {}).get(task, {}).get("effective")
            records.append({**base, "task": task, "metric": metric, "filter": filt or None,
                            "value": float(value),
                            "stderr": float(stderr) if isinstance(stderr, (int, float)) else None,
                            "samples": n})
    return records


def _offline_hint(error: Exception, tasks) -> RuntimeError:
    return RuntimeError(
        f"lm-eval could not load the tasks {list(tasks)} ({type(error).__name__}: {error}). "
        f"Tasks from the hub need network access; offline, define the tasks in local YAML + "
        f"jsonl files and pass their folder with --include-path (docs/lm_eval.md)")


def run_lm_eval(model_name: str, methods, densities, tasks, *, batch_size=1, limit=None,
                include_path: str | None = None, num_fewshot: int | None = 0,
                mask_from: str = "input", calib: str = "c4", nsamples: int = 16,
                calib_seqlen: int = 512, seed: int = 0, data_dir: str | None = None,
                dtype: str = "float32", device: str = "cpu", max_length: int | None = None,
                out: str | None = None, progress: bool = True, model=None, tokenizer=None,
                log=tqdm.write) -> list[dict]:
    """Evaluates every (method, density) of the plan on `tasks`; records written to `out` after
    every job. The model is loaded once and restored between jobs."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    if model is None:
        model, tokenizer = load_model(model_name, getattr(torch, dtype))
        model.to(device)
    if tokenizer is None:
        raise ValueError("run_lm_eval: tokenizer is required when a model object is passed")
    task_manager = TaskManager(include_path=include_path) if include_path else TaskManager()
    records = []
    for method, job_calib, density in tqdm(plan(methods, densities, [calib]), desc="jobs",
                                           disable=not progress):
        start = time.time()
        prepare_model(model, tokenizer, method, density, calib=job_calib or calib,
                      nsamples=nsamples, calib_seqlen=calib_seqlen, seed=seed, data_dir=data_dir,
                      progress=progress)
        try:
            lm = MuMoELM(model, method=None, density=density, tokenizer=tokenizer,
                         mask_from=mask_from, batch_size=batch_size, max_length=max_length,
                         progress=progress)
            try:
                results = lm_eval.simple_evaluate(model=lm, tasks=list(tasks),
                                                  num_fewshot=num_fewshot, limit=limit,
                                                  task_manager=task_manager, log_samples=False,
                                                  verbosity="WARNING")
            except (ConnectionError, OSError, ValueError) as e:
                if any(word in str(e).lower() for word in ("connect", "offline", "internet",
                                                           "resolve", "network", "hub")):
                    raise _offline_hint(e, tasks) from e
                raise
        finally:
            restore(model)
        base = {"model": model_name, "method": method,
                "calib": dataset_label(job_calib) if job_calib else None, "density": density,
                "mask_from": mask_from if lm.prompt_dependent else None,
                "batch_size": batch_size, "limit": limit, "num_fewshot": num_fewshot,
                "nsamples": nsamples if job_calib else None,
                "dtype": str(next(model.parameters()).dtype).replace("torch.", "")}
        job = metric_records(results, base)
        records += job
        for r in job:
            log(f"{method:9s} density={density:g} {r['task']:14s} {r['metric']:16s} "
                f"{r['value']:.4f}")
        log(f"{method} {job_calib or ''} {density:g}: {time.time() - start:.0f}s")
        save_records(records, out)
    return records


def _row_label(r):
    calib = f" ({r['calib']} calib)" if r["calib"] else ""
    return f"{r['method']}{calib}"


def format_table(records: list[dict], model: str = "") -> str:
    """Markdown: one row per method × density, one column per task metric, plus the mean of the
    `acc` columns when there are several."""
    columns = list(dict.fromkeys((r["task"], r["metric"]) for r in records))
    rows: dict = {}
    for r in records:
        rows.setdefault((_row_label(r), r["density"]), {})[(r["task"], r["metric"])] = r["value"]
    accs = [c for c in columns if c[1] == "acc"]
    head = ["method", "density"] + [f"{t} {m}" for t, m in columns]
    if len(accs) > 1:
        head.append("mean acc")
    lines = [f"lm-eval results{f' for {model}' if model else ''}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (label, density), values in rows.items():
        cells = [label, f"{density:g}"]
        cells += [f"{values[c]:.4f}" if c in values else "-" for c in columns]
        if len(accs) > 1:
            have = [values[c] for c in accs if c in values]
            cells.append(f"{sum(have) / len(have):.4f}" if len(have) == len(accs) else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
