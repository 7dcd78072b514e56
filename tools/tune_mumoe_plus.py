"""The validation sweep that chose mumoe-plus (docs/mumoe_plus.md). Not part of the library.

Every candidate is scored in `prefix` mode (mask from the first 256 tokens, the last 256 scored)
on the LAST `--windows` 512-token windows of the *validation/calibration* texts: WikiText-2
valid.tokens, PTB valid.txt, C4 documents 500-999. The test sets are never read here.

The candidates that lost (RIA's score, a calibration prior, OWL ratios from calibration
activations) exist only in this file; the winners are library options (mean_shift, allocation).
Each candidate is a JSON object:
  a        exponent of the mean squares in the norms (1 = Wanda's ‖x‖, RIA uses 0.5)
  score    "ria": select on |W|·(1/Σ_row|W| + 1/Σ_col|W|) instead of |W|
  prior    "blend" (alpha·E_prompt[x²] + (1-alpha)·E_calib[x²]) or "soft" ((p²+h²)/(p+h), Probe Pruning)
  shift    mean_shift s: score ‖x − s·μ‖ (with "center") and/or add s·(W − Ŵ)μ (with "bias")
  owl      [M, lambda, weights_only]: OWL allocation from |W| (1) or |W|·‖x_calib‖ (0)

    python3 tools/tune_mumoe_plus.py --windows 8 --density 0.4 \\
        --configs '[{}, {"bias":1,"center":1,"shift":0.75}, {"bias":1,"center":1,"shift":0.75,"owl":[5,0.08,1]}]'
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mumoe_ext as M  # noqa: E402
from mumoe_ext.eval.datasets import _encode, calibration_windows, load_text  # noqa: E402
from mumoe_ext.eval.perplexity import perplexity_from_nlls, split_windows, window_nlls  # noqa: E402
from mumoe_ext.models import load_model, restore, sparsify  # noqa: E402
from mumoe_ext.models.mumoe_linear import MuMoELinear  # noqa: E402
from mumoe_ext.models.owl import owl_densities  # noqa: E402
from mumoe_ext.models.prompt_context import DECODE, PREFILL  # noqa: E402
from mumoe_ext.row_sparse import RowSparse, unpack_bitmap  # noqa: E402


def calib_mean_squares(model, tok, data_dir, n):
    """{linear name: E_calib[x²]} on the dense model, C4 calibration windows."""
    stats, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and ".layers." in name:
            stats[name] = [torch.zeros(m.in_features), 0]

            def hook(mod, args, name=name):
                x = args[0].reshape(-1, args[0].shape[-1]).float()
                stats[name][0] += x.square().sum(0)
                stats[name][1] += x.shape[0]
            hooks.append(m.register_forward_pre_hook(hook))
    with torch.no_grad():
        for w in calibration_windows("c4", tok, n, 512, 0, data_dir=data_dir):
            model(input_ids=w[None], use_cache=False)
    for h in hooks:
        h.remove()
    return {k: s / t for k, (s, t) in stats.items()}


class Candidate(MuMoELinear):
    """A µ-MoE linear with one candidate's rule; the compensation c rides with the cache."""

    def _forward(self, x):
        ctx, cfg = self.context, self.cfg
        if ctx.phase == DECODE:
            rs, c = ctx.session.weights[self]
            y = M.sparse_linear(x, rs, self.bias)
            return y if c is None else y + c
        x2 = x.reshape(-1, x.shape[-1])  # one prompt
        ms = x2.float().square().mean(0)
        if cfg.get("prior") == "blend":
            a = cfg.get("alpha", 1.0)
            ms = a * ms + (1 - a) * self.cal
        elif cfg.get("prior") == "soft":
            ms = (ms * ms + self.cal * self.cal) / (ms + self.cal).clamp_min(1e-30)
        s = cfg.get("shift", 1.0)
        mu = x2.float().mean(0)
        if cfg.get("center"):
            ms = (ms - mu * mu).clamp_min(0) + (1 - s) ** 2 * mu * mu  # = mean of (x − sμ)²
        norms = ms.clamp_min(0).pow(cfg.get("a", 1.0) / 2)
        W = self.weight
        rs = M.prune_rows(W if self.selw is None else self.selw, norms, self.density)
        if self.selw is not None:
            mask = unpack_bitmap(rs.bitmap, W.shape[1])
            rs = RowSparse(rs.bitmap, W[mask].view(W.shape[0], -1).contiguous(), W.shape[1])
        y = M.sparse_linear(x, rs, self.bias)
        c = None
        if cfg.get("bias"):
            c = (s * (W.float() @ mu - M.sparse_linear(mu.to(W.dtype)[None], rs)[0].float())).to(W.dtype)
            y = y + c
        if ctx.phase == PREFILL:
            ctx.session.weights[self] = (rs, c)
        return y


def layer_of(name):
    return int(name.split(".layers.")[1].split(".")[0])


def run(model, streams, cal, cfg, density):
    sparsify(model, "mumoe", density, progress=False)
    owl = None
    if cfg.get("owl"):
        m_, lam, weights_only = (list(cfg["owl"]) + [0])[:3]
        layers = {}
        for name, m in model.named_modules():
            if isinstance(m, MuMoELinear):
                w = m.weight.float().abs() * (1 if weights_only else cal[name].sqrt())
                layers.setdefault(layer_of(name), []).append(w)
        owl = owl_densities(layers, density, m_, lam)
    for name, m in model.named_modules():
        if isinstance(m, MuMoELinear):
            m.__class__ = Candidate
            m.cfg, m.cal = cfg, cal[name]
            m.density = owl[layer_of(name)] if owl else density
            m.selw = None
            if cfg.get("score") == "ria":
                wa = m.weight.float().abs()
                m.selw = (wa / wa.sum(1, keepdim=True) + wa / wa.sum(0, keepdim=True)).to(m.weight.dtype)
    try:
        out = {n: perplexity_from_nlls(window_nlls(model, w, ("prefix",), True, progress=False)["prefix"])
               for n, w in streams.items()}
    finally:
        restore(model)
    out["avg"] = sum(out.values()) / len(out)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", required=True, help="JSON list of candidates")
    p.add_argument("--density", default="0.4")
    p.add_argument("--windows", type=int, default=8)
    p.add_argument("--calib-windows", type=int, default=32)
    p.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, tok = load_model("smollm2-135m", torch.bfloat16)
    streams = {}
    for name in ("wikitext2", "ptb", "c4"):
        text, _ = load_text(name, "calib", args.data_dir)
        text = " ".join(text) if isinstance(text, list) else text
        streams[name] = split_windows(_encode(tok, text), 512)[-args.windows:]
    cal = calib_mean_squares(model, tok, args.data_dir, args.calib_windows)
    for d in (float(v) for v in args.density.split(",")):
        for cfg in json.loads(args.configs):
            t = time.time()
            r = run(model, streams, cal, cfg, d)
            print(json.dumps({"density": d, "cfg": cfg, **{k: round(v, 2) for k, v in r.items()},
                              "seconds": round(time.time() - t)}), flush=True)


if __name__ == "__main__":
    main()
