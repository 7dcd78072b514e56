"""`MuMoELM`: lm-evaluation-harness's `HFLM` for pruned models, registered as lm-eval model ``mumoe``.

    from mumoe_ext.lm_eval import MuMoELM
    lm = MuMoELM("smollm2-135m", method="mumoe", density=0.5)
    lm_eval.simple_evaluate(model=lm, tasks=["arc_easy"])
    # or, once mumoe_ext.lm_eval is imported: simple_evaluate(model="mumoe",
    #     model_args="pretrained=smollm2-135m,method=wanda,density=0.5,calib=c4")

Dense and offline-pruned models (magnitude, wanda, sparsegpt) do not depend on the prompt: they
run through HFLM's own batched path unchanged. A prompt-dependent model (one holding µ-MoE
linears) scores every request as its own unpadded forward (`scoring.score_requests`) and
generates every request alone, so results do not depend on `batch_size` at all (docs/lm_eval.md).
"""
from __future__ import annotations

import contextlib

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from ..models import MuMoELinear, load_model, sparsify
from ..models.sparsify import METHODS
from .scoring import check_mask_from, score_requests

OFFLINE_CALIBRATED = ("wanda", "sparsegpt")
DEFAULT_CALIB = dict(calib="c4", nsamples=16, calib_seqlen=512, seed=0)  # as `mumoe eval`


def is_prompt_dependent(model: torch.nn.Module) -> bool:
    """True when some linear re-prunes itself per prompt (µ-MoE and its variants)."""
    return any(isinstance(m, MuMoELinear) for m in model.modules())


def prepare_model(model, tokenizer, method: str, density: float, *, calib=DEFAULT_CALIB["calib"],
                  nsamples: int = DEFAULT_CALIB["nsamples"],
                  calib_seqlen: int = DEFAULT_CALIB["calib_seqlen"], seed: int = 0,
                  data_dir: str | None = None, progress: bool = True):
    """`sparsify(model, method, density)` with the offline methods calibrated as `mumoe eval` does
    (`calibration_windows(calib, tokenizer, nsamples, calib_seqlen, seed)`). Returns the model."""
    if method not in METHODS:
        raise ValueError(f"MuMoELM: method must be one of {METHODS}, got {method!r}")
    windows = None
    if method in OFFLINE_CALIBRATED:
        from ..eval.datasets import calibration_windows
        windows = calibration_windows(calib, tokenizer, nsamples, calib_seqlen, seed,
                                      data_dir=data_dir)
    return sparsify(model, method, density, calib=windows, nsamples=nsamples, seed=seed,
                    progress=progress)


def _as_dtype(dtype):
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype or torch.float32
    name = str(dtype).replace("torch.", "")
    if name == "auto":
        return torch.float32
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"MuMoELM: dtype must be float32, bfloat16 or float16, got {dtype!r}")
    return value


