"""Per-prompt N:M sparsity (pattern="N:M") of the selection ops vs the stable-sort reference: exact
masks/bitmaps, exactly N kept in every group of M columns, per prompt for batches, every dtype, odd
sizes and odd M, ties, every CPU path; the linears against the reference on every CPU path."""
import pytest
import torch

import mumoe_ext
from mumoe_ext import reference
from helpers_ops import (BACKENDS, BATCH_IDS, BATCHES, DTYPE_IDS, DTYPES, assert_bitwise_equal,
                         assert_linear_close, assert_masks_equal, lead, make_norms, make_weight,
                         on_backend, to)

# (pattern, d_out, d_in): one group, odd row counts, M odd (3, 7), the 2:4 / 4:8 of the hardware,
# d_in 1000 and 4096 (several vector widths), M > 32 (the large-group path).
CASES = [("2:4", 1, 4), ("2:4", 3, 36), ("2:4", 5, 1000), ("2:4", 3, 4096), ("1:4", 7, 44),
         ("3:4", 2, 20), ("4:8", 3, 40), ("4:8", 4, 1000), ("1:2", 5, 34), ("2:3", 4, 33),
         ("3:7", 2, 35), ("5:16", 3, 48), ("7:64", 2, 128)]
CASE_IDS = [f"{p}-{o}x{i}" for p, o, i in CASES]


def nm(pattern):
    n, m = pattern.split(":")
    return int(n), int(m)


