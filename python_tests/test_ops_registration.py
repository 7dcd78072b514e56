"""Registration: torch.library.opcheck on every torch.ops.mumoe.* op (schema, fake kernel, autograd
registration, AOT dispatch), and torch.compile(fullgraph=True) of wanda_linear matching eager."""
import pytest
import torch
import torch.nn.functional as F

import mumoe_ext
from mumoe_ext import reference
from helpers_ops import DEVICES, assert_linear_close

OPS = torch.ops.mumoe
ALL_OPS = ["col_norms", "wanda_mask", "wanda_prune", "prune_rows", "masked_linear",
           "sparse_linear", "wanda_linear", "wanda_linear_compact", "wanda_linear_centered",
           "prune_rows_centered"]


def _samples(device):
    """(op name, args) pairs: one prompt and a batch, fp32 and a 16-bit dtype, bias or not."""
    out = []
    for dtype, (B, T, d_out, d_in) in [(torch.float32, (None, 5, 6, 37)),
                                       (torch.bfloat16, (3, 9, 5, 33)),
                                       (torch.float16, (2, 1, 4, 7))]:
        lead = () if B is None else (B,)
        x = torch.randn(*lead, T, d_in, dtype=dtype, device=device)
        w = torch.randn(d_out, d_in, dtype=dtype, device=device)
        b = torch.randn(d_out, dtype=dtype, device=device)
        am = torch.ones(*lead, T, dtype=torch.bool, device=device)
        am[..., 0] = False
        norms = mumoe_ext.col_norms(x)
        k = max(1, d_in // 2)
        mask = mumoe_ext.wanda_mask(w, norms, 0.5)
        bitmap, values = OPS.prune_rows(w, norms, k)
        out += [("col_norms", (x, None)), ("col_norms", (x, am)),
                ("wanda_mask", (w, norms, k)), ("wanda_prune", (w, norms, k)),
                ("prune_rows", (w, norms, k)),
                ("masked_linear", (x, w, mask, b)), ("masked_linear", (x, w, mask, None)),
                ("sparse_linear", (x, bitmap, values, d_in, b)),
                ("sparse_linear", (x, bitmap, values, d_in, None)),
                ("wanda_linear", (x, w, b, k, am)), ("wanda_linear", (x, w, None, k, None)),
                ("wanda_linear_compact", (x, w, b, k, am)),
                ("wanda_linear_compact", (x, w, None, k, None)),
                ("wanda_linear_centered", (x, w, b, k, 0.75, am)),
                ("wanda_linear_centered", (x, w, None, k, 0.5, None, 0, False)),
                ("prune_rows_centered", (x, w, k, 0.75, am)),
                ("prune_rows_centered", (x, w, k, 1.0, None))]
    return out + _nm_samples(device)


def _nm_samples(device):
    """The selection ops with an N:M group size m (docs/nm.md): 2:4 on one prompt, 3:8 batched."""
    out = []
    for dtype, (B, T, d_out, d_in), (n, m) in [(torch.float32, (None, 5, 6, 32), (2, 4)),
                                               (torch.bfloat16, (3, 9, 5, 24), (3, 8))]:
        lead = () if B is None else (B,)
        x = torch.randn(*lead, T, d_in, dtype=dtype, device=device)
        w = torch.randn(d_out, d_in, dtype=dtype, device=device)
        b = torch.randn(d_out, dtype=dtype, device=device)
        norms = mumoe_ext.col_norms(x)
        k = d_in // m * n
        out += [("wanda_mask", (w, norms, k, m)), ("wanda_prune", (w, norms, k, True, m)),
                ("prune_rows", (w, norms, k, m)), ("wanda_linear", (x, w, b, k, None, m)),
                ("wanda_linear_compact", (x, w, b, k, None, m))]
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", ALL_OPS)
def test_opcheck(op, device):
    samples = [args for name, args in _samples(device) if name == op]
    assert samples
    for args in samples:
        torch.library.opcheck(getattr(OPS, op).default, args)


@pytest.mark.parametrize("device", DEVICES)
def test_fake_kernels_give_the_eager_shapes_and_dtypes(device):
    from torch._subclasses.fake_tensor import FakeTensorMode
    for name, args in _samples(device):
        eager = getattr(OPS, name)(*args)
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
            fake = getattr(OPS, name)(*fake_args)
        for e, f in zip(eager if isinstance(eager, tuple) else (eager,),
                        fake if isinstance(fake, tuple) else (fake,)):
            assert (e.shape, e.dtype, e.device) == (f.shape, f.dtype, f.device), name


class MuMoEBlock(torch.nn.Module):
    """Two pruned linears with a nonlinearity between them, as a patched MLP would run."""

    def __init__(self, d, hidden, density):
        super().__init__()
        self.up = torch.nn.Linear(d, hidden)
        self.down = torch.nn.Linear(hidden, d, bias=False)
        self.density = density

    def forward(self, x, attention_mask=None):
        h = mumoe_ext.wanda_linear(x, self.up.weight, self.up.bias, self.density, attention_mask)
        return mumoe_ext.wanda_linear(F.gelu(h), self.down.weight, None, self.density)


@pytest.mark.parametrize("device", DEVICES)
def test_compile_wanda_linear_default_backend(device):
    torch._dynamo.reset()
    x = torch.randint(-4, 5, (2, 12, 64), device=device).float()
    w = torch.randn(48, 64, device=device)
    b = torch.randn(48, device=device)
    am = torch.ones(2, 12, dtype=torch.bool, device=device)
    am[1, :5] = False

    fn = torch.compile(lambda x, w, b, am: mumoe_ext.wanda_linear(x, w, b, 0.5, am), fullgraph=True)
    got = fn(x, w, b, am)
    want = mumoe_ext.wanda_linear(x, w, b, 0.5, am)
    mask = reference.wanda_mask(w.cpu(), reference.col_norms(x.cpu(), am.cpu()), 0.5)
    assert_linear_close(got, want.cpu(), x, torch.where(mask, w.cpu(), 0.0), b)


@pytest.mark.parametrize("device", DEVICES)
def test_compile_module_aot_eager(device):
    torch._dynamo.reset()
    block = MuMoEBlock(40, 72, 0.5).to(device)
    x = torch.randint(-3, 4, (3, 10, 40), device=device).float()
    am = torch.ones(3, 10, dtype=torch.int64, device=device)
    am[0, 7:] = 0
    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        got = compiled(x, am)
        want = block(x, am)
    assert torch.equal(got, want)  # same ops in the same order: bit-identical


def test_compile_density_one_is_f_linear():
    torch._dynamo.reset()
    x, w = torch.randn(5, 16), torch.randn(8, 16)
    fn = torch.compile(lambda x, w: mumoe_ext.wanda_linear(x, w, None, 1.0), backend="eager",
                       fullgraph=True)
    assert torch.equal(fn(x, w), F.linear(x, w))