@register_model("mumoe")
class MuMoELM(HFLM):
    """`HFLM` over a model pruned by `mumoe_ext.sparsify`.

    pretrained: ``smollm2-135m``, a hub id / local folder (loaded with `mumoe_ext.load_model`),
        or a model object (then `tokenizer` is required; with `method` it is sparsified in place).
    method/density: as `sparsify`; ``method=None`` takes a model object as it is.
    calib/nsamples/calib_seqlen/seed/data_dir: calibration of wanda and sparsegpt.
    mask_from: ``input`` (default) or ``context``, where a µ-MoE loglikelihood request's masks
        come from (see `scoring`); rolling-loglikelihood windows always use ``input``.
    prompt_dependent: override the detection of µ-MoE linears (tests use it to run a dense model
        through the per-request path).
    Every other keyword goes to `HFLM` (batch_size, max_length, device, softmax_dtype, ...).
    """

    def __init__(self, pretrained="smollm2-135m", method: str | None = "mumoe",
                 density: float = 0.5, *, tokenizer=None, calib: str = DEFAULT_CALIB["calib"],
                 nsamples: int = DEFAULT_CALIB["nsamples"],
                 calib_seqlen: int = DEFAULT_CALIB["calib_seqlen"], seed: int = 0,
                 data_dir: str | None = None, mask_from: str = "input",
                 prompt_dependent: bool | None = None, dtype="float32", device: str = "cpu",
                 progress: bool = True, **kwargs):
        self._mask_from = check_mask_from(mask_from)
        if isinstance(pretrained, str):
            model, loaded_tokenizer = load_model(pretrained, _as_dtype(dtype))
            tokenizer = tokenizer if tokenizer is not None else loaded_tokenizer
            model.to(device)
            name = pretrained
        elif isinstance(pretrained, torch.nn.Module):
            if tokenizer is None:
                raise ValueError("MuMoELM: tokenizer is required when pretrained is a model object")
            model, name = pretrained, type(pretrained).__name__
        else:
            raise TypeError(f"MuMoELM: pretrained must be a model name or a torch.nn.Module, "
                            f"got {type(pretrained).__name__}")
        if method is not None:
            prepare_model(model, tokenizer, method, density, calib=calib, nsamples=nsamples,
                          calib_seqlen=calib_seqlen, seed=seed, data_dir=data_dir,
                          progress=progress)
        self.method, self.density = method, float(density)
        self.model_name = name
        super().__init__(pretrained=model, tokenizer=tokenizer, **kwargs)
        self._prompt_dependent = (is_prompt_dependent(model) if prompt_dependent is None
                                  else bool(prompt_dependent))
        self._progress = progress

    @property
    def prompt_dependent(self) -> bool:
        return self._prompt_dependent

    @property
    def mask_from(self) -> str:
        return self._mask_from

    @contextlib.contextmanager
    def _mask_source(self, mask_from: str):
        before, self._mask_from = self._mask_from, check_mask_from(mask_from)
        try:
            yield
        finally:
            self._mask_from = before

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        # rolling windows have a one-token context: a context-only mask would see one token
        with self._mask_source("input"):
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None,
                              **kwargs):
        if not self._prompt_dependent:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm,
                                                 override_bs=override_bs, **kwargs)
        if self.backend != "causal":
            raise NotImplementedError("MuMoELM: µ-MoE scoring supports causal LMs only")
        answers = score_requests(self.model, [(ctx, cont) for _, ctx, cont in requests],
                                 self.max_length, self._mask_from, device=self.device,
                                 softmax_dtype=self.softmax_dtype,
                                 progress=self._progress and not disable_tqdm)
        for (key, _, _), answer in zip(requests, answers):
            if key is not None:  # rolling windows carry no key; lm-eval caches them per document
                self.cache_hook.add_partial("loglikelihood", key, answer)
        return answers

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        """Batched generation left-pads the prompts; for µ-MoE every prompt is generated alone
        (its own unpadded prefill chooses its masks) and the rows are put back in the batch's
        layout: the padded context as given, then the new tokens, right-padded."""
        if not self._prompt_dependent or context.shape[0] == 1:
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        attention_mask = generation_kwargs.pop("attention_mask", None)
        if attention_mask is None:
            attention_mask = torch.ones_like(context)
        new_tokens = max_length - context.shape[1]
        rows = []
        for ids, keep in zip(context, attention_mask.bool()):
            prompt = ids[keep].unsqueeze(0)
            out = super()._model_generate(prompt, prompt.shape[1] + new_tokens, stop,
                                          attention_mask=torch.ones_like(prompt),
                                          **generation_kwargs)
            rows.append(torch.cat([ids, out[0, prompt.shape[1]:]]))
        pad = self.tokenizer.pad_token_id
        pad = self.eot_token_id if pad is None else pad
        width = max(r.numel() for r in rows)
        return torch.stack([torch.cat([r, r.new_full((width - r.numel(),), pad)]) for r in rows])
