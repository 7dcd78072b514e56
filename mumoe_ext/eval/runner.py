"""The main job: methods × calibration sets × densities × datasets → perplexity records.

A density may also be an N:M pattern string ("2:4"): the job then prunes N:M (density N/M) and
its records carry "pattern"."""
from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from .._checks import parse_pattern
from ..models import load_model, restore, sparsify
from ..models.mumoe_options import mumoe_options, option_label
from ..models.sparsify import ONLINE_METHODS
from .datasets import C4_LOCAL_NOTE, calibration_windows, dataset_label, eval_tokens
from ..provenance import versions
from .perplexity import perplexity
from .resume import cell_key, load_finished, save_records

OFFLINE = ("wanda", "sparsegpt")


def sparsity_setting(setting) -> tuple[float, str | None]:
    """(density, pattern) of one entry of `densities`: a float, or an "N:M" pattern string."""
    if isinstance(setting, str):
        n, m = parse_pattern(setting, "eval")
        return n / m, setting
    return float(setting), None


def plan(methods, densities, calibs, sparsegpt_calibs=None):
    """[(method, calib, density or "N:M")] in table order, dense first."""
    jobs = [("dense", None, 1.0)] if "dense" in methods else []
    for method in methods:
        if method == "dense":
            continue
        for calib in ((sparsegpt_calibs or calibs) if method == "sparsegpt"
                      else calibs if method in OFFLINE else [None]):
            jobs += [(method, calib, d) for d in densities]
    return jobs


def run_eval(model_name: str, methods, densities, datasets, calibs, *, seqlen: int = 512,
             max_windows: int | None = None, nsamples: int = 128, modes=("window",), seed: int = 0,
             data_dir: str | None = None, sparsegpt_calibs=None, out: str | None = None,
             progress: bool = True, model=None, tokenizer=None, dtype="float32",
             log=tqdm.write, resume: bool = False, mumoe_opts: dict | None = None) -> list:
    """Runs the grid and returns JSON-ready records (also written to `out` after every job).

    mumoe_opts: options of the mumoe and mumoe-plus methods (mumoe_options.py), overriding each
    method's defaults; a record of either carries them as "options" (None when there are none)
    and every setting it ran with as "mumoe_settings".
    resume: keep the records already in `out` and skip every job whose cells (each dataset and
    mode) are all there with the same settings (resume.py); the others run again."""
    if model is None:
        model, tokenizer = load_model(model_name, getattr(torch, dtype) if isinstance(dtype, str)
                                      else dtype)
    if tokenizer is None:
        raise ValueError("tokenizer is required when a model object is passed")
    streams = {}
    for name in datasets:
        ids, source = eval_tokens(name, tokenizer, seqlen, data_dir)
        streams[name] = (ids, source)
        log(f"{dataset_label(name)}: {ids.numel()} tokens from {source}")
    calib_cache = {}
    provenance = versions()
    jobs = plan(methods, densities, calibs, sparsegpt_calibs)
    dtype_name = str(next(model.parameters()).dtype).replace("torch.", "")
    mumoe_opts = dict(mumoe_opts or {})
    for method in methods:
        if method in ONLINE_METHODS:
            mumoe_options(method, mumoe_opts)  # bad options fail before any job runs
    settings = {"model": model_name, "seqlen": seqlen, "max_windows": max_windows, "seed": seed,
                "dtype": dtype_name, "options": option_label(mumoe_opts)}
    cells = {job: [cell_key(settings, *job, nsamples, dataset_label(name), source, mode)
                   for name, (_, source) in streams.items() for mode in modes] for job in jobs}
    records, done = load_finished(out, cells) if resume else ([], set())
    for job in done:
        log(f"resume: {job[0]} {job[1] or ''} {job[2]} already finished in {out}, skipped")
    for method, calib, setting in tqdm([j for j in jobs if j not in done], desc="jobs",
                                       disable=not progress):
        start = time.time()
        density, pattern = sparsity_setting(setting)
        label = pattern or f"{density:g}"
        if calib is not None and calib not in calib_cache:
            calib_cache[calib] = calibration_windows(calib, tokenizer, nsamples, seqlen, seed,
                                                     data_dir=data_dir)
        online = method in ONLINE_METHODS
        online_record = ({"options": settings["options"],
                          "mumoe_settings": mumoe_options(method, mumoe_opts).as_dict()}
                         if online else {})
        sparsify(model, method, None if pattern else density, pattern=pattern,
                 calib=calib_cache.get(calib), nsamples=nsamples, seed=seed, progress=progress,
                 **(mumoe_opts if online else {}))
        try:
            for name, (ids, source) in streams.items():
                result = perplexity(model, ids, seqlen, max_windows, modes,
                                    prompt_dependent=online, progress=progress,
                                    desc=f"{method} {label} {dataset_label(name)}")
                for mode, (ppl, windows) in result.items():
                    record = {"model": model_name, "method": method,
                              "calib": dataset_label(calib) if calib else None,
                              "density": density, "pattern": pattern,
                              "dataset": dataset_label(name), "mode": mode,
                              "seqlen": seqlen, "windows": windows, "ppl": ppl,
                              "nsamples": nsamples if calib else None, "source": source,
                              "dtype": dtype_name, "seed": seed, "max_windows": max_windows,
                              **provenance, **online_record}
                    if name == "c4" and source.startswith("local"):
                        record["note"] = C4_LOCAL_NOTE
                    records.append(record)
                    log(f"{method:9s} calib={record['calib'] or '-':9s} density={label} "
                        f"{record['dataset']:9s} mode={mode:6s} ppl={ppl:.3f} ({windows} windows)")
        finally:
            restore(model)
        log(f"{method} {calib or ''} {label}: {time.time() - start:.0f}s")
        save_records(records, out)
    return records
