"""prune_rows (compact RowSparse: int32 bitmap + packed values) and sparse_linear vs the reference:
bitmaps and values exact, products within the linear tolerances, small-T and large-T paths."""
import math

import pytest
import torch

import mumoe_ext
from mumoe_ext import RowSparse, reference
from mumoe_ext.row_sparse import pack_bitmap, unpack_bitmap
from helpers_ops import (BACKENDS, BATCH_IDS, BATCHES, DENSITIES, DENSITY_IDS, DTYPE_IDS, DTYPES,
                         SHAPE_IDS, SHAPES, assert_bitwise_equal, assert_exactly_k_per_row,
                         assert_linear_close, keep_count, lead, make_norms, make_weight, on_backend,
                         to)

# (batch, T) as in test_ops_linear: both sides of the small-T (<= 8) / vendor-GEMM boundary.
TOKENS = [(None, 1), (3, 8), (None, 9), (2, 33)]
TOKEN_IDS = ["T1", "B3xT8", "T9", "B2xT33"]


def test_bitmap_packing_is_little_endian_int32():
    mask = torch.zeros(2, 40, dtype=torch.bool)
    mask[0, 0] = mask[0, 31] = mask[0, 32] = True
    mask[1, 39] = True
    bm = pack_bitmap(mask)
    assert bm.dtype == torch.int32 and bm.shape == (2, 2)
    assert bm.tolist() == [[1 - 2**31, 1], [0, 1 << 7]]  # bit 31 set reads as a negative int32
    assert torch.equal(unpack_bitmap(bm, 40), mask)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", BATCHES, ids=BATCH_IDS)
