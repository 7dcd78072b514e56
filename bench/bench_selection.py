"""Per-row Wanda selection (the paper's Figure 3, ours added): mumoe_ext.wanda_mask vs the torch
formulations of the same mask in mumoe_ext.reference (full stable sort, topk, kthvalue).

Every implementation gets the same weight and the same fp32 norms and returns the bool mask, so
the time includes scoring |W|·n as well as the per-row selection.
"""
import mumoe_ext
from mumoe_ext import reference

import inputs
from sweep import skipped_baselines
from timing import measure

OP = "wanda_mask"

IMPLS = {
    "ours": mumoe_ext.wanda_mask,
    "sort": reference.wanda_mask,
    "topk": reference.wanda_mask_topk,
    "kthvalue": reference.wanda_mask_kthvalue,
}


def test_wanda_mask(benchmark, case, budget):
    w = inputs.weight(case.d_out, case.d_in, case.dtype, case.device)
    n = inputs.norms(case.d_in, case.dtype, case.device)
    select = IMPLS[case.impl.split("@")[0]]
    mask = measure(benchmark, case, lambda: select(w, n, case.density), budget,
                   extra={"skipped_baselines": skipped_baselines(OP, case.device, case.d_out, case.d_in),
                          "norm_tokens": inputs.NORM_TOKENS})
    if case.impl.startswith("ours"):  # a fast kernel that keeps the wrong count would be no result
        k = mask[0].sum().item()
        assert (mask.sum(-1) == k).all() and abs(k / case.d_in - case.density) < 1 / case.d_in + 1e-9
