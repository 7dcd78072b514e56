"""The fused µ-MoE linear (prefill): mumoe_ext.wanda_linear (norms + selection + pruned GEMM) vs
F.linear with the unpruned weight (the cost floor), and vs the plain-torch pipeline a user would
write (reference.col_norms + topk mask + masked F.linear)."""
import torch.nn.functional as F

import mumoe_ext
from mumoe_ext import reference

import inputs
from sweep import skipped_baselines
from timing import measure

OP = "wanda_linear"


def torch_topk(x, w, density):
    mask = reference.wanda_mask_topk(w, reference.col_norms(x), density)
    return reference.masked_linear(x, w, mask)


def test_wanda_linear(benchmark, case, budget):
    w = inputs.weight(case.d_out, case.d_in, case.dtype, case.device)
    x = inputs.activations(case.T, case.d_in, case.dtype, case.device)
    fn = {
        "ours": lambda: mumoe_ext.wanda_linear(x, w, None, case.density),
        "F.linear": lambda: F.linear(x, w),
        "torch_topk": lambda: torch_topk(x, w, case.density),
    }[case.impl.split("@")[0]]
    measure(benchmark, case, fn, budget,
            extra={"skipped_baselines": skipped_baselines(OP, case.device, case.d_out, case.d_in)})
