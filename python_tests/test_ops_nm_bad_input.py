"""Bad N:M arguments raise a Python exception that names the argument, in the public wrappers,
their reference twins and the compiled ops themselves (m, k)."""
import pytest
import torch

import mumoe_ext
from mumoe_ext import reference

W, N = torch.randn(3, 8), torch.rand(8)
X = torch.randn(4, 8)
IMPLS = [pytest.param(mumoe_ext, id="ext"), pytest.param(reference, id="reference")]
OPS = ["wanda_mask", "wanda_prune", "prune_rows", "wanda_linear", "wanda_linear_compact"]


def call(impl, op, **kw):
    if op == "wanda_prune" and impl is reference:
        pytest.skip("wanda_prune has no reference twin (it is wanda_mask applied)")
    fn = getattr(impl, op)
    if op.startswith("wanda_linear"):
        return fn(X, W, None, **kw)
    return fn(W, N, **kw)


BAD = [  # (kwargs, exception, message)
    (dict(pattern="2:3"), ValueError, "pattern='2:3' needs M=3 to divide d_in=8"),
    (dict(pattern="4:4"), ValueError, "0 < N < M"),
    (dict(pattern="5:4"), ValueError, "0 < N < M"),
    (dict(pattern="0:4"), ValueError, "0 < N < M"),
    (dict(pattern="2-4"), ValueError, "pattern must be a string 'N:M'"),
    (dict(pattern="2:4:8"), ValueError, "pattern must be a string 'N:M'"),
    (dict(pattern="a:4"), ValueError, "pattern must be a string 'N:M'"),
    (dict(pattern=""), ValueError, "pattern must be a string 'N:M'"),
    (dict(pattern="-1:4"), ValueError, "pattern must be a string 'N:M'"),
    (dict(pattern="2.0:4"), ValueError, "pattern must be a string 'N:M'"),
    (dict(pattern=24), TypeError, "pattern must be None or a string"),
    (dict(pattern=0.5), TypeError, "pattern must be None or a string"),
    (dict(density=0.6, pattern="2:4"), ValueError, "density=0.6 conflicts with pattern='2:4'"),
    (dict(density=0.25, pattern="4:8"), ValueError, "density=0.25 conflicts"),
    (dict(density=1.5, pattern="2:4"), ValueError, "density must be in \\(0, 1\\]"),
]
BAD_IDS = ["M-not-dividing", "N=M", "N>M", "N=0", "dash", "three", "letters", "empty", "negative",
           "float", "int", "float-type", "density-0.6", "density-0.25", "density-out-of-range"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kwargs,exc,message", BAD, ids=BAD_IDS)
@pytest.mark.parametrize("op", OPS)
def test_bad_pattern_names_the_argument(op, kwargs, exc, message, impl):
    with pytest.raises(exc, match=f"{op}: .*{message}"):
        call(impl, op, **kwargs)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", OPS)
def test_pattern_with_its_own_density_or_tuple_is_accepted(op, impl):
    a = call(impl, op, pattern="2:4")
    b = call(impl, op, density=0.5, pattern=" 2:4 ")
    c = call(impl, op, pattern=(2, 4))
    flat = lambda r: r[1].values if isinstance(r, tuple) else r if isinstance(r, torch.Tensor) else r.values
    assert torch.equal(flat(a), flat(b)) and torch.equal(flat(a), flat(c))


# The compiled ops check m and k themselves (a direct torch.ops call skips the wrappers).
OP_CALLS = {
    "wanda_mask": lambda k, m: torch.ops.mumoe.wanda_mask(W, N, k, m),
    "wanda_prune": lambda k, m: torch.ops.mumoe.wanda_prune(W, N, k, True, m),
    "prune_rows": lambda k, m: torch.ops.mumoe.prune_rows(W, N, k, m),
    "wanda_linear": lambda k, m: torch.ops.mumoe.wanda_linear(X, W, None, k, None, m),
    "wanda_linear_compact": lambda k, m: torch.ops.mumoe.wanda_linear_compact(X, W, None, k, None, m),
    "nm_composite": lambda k, m: torch.ops.mumoe_testing.nm_composite(W, N, k, m),
}


@pytest.mark.parametrize("k,m,message", [(4, 3, "m=3 \\(the N:M group size\\) must be >= 2 and divide d_in=8"),
                                          (4, 1, "m=1 \\(the N:M group size\\) must be >= 2"),
                                          (4, -4, "m=-4 \\(the N:M group size\\) must be >= 2"),
                                          (3, 4, "k=3 is not n\\*d_in/m"),
                                          (8, 4, "k=8 is not n\\*d_in/m")],
                         ids=["m-not-dividing", "m=1", "m<0", "k-not-n-per-group", "k=d_in"])
@pytest.mark.parametrize("op", list(OP_CALLS))
def test_compiled_ops_check_m_and_k(op, k, m, message):
    with pytest.raises(ValueError, match=f"{op}: {message}"):
        OP_CALLS[op](k, m)
