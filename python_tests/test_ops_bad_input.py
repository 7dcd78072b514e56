"""Bad input raises a Python exception (ValueError/TypeError) whose message names the argument, from
the public wrappers, their reference twins, and the C++ checks behind torch.ops.mumoe.*."""
import pytest
import torch

import mumoe_ext
from mumoe_ext import RowSparse, reference

nan, inf = float("nan"), float("inf")
OPS = torch.ops.mumoe
IMPLS = [pytest.param(mumoe_ext, id="ext"), pytest.param(reference, id="reference")]


def _msg(impl, op, rest):
    """The kernels' messages start with the public op's name; a reference twin may report the
    helper twin it delegates to (reference.prune_rows -> wanda_mask), so only the argument counts."""
    return f"{op}: {rest}" if impl is mumoe_ext else rest


def _x(*shape, dtype=torch.float32):
    return torch.randn(*shape).to(dtype)


W = _x(6, 10)
N = torch.rand(10) + 0.1
X = _x(4, 10)


# ---- density ---------------------------------------------------------------------------------

BAD_DENSITIES = [(0.0, ValueError), (-0.5, ValueError), (1.0000001, ValueError), (1.5, ValueError),
                 (nan, ValueError), (inf, ValueError), (True, TypeError), (False, TypeError),
                 ("0.5", TypeError), (None, TypeError), (torch.tensor(0.5), TypeError)]
BAD_DENSITY_IDS = ["zero", "negative", "just_above_one", "1.5", "nan", "inf", "True", "False",
                   "string", "None", "tensor"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("density,exc", BAD_DENSITIES, ids=BAD_DENSITY_IDS)
@pytest.mark.parametrize("op", ["wanda_mask", "prune_rows", "wanda_linear"])
def test_bad_density(op, density, exc, impl):
    fn = getattr(impl, op)
    with pytest.raises(exc, match=_msg(impl, op, "density")):
        if op == "wanda_linear":
            fn(X, W, density=density)
        else:
            fn(W, N, density)


@pytest.mark.parametrize("density,exc", BAD_DENSITIES[:6], ids=BAD_DENSITY_IDS[:6])
def test_bad_density_wanda_prune(density, exc):
    with pytest.raises(exc, match="wanda_prune: density"):
        mumoe_ext.wanda_prune(W, N, density)


# ---- dtypes ----------------------------------------------------------------------------------

BAD_DTYPES = [torch.float64, torch.int32, torch.int64, torch.int8, torch.bool, torch.complex64]
BAD_DTYPE_IDS = ["fp64", "int32", "int64", "int8", "bool", "complex64"]


def _typed(shape, dtype):
    return torch.ones(shape, dtype=dtype) if dtype != torch.bool else torch.ones(shape).bool()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=BAD_DTYPE_IDS)
def test_wrong_dtype_x(dtype, impl):
    x = _typed((4, 10), dtype)
    with pytest.raises(TypeError, match="col_norms: x must be float32, float16 or bfloat16"):
        impl.col_norms(x)
    with pytest.raises(TypeError, match="wanda_linear: x must be float"):
        impl.wanda_linear(x, W, density=0.5)
    with pytest.raises(TypeError, match="masked_linear: x must be float"):
        impl.masked_linear(x, W, torch.ones(6, 10, dtype=torch.bool))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=BAD_DTYPE_IDS)
def test_wrong_dtype_weight(dtype, impl):
    w = _typed((6, 10), dtype)
    with pytest.raises(TypeError, match="wanda_mask: weight must be float"):
        impl.wanda_mask(w, N, 0.5)
    with pytest.raises(TypeError, match=_msg(impl, "prune_rows", "weight must be float")):
        impl.prune_rows(w, N, 0.5)


