"""Every op gives the same result under torch.inference_mode() and torch.no_grad() as outside them,
on every CPU path, with several threads: the multi-threaded kernels write tensors made in the
caller's mode from worker threads (Hugging Face's `generate` and our VLM harness run under
inference_mode)."""
import contextlib

import pytest
import torch

import mumoe_ext
from helpers_ops import BACKENDS, make_weight, on_backend, to

MODES = {"inference_mode": torch.inference_mode, "no_grad": torch.no_grad}

# (T, d_out, d_in): the per-row path (T <= 8), the blocked one and the composite one (x over 8 MiB).
SHAPES = [(1, 37, 100), (20, 300, 512), (1100, 24, 4096)]


@contextlib.contextmanager
def _threads(n):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _every_op(x, w, b):
    n = mumoe_ext.col_norms(x)
    mask = mumoe_ext.wanda_mask(w, n, 0.5)
    rs = mumoe_ext.prune_rows(w, n, 0.5)
    y, rs_c = mumoe_ext.wanda_linear_compact(x, w, b, density=0.5)
    return {"col_norms": n, "wanda_mask": mask, "wanda_prune": mumoe_ext.wanda_prune(w, n, 0.5),
            "masked_linear": mumoe_ext.masked_linear(x, w, mask, b),
            "sparse_linear": mumoe_ext.sparse_linear(x, rs, b),
            "wanda_linear": mumoe_ext.wanda_linear(x, w, b, density=0.5),
            "wanda_linear_compact": y, "compact_values": rs_c.values}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T,d_out,d_in", SHAPES, ids=["per-row", "blocked", "composite"])
@pytest.mark.parametrize("mode", list(MODES))
def test_ops_under_grad_modes_match_plain_calls(mode, T, d_out, d_in, backend):
    x = torch.randint(-4, 5, (2, T, d_in)).float()
    w = make_weight(d_out, d_in, torch.float32)
    b = torch.randn(d_out)
    with _threads(2), on_backend(backend) as dev:
        args = to(dev, x, w, b)
        want = _every_op(*args)
        with MODES[mode]():
            got = _every_op(*args)
    for name, t in want.items():
        assert torch.equal(got[name], t), name
