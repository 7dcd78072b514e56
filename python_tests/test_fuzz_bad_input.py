"""Random BAD inputs (hypothesis): one argument of a valid call is broken at random (dtype, number
of dims, a size, emptiness, a non-tensor, another device, NaN/Inf/negative values, a bad density
or k) and the call must raise TypeError/ValueError/RuntimeError whose message names that argument
— never crash, hang or return. Through the public wrappers and the torch.ops.mumoe.* ops behind
them, on every CPU path. Counts per op and path: helpers_fuzz.COUNTS."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mumoe_ext
from helpers_fuzz import DTYPES, count
from helpers_ops import BACKENDS, on_backend

OPS = torch.ops.mumoe
BAD_DTYPES = [torch.float64, torch.int32, torch.int64, torch.bool, torch.uint8, torch.complex64]
NOT_TENSORS = [[1.0, 2.0], 3.0, "x", None, object()]
RAISES = (TypeError, ValueError, RuntimeError)

# op -> (argument names in call order, which of them are tensors one may break)
SIGNATURES = {
    "col_norms": ["x", "attention_mask"],
    "wanda_mask": ["weight", "norms", "density"],
    "wanda_prune": ["weight", "norms", "density"],
    "prune_rows": ["weight", "norms", "density"],
    "masked_linear": ["x", "weight", "mask", "bias"],
    "sparse_linear": ["x", "rs", "bias"],
    "wanda_linear": ["x", "weight", "bias", "density", "attention_mask"],
    "wanda_linear_compact": ["x", "weight", "bias", "density", "attention_mask"],
}
# words a message may use for the argument (a RowSparse is checked field by field)
ALIASES = {"rs": ("rs", "bitmap", "values", "RowSparse", "d_in"), "k": ("k",)}


def _valid(op, B, T, d_out, d_in, dtype):
    lead = () if B is None else (B,)
    x = torch.randn(*lead, T, d_in).to(dtype)
    w = torch.randn(d_out, d_in).to(dtype)
    norms = mumoe_ext.col_norms(x)
    vals = {"x": x, "weight": w, "norms": norms if op in ("wanda_mask", "wanda_prune", "prune_rows") else None,
            "density": 0.5, "bias": torch.randn(d_out).to(dtype),
            "attention_mask": torch.ones(*lead, T, dtype=torch.bool)}
    vals["mask"] = mumoe_ext.wanda_mask(w, norms, 0.5)
    vals["rs"] = mumoe_ext.prune_rows(w, norms, 0.5)
    if op in ("wanda_mask", "wanda_prune", "prune_rows"):
        vals["norms"] = norms
    return {name: vals[name] for name in SIGNATURES[op]}


def _coupled_dims(name, t):
    """Dims of argument `name` whose size another argument of the call fixes."""
    if name == "x":  # d_in (weight, rs) and the leading dims (attention_mask)
        return list(range(t.dim()))
    if name in ("weight", "norms"):
        return [t.dim() - 1]  # d_in (a batch of norms may have any B)
    return list(range(t.dim()))  # bias, mask, attention_mask: every dim


def _break_tensor(t, how, draw, name=""):
    if how == "dtype" and name == "attention_mask":  # bool or integer 0/1 are fine; floats are not
        return t.to(draw(st.sampled_from([torch.float32, torch.float64, torch.complex64])))
    if how == "dtype" and name == "norms":  # any float is converted to fp32; others are not
        return t.to(draw(st.sampled_from([torch.int32, torch.int64, torch.bool, torch.complex64])))
    if how == "dtype":
        bad = [d for d in BAD_DTYPES + [torch.float32] if d != t.dtype]
        if t.dtype == torch.bool:  # a mask: a float mask is the mistake to catch
            bad = [torch.float32, torch.int64, torch.uint8]
        if t.dtype.is_floating_point and t.dtype != torch.float32:
            bad = [d for d in bad if d != torch.float32] + [torch.float64]
        return t.to(draw(st.sampled_from(bad))) if t.dtype != torch.complex64 else t.real
    if how == "dims":
        return draw(st.sampled_from([t.reshape(-1)[:1].reshape(()), t.unsqueeze(0).unsqueeze(0),
                                     t.reshape(-1) if t.dim() > 1 else t.unsqueeze(0).unsqueeze(0)]))
    if how == "size":  # a size another argument fixes
        dim = draw(st.sampled_from(_coupled_dims(name, t)))
        delta = draw(st.sampled_from([-1, 1, 2, 3]))
        new = max(1, t.shape[dim] + delta) if t.shape[dim] + delta != t.shape[dim] else t.shape[dim] + 1
        if new == t.shape[dim]:
            new += 1
        shape = list(t.shape)
        shape[dim] = new
        return torch.zeros(shape, dtype=t.dtype)
    if how == "empty":
        shape = list(t.shape)
        shape[draw(st.integers(0, t.dim() - 1))] = 0
        return torch.zeros(shape, dtype=t.dtype)
    if how == "device":
        return t.to("meta")
    if how == "values":  # NaN / Inf / negative where they are not allowed
        t = t.clone()
        bad = [float("nan"), float("inf"), -float("inf")] + ([-1.0] if name == "norms" else [])
        t.view(-1)[draw(st.integers(0, t.numel() - 1))] = draw(st.sampled_from(bad))
        return t
    raise AssertionError(how)


def _break_rs(rs, how, draw):
    if how == "type":
        return draw(st.sampled_from([rs.values, (rs.bitmap, rs.values), None]))
    if how == "bitmap_dtype":
        return mumoe_ext.RowSparse(rs.bitmap.to(torch.int64), rs.values, rs.d_in)
    if how == "bitmap_shape":
        return mumoe_ext.RowSparse(rs.bitmap[..., :0] if rs.bitmap.shape[-1] > 1 else
                                   torch.cat([rs.bitmap, rs.bitmap], -1), rs.values, rs.d_in)
    if how == "values_dtype":
        return mumoe_ext.RowSparse(rs.bitmap, rs.values.to(torch.float64), rs.d_in)
    if how == "d_in":
        return mumoe_ext.RowSparse(rs.bitmap, rs.values, rs.d_in + draw(st.sampled_from([1, 33, -1])))
    raise AssertionError(how)


# which breakages mean something for which argument (values: NaN/negative norms, NaN/Inf x and
# weight; a NaN bias is a valid, if odd, bias)
TENSOR_BREAKS = {"x": ["dtype", "dims", "size", "empty", "device", "values"],
                 "weight": ["dtype", "dims", "size", "empty", "device", "values"],
                 "norms": ["dtype", "dims", "size", "empty", "device", "values"],
                 "bias": ["dtype", "dims", "size", "empty", "device"],
                 "mask": ["dtype", "dims", "size", "device"],
                 "attention_mask": ["dtype", "dims", "size", "device"]}
BAD_DENSITY = [0.0, -0.5, 1.5, float("nan"), float("inf"), "0.5", None, True]


@st.composite
def broken_calls(draw, op):
    B = draw(st.sampled_from([None, 2]))
    T, d_out, d_in = draw(st.integers(1, 12)), draw(st.integers(1, 6)), draw(st.integers(1, 70))
    dtype = DTYPES[draw(st.sampled_from(sorted(DTYPES)))]
    args = _valid(op, B, T, d_out, d_in, dtype)
    name = draw(st.sampled_from(list(args)))
    if name == "density":
        how = "value"
        args[name] = draw(st.sampled_from(BAD_DENSITY))
    elif name == "rs":
        how = draw(st.sampled_from(["type", "bitmap_dtype", "bitmap_shape", "values_dtype", "d_in"]))
        args[name] = _break_rs(args[name], how, draw)
    elif draw(st.integers(0, 9)) == 0 and name not in ("bias", "attention_mask"):
        how = "not_tensor"  # (None is valid for bias and attention_mask)
        args[name] = draw(st.sampled_from([v for v in NOT_TENSORS if v is not None]))
    else:
        how = draw(st.sampled_from(TENSOR_BREAKS[name]))
        plain = op in ("masked_linear", "sparse_linear") or (op == "wanda_linear" and d_in == 1)
        if how == "values" and plain:
            # plain products (and wanda_linear with k = d_in, which selects nothing: F.linear)
            # let NaN/Inf propagate as F.linear does, by design (docs/reliability.md)
            how = "dtype"
        if name == "x" and how == "size" and op == "col_norms":
            how = "dims"  # its d_in is free; its leading dims are broken from the attention_mask side
        # x's leading dims are free where no attention_mask / per-prompt mask fixes them
        coupling = "weight" if name == "x" and op in ("masked_linear", "sparse_linear") else name
        args[name] = _break_tensor(args[name], how, draw, coupling)
        if name == "x" and how == "dims" and args[name].dim() in (2, 3):
            args[name] = args[name].reshape(-1)  # still a valid rank: make it not
    return name, how, args


def _names(name):
    return ALIASES.get(name, (name,))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", list(SIGNATURES))
@settings(max_examples=4 * settings.default.max_examples)  # cheap examples: 4x the profile's
@given(data=st.data())
def test_fuzz_bad_input_raises_naming_the_argument(op, backend, data):
    name, how, args = data.draw(broken_calls(op))
    count(f"bad:{op}[{backend[1] or backend[0]}]")
    with on_backend(backend):
        with pytest.raises(RAISES) as e:
            getattr(mumoe_ext, op)(*args.values())
    msg = str(e.value)
    assert any(n in msg for n in _names(name)), f"{op}: broke {name} ({how}); message: {msg}"
    assert "Segmentation" not in msg


DIRECT = {  # the schema's arguments, k instead of density
    "wanda_mask": lambda a, k: OPS.wanda_mask(a["weight"], a["norms"], k),
    "prune_rows": lambda a, k: OPS.prune_rows(a["weight"], a["norms"], k),
    "wanda_linear": lambda a, k: OPS.wanda_linear(a["x"], a["weight"], a["bias"], k, None),
    "wanda_linear_compact": lambda a, k: OPS.wanda_linear_compact(a["x"], a["weight"], a["bias"], k, None),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", list(DIRECT))
@settings(max_examples=2 * settings.default.max_examples)
@given(data=st.data())
def test_fuzz_bad_k_and_args_of_the_compiled_ops(op, backend, data):
    """The C++ checks behind the wrappers: a bad k, or a broken tensor argument."""
    d_in = data.draw(st.integers(1, 70))
    args = _valid(op, None, data.draw(st.integers(1, 9)), data.draw(st.integers(1, 5)), d_in,
                  DTYPES[data.draw(st.sampled_from(sorted(DTYPES)))])
    if "norms" not in args:
        args["norms"] = None
    k = data.draw(st.sampled_from([0, -1, d_in + 1, 2**40]))
    name = "k"
    if data.draw(st.booleans()):
        k = max(1, d_in // 2)
        name = data.draw(st.sampled_from(["weight", "norms"] if op in ("wanda_mask", "prune_rows") else ["x", "weight"]))
        how = data.draw(st.sampled_from(["dtype", "dims", "size", "empty"]))
        # no attention_mask here: only x's d_in is fixed by another argument, as for the weight
        args[name] = _break_tensor(args[name], how, data.draw, "weight" if name == "x" else name)
        if name == "weight" and how == "dtype" and args[name].dtype in (torch.float16, torch.bfloat16):
            args[name] = args[name].to(torch.float64)
    count(f"bad:torch.ops.mumoe.{op}[{backend[1]}]")
    with on_backend(backend):
        with pytest.raises(RAISES) as e:
            DIRECT[op](args, k)
    assert name in str(e.value), str(e.value)
