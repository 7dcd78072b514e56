"""Decode with a fixed sparse weight: mumoe_ext.sparse_linear on a prune_rows result (built once,
outside the timing, as in generation) vs F.linear with the dense weight, for T = 1 .. 128.

extra_info records the weight bytes each implementation streams (RowSparse.nbytes vs the dense
weight), so the report can show effective bandwidth for the bandwidth-bound T = 1 case.
"""
import torch.nn.functional as F

import mumoe_ext

import inputs
from timing import call_or_skip, measure

OP = "sparse_linear"


def test_sparse_linear(benchmark, case, budget):
    w = inputs.weight(case.d_out, case.d_in, case.dtype, case.device)
    x = inputs.activations(case.T, case.d_in, case.dtype, case.device)
    if case.impl == "F.linear":
        fn, weight_bytes = (lambda: F.linear(x, w)), w.numel() * w.element_size()
    else:
        rs = call_or_skip(lambda: inputs.row_sparse(case.d_out, case.d_in, case.dtype, case.device,
                                                    case.density))
        fn, weight_bytes = (lambda: mumoe_ext.sparse_linear(x, rs)), rs.nbytes
    measure(benchmark, case, fn, budget, extra={"weight_bytes": weight_bytes})