@pytest.mark.parametrize("density", DENSITIES, ids=DENSITY_IDS)
@pytest.mark.parametrize("d_out,d_in", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_prune_rows_matches_reference(dtype, d_out, d_in, density, batch, backend):
    w = make_weight(d_out, d_in, dtype)
    norms = make_norms(batch, d_in)
    want = reference.prune_rows(w, norms, density)
    k = keep_count(d_in, density)
    with on_backend(backend) as dev:
        got = mumoe_ext.prune_rows(*to(dev, w, norms), density)
    assert isinstance(got, RowSparse)
    words = math.ceil(d_in / 32)
    assert got.bitmap.dtype == torch.int32 and got.bitmap.shape == (*lead(batch), d_out, words)
    assert got.values.dtype == dtype and got.values.shape == (*lead(batch), d_out, k)
    assert got.d_in == d_in and got.k == k and got.shape == (*lead(batch), d_out, d_in)
    assert torch.equal(got.bitmap.cpu(), want.bitmap)  # padding bits past d_in are zero too
    assert torch.equal(got.values.cpu(), want.values)
    assert_exactly_k_per_row(got.mask().cpu(), k)
    assert torch.equal(got.mask().cpu(), reference.wanda_mask(w, norms, density))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_row_sparse_fields(dtype, backend):
    w = make_weight(6, 70, dtype)
    norms = make_norms(None, 70)
    with on_backend(backend) as dev:
        rs = mumoe_ext.prune_rows(*to(dev, w, norms), 0.5)
        pruned = mumoe_ext.wanda_prune(*to(dev, w, norms), 0.5)
    assert rs.k == 35 and rs.density == 0.5
    assert rs.dtype == dtype and rs.device.type == backend[0]
    assert rs.nbytes == 6 * 3 * 4 + 6 * 35 * w.element_size()
    assert torch.equal(rs.to_dense(), pruned)
    assert torch.equal(rs.to("cpu").to_dense(), rs.to_dense().cpu())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch,T", TOKENS, ids=TOKEN_IDS)
@pytest.mark.parametrize("density", DENSITIES, ids=DENSITY_IDS)
@pytest.mark.parametrize("d_out,d_in", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sparse_linear_matches_reference(dtype, d_out, d_in, density, batch, T, backend):
    x = torch.randn(*lead(batch), T, d_in).to(dtype)
    w = make_weight(d_out, d_in, dtype)
    b = torch.randn(d_out).to(dtype)
    rs = reference.prune_rows(w, reference.col_norms(x), density)  # one per prompt when batched
    want = reference.sparse_linear(x, rs, b)
    with on_backend(backend) as dev:
        got = mumoe_ext.sparse_linear(x.to(dev), rs.to(dev), b.to(dev))
    assert_linear_close(got, want, x, rs.to_dense(), b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch,T", TOKENS, ids=TOKEN_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sparse_linear_shared_row_sparse_without_bias(dtype, batch, T, backend):
    # One (unbatched) RowSparse applied to every prompt of x, from the kernel's own prune_rows.
    x = torch.randn(*lead(batch), T, 100).to(dtype)
    w = make_weight(21, 100, dtype)
    norms = make_norms(None, 100)
    want_rs = reference.prune_rows(w, norms, 0.2)
    with on_backend(backend) as dev:
        rs = mumoe_ext.prune_rows(*to(dev, w, norms), 0.2)
        got = mumoe_ext.sparse_linear(x.to(dev), rs)
    assert_linear_close(got, reference.sparse_linear(x, want_rs), x, want_rs.to_dense())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", [1, 9], ids=["T1", "T9"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sparse_linear_non_contiguous_x(dtype, T, backend):
    x = torch.randn(2 * T, 99).to(dtype)[::2, ::3]  # (T, 33) strided
    w = make_weight(7, 33, dtype)
    rs = reference.prune_rows(w, reference.col_norms(x), 0.5)
    with on_backend(backend) as dev:
        got = mumoe_ext.sparse_linear(x.to(dev), rs.to(dev))
    assert_linear_close(got, reference.sparse_linear(x.contiguous(), rs), x, rs.to_dense())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_prefill_then_decode_equals_masked_linear(dtype, backend):
    # µ-MoE generation: the mask chosen at prefill is reused for every decode token.
    prompt = torch.randn(12, 96).to(dtype)
    w = make_weight(24, 96, dtype)
    with on_backend(backend) as dev:
        norms = mumoe_ext.col_norms(prompt.to(dev))
        rs = mumoe_ext.prune_rows(w.to(dev), norms, 0.5)
        mask = mumoe_ext.wanda_mask(w.to(dev), norms, 0.5)
        token = torch.randn(1, 96).to(dtype)
        got = mumoe_ext.sparse_linear(token.to(dev), rs)
        via_mask = mumoe_ext.masked_linear(token.to(dev), w.to(dev), mask)
    assert torch.equal(rs.mask(), mask)
    assert_linear_close(got, reference.masked_linear(token, w, mask.cpu()), token, rs.to_dense())
    assert_linear_close(via_mask, reference.masked_linear(token, w, mask.cpu()), token, rs.to_dense())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_sparse_linear_large_layer(dtype, backend):
    x = torch.randn(128, 4096).to(dtype)
    w = make_weight(64, 4096, dtype)
    rs = reference.prune_rows(w, reference.col_norms(x), 0.5)
    with on_backend(backend) as dev:
        got_decode = mumoe_ext.sparse_linear(x[:1].to(dev), rs.to(dev))
        got_prefill = mumoe_ext.sparse_linear(x.to(dev), rs.to(dev))
    assert_linear_close(got_decode, reference.sparse_linear(x[:1], rs), x[:1], rs.to_dense())
    assert_linear_close(got_prefill, reference.sparse_linear(x, rs), x, rs.to_dense())


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("d_out", [1, 63, 64, 65, 300, 1031])
def test_sparse_linear_rows_split_over_threads(d_out, threads):
    """The decode GEMV splits rows into one contiguous slice per thread and lets a thread that
    finishes take chunks from the others' back ends: every row is computed exactly once whatever
    the thread count (8 threads on this machine's fewer cores are descheduled, so slices get
    stolen), bit for bit the result of one thread, and matches the reference."""
    d_in = 96
    x = torch.randn(2, 1, d_in).to(torch.bfloat16)
    w = make_weight(d_out, d_in, torch.bfloat16)
    b = torch.randn(d_out).to(torch.bfloat16)
    rs = reference.prune_rows(w, reference.col_norms(x), 0.5)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = mumoe_ext.sparse_linear(x, rs, b)
        torch.set_num_threads(threads)
        for _ in range(20):  # different interleavings of owners and thieves
            assert_bitwise_equal(mumoe_ext.sparse_linear(x, rs, b), one)
    finally:
        torch.set_num_threads(before)
    assert_linear_close(one, reference.sparse_linear(x, rs, b), x, rs.to_dense(), b)