@pytest.mark.parametrize("impl", IMPLS)
def test_integer_norms(impl):
    with pytest.raises(TypeError, match="wanda_mask: norms"):
        impl.wanda_mask(W, torch.ones(10, dtype=torch.int64), 0.5)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("other", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_mismatched_dtypes(other, impl):
    with pytest.raises(TypeError, match="weight has dtype"):
        impl.wanda_linear(X, W.to(other), density=0.5)
    with pytest.raises(TypeError, match="bias has dtype"):
        impl.wanda_linear(X, W, torch.zeros(6, dtype=other), density=0.5)
    with pytest.raises(TypeError, match="weight has dtype"):
        impl.masked_linear(X.to(other), W, torch.ones(6, 10, dtype=torch.bool))


# ---- devices ---------------------------------------------------------------------------------

OTHER_DEVICES = ["meta"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("device", OTHER_DEVICES)
def test_mismatched_devices(device, impl):
    with pytest.raises(ValueError, match=f"wanda_linear: weight is on {device}"):
        impl.wanda_linear(X, W.to(device), density=0.5)
    with pytest.raises(ValueError, match=f"wanda_mask: norms is on {device}"):
        impl.wanda_mask(W, N.to(device), 0.5)
    with pytest.raises(ValueError, match=f"masked_linear: mask is on {device}"):
        impl.masked_linear(X, W, torch.ones(6, 10, dtype=torch.bool, device=device))
    with pytest.raises(ValueError, match=f"col_norms: attention_mask is on {device}"):
        impl.col_norms(X, torch.ones(4, dtype=torch.bool, device=device))
    with pytest.raises(ValueError, match="bias is on"):
        impl.wanda_linear(X, W, torch.zeros(6, device=device), density=0.5)


# ---- shapes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", [(10,), (1, 2, 4, 10)], ids=["1d", "4d"])
def test_x_wrong_rank(shape, impl):
    with pytest.raises(ValueError, match="col_norms: x must be"):
        impl.col_norms(_x(*shape))
    with pytest.raises(ValueError, match="wanda_linear: x must be"):
        impl.wanda_linear(_x(*shape), W, density=0.5)


@pytest.mark.parametrize("impl", IMPLS)
def test_mismatched_shapes(impl):
    with pytest.raises(ValueError, match="wanda_linear: x has d_in=11"):
        impl.wanda_linear(_x(4, 11), W, density=0.5)
    with pytest.raises(ValueError, match="wanda_linear: bias must have shape"):
        impl.wanda_linear(X, W, torch.zeros(5), density=0.5)
    with pytest.raises(ValueError, match="wanda_mask: norms must be"):
        impl.wanda_mask(W, torch.rand(11), 0.5)
    with pytest.raises(ValueError, match="wanda_mask: norms must be"):
        impl.wanda_mask(W, torch.rand(2, 3, 10), 0.5)
    with pytest.raises(ValueError, match="wanda_mask: weight must be"):
        impl.wanda_mask(_x(2, 6, 10), N, 0.5)


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_tensors(impl):
    with pytest.raises(ValueError, match="col_norms: x must not be empty"):
        impl.col_norms(_x(0, 10))
    with pytest.raises(ValueError, match="col_norms: x must not be empty"):
        impl.col_norms(_x(3, 4, 0))
    with pytest.raises(ValueError, match="wanda_mask: weight must not be empty"):
        impl.wanda_mask(_x(0, 10), N, 0.5)
    with pytest.raises(ValueError, match="wanda_linear: x must not be empty"):
        impl.wanda_linear(_x(0, 10), W, density=0.5)
    with pytest.raises(ValueError, match="wanda_mask: (weight|norms) must"):
        impl.wanda_mask(_x(6, 0), torch.rand(0), 0.5)


# ---- non-finite values -----------------------------------------------------------------------

@pytest.mark.parametrize("poison", [nan, inf, -inf, 1e30], ids=["nan", "inf", "-inf", "square_overflows"])
def test_non_finite_x(poison):
    x = X.clone()
    x[2, 3] = poison
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        mumoe_ext.col_norms(x)
    with pytest.raises(ValueError, match="NaN or Inf"):
        mumoe_ext.wanda_linear(x, W, density=0.5)
    with pytest.raises(ValueError, match="NaN or Inf"):
        reference.wanda_linear(x, W, density=0.5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_non_finite_x_low_precision_batched(dtype):
    x = _x(2, 3, 10, dtype=dtype)
    x[1, 0, 0] = nan
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        mumoe_ext.col_norms(x)
    with pytest.raises(ValueError, match="NaN or Inf"):
        mumoe_ext.wanda_linear(x, W.to(dtype), density=0.2)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("poison", [nan, inf], ids=["nan", "inf"])
@pytest.mark.parametrize("op", ["wanda_mask", "prune_rows"])
def test_non_finite_norms(op, poison, impl):
    n = N.clone()
    n[4] = poison
    with pytest.raises(ValueError, match=_msg(impl, op, "norms contain NaN or Inf")):
        getattr(impl, op)(W, n, 0.5)
    with pytest.raises(ValueError, match=_msg(impl, op, "norms contain NaN or Inf")):
        getattr(impl, op)(W, torch.stack([N, n]), 0.5)


def test_non_finite_norms_wanda_prune():
    with pytest.raises(ValueError, match="wanda_prune: norms contain NaN or Inf"):
        mumoe_ext.wanda_prune(W, torch.full((10,), nan), 0.5)


@pytest.mark.parametrize("impl", IMPLS)
def test_negative_norms(impl):
    # Norms are L2 norms: a negative one is a caller's bug (the reference refuses it; so must we).
    n = N.clone()
    n[1] = -1.0
    with pytest.raises(ValueError, match="wanda_mask: norms must be non-negative"):
        impl.wanda_mask(W, n, 0.5)


# ---- attention_mask and mask -----------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.complex64],
                         ids=["fp32", "fp16", "complex64"])
def test_attention_mask_wrong_dtype(dtype, impl):
    with pytest.raises(TypeError, match="col_norms: attention_mask must be bool or integer"):
        impl.col_norms(X, torch.ones(4, dtype=dtype))
    with pytest.raises(TypeError, match=_msg(impl, "wanda_linear", "attention_mask must be bool or integer")):
        impl.wanda_linear(X, W, density=0.5, attention_mask=torch.ones(4, dtype=dtype))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("x_shape,am_shape", [((4, 10), (5,)), ((4, 10), (1, 4)), ((2, 4, 10), (4,)),
                                              ((2, 4, 10), (2, 5)), ((2, 4, 10), (4, 2))],
                         ids=["T4-got5", "T4-got1x4", "B2T4-got4", "B2T4-got2x5", "B2T4-got4x2"])
def test_attention_mask_wrong_shape(x_shape, am_shape, impl):
    x = _x(*x_shape)
    with pytest.raises(ValueError, match="col_norms: attention_mask must have shape"):
        impl.col_norms(x, torch.ones(am_shape, dtype=torch.bool))
    with pytest.raises(ValueError, match=_msg(impl, "wanda_linear", "attention_mask must have shape")):
        impl.wanda_linear(x, W, density=0.5, attention_mask=torch.ones(am_shape, dtype=torch.bool))


def test_attention_mask_not_a_tensor():
    with pytest.raises(TypeError, match="col_norms: attention_mask must be a torch.Tensor"):
        mumoe_ext.col_norms(X, [1, 1, 1, 1])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.float32], ids=["uint8", "int64", "fp32"])
