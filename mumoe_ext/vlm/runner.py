"""The paper's VLM experiment: for every method and density, prune LLaVA, answer every example
greedily, score, restore. Offline methods calibrate on the *other* task by default (Tables 2, 3)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from tqdm.auto import tqdm

from .calibration import load_calibration
from .data import DEFAULT_CALIB_SPLIT, DEFAULT_EVAL_SPLIT, check_task, load_examples
from .generate import generate_predictions
from .inputs import to_model
from .model import restore
from .predictions import write_predictions
from .prompts import TEMPLATES
from .scoring import score
from .sparsify import OFFLINE_METHODS, check_method, sparsify_llava

OTHER_TASK = {"scienceqa": "textvqa", "textvqa": "scienceqa"}


@dataclass
class VLMEvalConfig:
    task: str
    methods: tuple = ("dense", "magnitude", "sparsegpt", "wanda", "mumoe")
    densities: tuple = (0.6, 0.5, 0.4)
    split: str | None = None            # default: test (ScienceQA), validation (TextVQA)
    limit: int | None = None
    data_dir: str | None = None         # None: the Hugging Face hub (needs `datasets`)
    calib_task: str | None = None       # default: the other task, as in the paper
    calib_split: str | None = None      # default: train
    calib_data_dir: str | None = None   # default: data_dir
    nsamples: int = 128
    seed: int = 0
    vision_tower: bool = False
    projector: bool = False
    template: str = "vicuna_v1"
    max_new_tokens: int = 128
    pad_to_square: bool = True
    predictions_dir: str | None = None  # write <method>_<density>.jsonl per run
    progress: bool = True
    sparsify_opts: dict = field(default_factory=dict)

    def validate(self) -> "VLMEvalConfig":
        check_task(self.task)
        self.calib_task = check_task(self.calib_task or OTHER_TASK[self.task])
        self.split = self.split or DEFAULT_EVAL_SPLIT[self.task]
        self.calib_split = self.calib_split or DEFAULT_CALIB_SPLIT[self.calib_task]
        if not self.methods:
            raise ValueError("methods must name at least one method")
        for m in self.methods:
            check_method(m)
        for d in self.densities:
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d <= 1:
                raise ValueError(f"densities must be in (0, 1], got {d!r}")
        if self.template not in TEMPLATES:
            raise ValueError(f"template must be one of {TEMPLATES}, got {self.template!r}")
        for name in ("nsamples", "max_new_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        return self


def _runs(cfg: VLMEvalConfig):
    for method in cfg.methods:
        if method == "dense":
            yield method, 1.0
        else:
            for density in cfg.densities:
                yield method, float(density)


def evaluate_vlm(model, processor, config: VLMEvalConfig) -> dict:
    """Returns {"config": ..., "rows": [{"method", "density", "accuracy", "count", ...}]}.

    The model is restored (`mumoe_ext.restore`) after every pruned run, also on error.
    """
    cfg = config.validate()
    examples = load_examples(cfg.task, cfg.split, cfg.data_dir, cfg.limit)
    calib = None
    if any(m in OFFLINE_METHODS for m in cfg.methods):
        calib = load_calibration(processor, cfg.calib_task, split=cfg.calib_split,
                                 data_dir=cfg.calib_data_dir or cfg.data_dir,
                                 nsamples=cfg.nsamples, seed=cfg.seed, template=cfg.template,
                                 pad_to_square=cfg.pad_to_square)
        calib = [to_model(b, model) for b in calib]  # once: device and pixel dtype of the model
    if cfg.predictions_dir:
        os.makedirs(cfg.predictions_dir, exist_ok=True)
    rows = []
    runs = list(_runs(cfg))
    for method, density in tqdm(runs, desc="methods", disable=not cfg.progress or len(runs) < 2):
        pruned = method != "dense"
        try:
            if pruned:
                sparsify_llava(model, method, density, calib=calib, vision_tower=cfg.vision_tower,
                               projector=cfg.projector, nsamples=cfg.nsamples, seed=cfg.seed,
                               progress=cfg.progress, **cfg.sparsify_opts)
            preds = generate_predictions(model, processor, cfg.task, examples,
                                         template=cfg.template, max_new_tokens=cfg.max_new_tokens,
                                         pad_to_square=cfg.pad_to_square, progress=cfg.progress,
                                         desc=f"{method} {density:.0%}")
        finally:
            if pruned:
                restore(model)
        result = score(cfg.task, examples, preds)
        row = {"method": method, "density": density, "accuracy": result["accuracy"],
               "count": result["count"],
               "calib_task": cfg.calib_task if method in OFFLINE_METHODS else None}
        if cfg.predictions_dir:
            path = os.path.join(cfg.predictions_dir, f"{cfg.task}_{method}_{density:g}.jsonl")
            write_predictions(path, cfg.task, examples, preds)
            row["predictions"] = path
        rows.append(row)
    return {"config": asdict(cfg), "rows": rows}