def assert_n_per_group(mask, pattern):
    n, m = nm(pattern)
    counts = mask.reshape(*mask.shape[:-1], mask.shape[-1] // m, m).sum(-1)
    assert bool((counts == n).all()), f"groups keep {counts.unique().tolist()}, expected {n} of {m}"


def test_keep_rule():
    # k = d_in * N / M per row; m is the group size the compiled ops receive.
    from mumoe_ext._checks import keep_rule
    assert keep_rule(4096, None, "2:4", "t") == (2048, 4)
    assert keep_rule(40, None, "4:8", "t") == (20, 8)
    assert keep_rule(35, None, "3:7", "t") == (15, 7)
    assert keep_rule(40, 0.5, "4:8", "t") == (20, 8)  # density equal to N/M is accepted
    assert keep_rule(40, 0.5, None, "t") == (20, 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", BATCHES, ids=BATCH_IDS)
@pytest.mark.parametrize("pattern,d_out,d_in", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_mask_prune_rows_match_reference(dtype, pattern, d_out, d_in, batch, backend):
    w = make_weight(d_out, d_in, dtype)
    norms = make_norms(batch, d_in)
    want = reference.wanda_mask(w, norms, pattern=pattern)
    assert want.shape == (*lead(batch), d_out, d_in)
    assert_n_per_group(want, pattern)
    want_rs = reference.prune_rows(w, norms, pattern=pattern)
    with on_backend(backend) as dev:
        wd, nd = to(dev, w, norms)
        got = mumoe_ext.wanda_mask(wd, nd, pattern=pattern)
        pruned = mumoe_ext.wanda_prune(wd, nd, pattern=pattern)
        rs = mumoe_ext.prune_rows(wd, nd, pattern=pattern)
    assert_masks_equal(got, want)
    assert_bitwise_equal(pruned, torch.where(want, w, torch.zeros((), dtype=dtype)))
    n, m = nm(pattern)
    assert rs.values.shape == (*lead(batch), d_out, d_in // m * n)
    assert torch.equal(rs.bitmap.cpu(), want_rs.bitmap)
    assert_bitwise_equal(rs.values, want_rs.values)


def test_reference_is_the_stable_sort_of_each_group():
    # The rule written out on a tiny example: row [3, 1, 2, 2 | 0, 5, 5, 5], 2:4 keeps the two
    # largest of each group, equal scores going to the lower column.
    w = torch.tensor([[3.0, 1.0, 2.0, 2.0, 0.0, 5.0, 5.0, 5.0]])
    want = torch.tensor([[True, False, True, False, False, True, True, False]])
    for impl in (reference, mumoe_ext):
        assert torch.equal(impl.wanda_mask(w, torch.ones(8), pattern="2:4"), want)


TIES = {
    "all-equal": lambda d_out, d_in: (torch.ones(d_out, d_in), torch.ones(d_in)),
    "zero-norms": lambda d_out, d_in: (torch.randn(d_out, d_in), torch.zeros(d_in)),
    "zero-weights": lambda d_out, d_in: (torch.zeros(d_out, d_in), torch.rand(d_in)),
    "few-values": lambda d_out, d_in: (torch.randint(-2, 3, (d_out, d_in)).float(),
                                       torch.randint(0, 3, (d_in,)).float()),
    "signs": lambda d_out, d_in: (torch.ones(d_out, d_in) * torch.where(torch.rand(d_out, d_in) < 0.5, -1.0, 1.0),
                                  torch.ones(d_in)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pattern,d_in", [("2:4", 36), ("4:8", 1000), ("3:7", 35), ("7:64", 128)],
                         ids=["2:4", "4:8", "3:7", "7:64"])
@pytest.mark.parametrize("case", list(TIES))
def test_ties_go_to_the_lower_column(case, pattern, d_in, backend):
    w, norms = TIES[case](5, d_in)
    want = reference.wanda_mask(w, norms, pattern=pattern)
    assert_n_per_group(want, pattern)
    if case in ("all-equal", "zero-norms", "zero-weights", "signs"):  # every score equal
        n, m = nm(pattern)
        assert bool(want.reshape(5, -1, m)[..., :n].all())
    with on_backend(backend) as dev:
        for dtype in DTYPES:
            wd, nd = to(dev, w.to(dtype), norms)
            assert_masks_equal(mumoe_ext.wanda_mask(wd, nd, pattern=pattern), want)
            rs = mumoe_ext.prune_rows(wd, nd, pattern=pattern)
            assert torch.equal(rs.bitmap.cpu(), reference.prune_rows(w.to(dtype), norms, pattern=pattern).bitmap)


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_prompt_gets_its_own_mask(backend):
    w = make_weight(16, 64, torch.float32)
    norms = make_norms(4, 64)
    with on_backend(backend) as dev:
        batched = mumoe_ext.wanda_mask(*to(dev, w, norms), pattern="2:4").cpu()
        alone = [mumoe_ext.wanda_mask(*to(dev, w, norms[b]), pattern="2:4").cpu() for b in range(4)]
    assert all(torch.equal(batched[b], alone[b]) for b in range(4))
    assert not torch.equal(batched[0], batched[1])  # different prompts, different masks


# (batch, T, d_out, d_in) reaching each CPU path of the linears (see test_ops_linear_compact.py).
PATHS = [(None, 1, 37, 96), (3, 8, 37, 96), (2, 20, 300, 4096), (None, 1100, 24, 4096)]
PATH_IDS = ["fused-T1", "fused-B3xT8", "blocked-B2xT20", "composite-T1100"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pattern", ["2:4", "4:8", "1:8"])
@pytest.mark.parametrize("batch,T,d_out,d_in", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_linears_match_reference(dtype, batch, T, d_out, d_in, pattern, backend):
    # small-integer x: fp32 sums of squares are exact in any order, so the masks match exactly
    x = torch.randint(-4, 5, (*lead(batch), T, d_in)).to(dtype)
    w = make_weight(d_out, d_in, dtype)
    b = torch.randn(d_out).to(dtype)
    want_y, want_rs = reference.wanda_linear_compact(x, w, b, pattern=pattern)
    with on_backend(backend) as dev:
        xd, wd, bd = to(dev, x, w, b)
        y, rs = mumoe_ext.wanda_linear_compact(xd, wd, bd, pattern=pattern)
        y_plain = mumoe_ext.wanda_linear(xd, wd, bd, pattern=pattern)
        step = mumoe_ext.sparse_linear(xd[..., -1:, :], rs, bd)  # decode reuses the prompt's mask
    assert torch.equal(rs.bitmap.cpu(), want_rs.bitmap)
    assert_bitwise_equal(rs.values, want_rs.values)
    assert_n_per_group(rs.to_dense().cpu() != 0, pattern) if dtype == torch.float32 else None
    assert_linear_close(y, want_y, x, want_rs.to_dense(), b)
    assert_linear_close(y_plain, want_y, x, want_rs.to_dense(), b)
    want_step = reference.sparse_linear(x[..., -1:, :], want_rs, b)
    assert_linear_close(step, want_step, x[..., -1:, :], want_rs.to_dense(), b)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.values[0][0] == "cpu"])
def test_a_padded_prompt_gets_what_it_gets_alone(backend):
    x = torch.randn(3, 12, 64)
    w, b = make_weight(40, 64, torch.float32), torch.randn(40)
    am = torch.ones(3, 12, dtype=torch.bool)
    am[1, :5] = False
    am[2, 9:] = False
    with on_backend(backend):
        y, rs = mumoe_ext.wanda_linear_compact(x, w, b, None, am, pattern="2:4")
        for i in range(3):
            alone_y, alone_rs = mumoe_ext.wanda_linear_compact(x[i][am[i]].clone(), w, b, pattern="2:4")
            assert torch.equal(y[i][am[i]], alone_y)
            assert torch.equal(rs.values[i], alone_rs.values)


def test_compile_fullgraph_with_pattern():
    torch._dynamo.reset()
    x, w, b = torch.randint(-4, 5, (2, 6, 32)).float(), torch.randn(24, 32), torch.randn(24)
    fn = torch.compile(lambda x, w, b: mumoe_ext.wanda_linear(x, w, b, pattern="4:8"), fullgraph=True)
    want_y, want_rs = reference.wanda_linear_compact(x, w, b, pattern="4:8")
    assert_linear_close(fn(x, w, b), want_y, x, want_rs.to_dense(), b)


@pytest.mark.parametrize("batch", BATCHES, ids=BATCH_IDS)
@pytest.mark.parametrize("pattern,d_out,d_in", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_cuda_composite_matches_reference(dtype, pattern, d_out, d_in, batch):
    # The CUDA bindings' N:M path is this ATen composite (csrc/nm.cpp); run here on the CPU.
    w = make_weight(d_out, d_in, dtype)
    w[:, : min(8, d_in)] = 1.0  # ties
    norms = make_norms(batch, d_in)
    n, m = nm(pattern)
    mask, pruned, bitmap, values = torch.ops.mumoe_testing.nm_composite(w, norms, d_in // m * n, m)
    want = reference.prune_rows(w, norms, pattern=pattern)
    assert_masks_equal(mask, reference.wanda_mask(w, norms, pattern=pattern))
    assert_bitwise_equal(pruned, torch.where(mask, w, torch.zeros((), dtype=dtype)))
    assert torch.equal(bitmap, want.bitmap)
    assert_bitwise_equal(values, want.values)