def test_mask_wrong_dtype(dtype, impl):
    with pytest.raises(TypeError, match="masked_linear: mask must be a bool tensor"):
        impl.masked_linear(X, W, torch.ones(6, 10, dtype=dtype))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("x_shape,mask_shape", [((4, 10), (6, 11)), ((4, 10), (10, 6)), ((4, 10), (2, 6, 10)),
                                                ((3, 4, 10), (2, 6, 10)), ((4, 10), (60,))],
                         ids=["6x11", "transposed", "batched-mask-2d-x", "B3-got-B2", "flat"])
def test_mask_wrong_shape(x_shape, mask_shape, impl):
    with pytest.raises(ValueError, match="masked_linear: mask must be"):
        impl.masked_linear(_x(*x_shape), W, torch.ones(mask_shape, dtype=torch.bool))


# ---- RowSparse -------------------------------------------------------------------------------

RS = reference.prune_rows(W, N, 0.5)
RS_BATCHED = reference.prune_rows(W, torch.rand(3, 10) + 0.1, 0.5)


@pytest.mark.parametrize("impl", IMPLS)
def test_sparse_linear_mismatched_x(impl):
    with pytest.raises(ValueError, match="d_in"):
        impl.sparse_linear(_x(4, 11), RS)
    with pytest.raises(TypeError, match="dtype"):
        impl.sparse_linear(X.to(torch.bfloat16), RS)
    with pytest.raises(ValueError, match="batched RowSparse of 3 prompts"):
        impl.sparse_linear(_x(2, 4, 10), RS_BATCHED)
    with pytest.raises(ValueError, match="batched RowSparse of 3 prompts"):
        impl.sparse_linear(X, RS_BATCHED)
    with pytest.raises(TypeError, match="sparse_linear: x must be float"):
        impl.sparse_linear(X.to(torch.int32), RS)


def test_sparse_linear_bad_rs_and_bias():
    with pytest.raises(TypeError, match="sparse_linear: rs must be a RowSparse"):
        mumoe_ext.sparse_linear(X, W)
    with pytest.raises(ValueError, match="sparse_linear: bias must have shape"):
        mumoe_ext.sparse_linear(X, RS, torch.zeros(7))
    with pytest.raises(ValueError, match="sparse_linear: rs.values is on meta"):
        mumoe_ext.sparse_linear(X, RowSparse(RS.bitmap.to("meta"), RS.values.to("meta"), 10))


# ---- the C++ checks, reached through torch.ops.mumoe.* directly ------------------------------

def test_cpp_checks_raise_python_exceptions():
    with pytest.raises(TypeError, match="wanda_mask: weight must be float32"):
        OPS.wanda_mask(W.long(), N, 5)
    with pytest.raises(TypeError, match="wanda_mask: norms must be float32"):
        OPS.wanda_mask(W, N.double(), 5)
    for k in (0, -1, 11):
        with pytest.raises(ValueError, match="wanda_prune: k must be in"):
            OPS.wanda_prune(W, N, k)
    with pytest.raises(ValueError, match="prune_rows: norms contain NaN or Inf"):
        OPS.prune_rows(W, torch.full((10,), nan), 5)
    with pytest.raises(ValueError, match="col_norms: attention_mask must have shape"):
        OPS.col_norms(X, torch.ones(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="col_norms: x contains NaN or Inf"):
        OPS.col_norms(torch.full((2, 3), nan), None)
    with pytest.raises(ValueError, match="col_norms: x must not be empty"):
        OPS.col_norms(_x(0, 3), None)
    with pytest.raises(TypeError, match="masked_linear: mask must be bool"):
        OPS.masked_linear(X, W, torch.ones(6, 10, dtype=torch.uint8), None)
    with pytest.raises(ValueError, match="masked_linear: x has d_in=11"):
        OPS.masked_linear(_x(4, 11), W, torch.ones(6, 10, dtype=torch.bool), None)
    with pytest.raises(TypeError, match="sparse_linear: bitmap must be int32"):
        OPS.sparse_linear(X, RS.bitmap.long(), RS.values, 10, None)
    with pytest.raises(ValueError, match="sparse_linear: bitmap .* do not describe a RowSparse"):
        OPS.sparse_linear(X, RS.bitmap, RS.values, 70, None)
    with pytest.raises(ValueError, match="wanda_linear: k must be in"):
        OPS.wanda_linear(X, W, None, 0, None)
    with pytest.raises(TypeError, match="wanda_linear: weight has dtype"):
        OPS.wanda_linear(X, W.half(), None, 5, None)
    with pytest.raises(ValueError, match="bias must have shape"):
        OPS.wanda_linear(X, W, torch.zeros(3), 5, None)
