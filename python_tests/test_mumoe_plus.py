"""µ-MoE options (mean_shift, OWL allocation) and the mumoe-plus method, against independent
expectations: the reference definition y = x(W⊙M)ᵀ + b + s(W − W⊙M)μ (reference.mean_shift_linear,
not the shifted-input identity the implementation uses), a brute-force OWL allocation, and a static
model carrying each prompt's masks and compensations (helpers_mumoe_plus.py)."""
import pytest
import torch
from torch import nn

from mumoe_ext import reference
from mumoe_ext.models import MuMoELinear, restore, sparsify
from mumoe_ext.models.mumoe_options import PLUS, mumoe_options, option_label, parse_option_string
from mumoe_ext.models.owl import owl_densities, outlier_ratio
from mumoe_ext.models.hf_cache import cache_in_output, cache_kwarg
from mumoe_ext.models.prompt_context import PromptContext
from mumoe_ext.row_sparse import unpack_bitmap

from helpers_models import FAMILIES, token_windows
from helpers_mumoe_plus import expected_plus, static_plus_model

TOL = dict(rtol=1e-5, atol=1e-5)
FILL, PAD = 9, 1


def _linear(d_in=48, d_out=20, bias=True, seed=0):
    torch.manual_seed(seed)
    lin = nn.Linear(d_in, d_out, bias=bias)
    return lin


def _x(shape, seed=1, offset=0.7):
    g = torch.Generator().manual_seed(seed)
    # a column mean well away from 0, so the shift changes the scores
    return torch.randn(*shape, generator=g) + offset * torch.randn(shape[-1], generator=g)


@pytest.mark.parametrize("shift", [0.25, 0.75, 1.0])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("d_in,tokens", [(48, 9), (37, 1), (64, 30)])
def test_plain_forward_equals_the_reference_definition(shift, bias, d_in, tokens):
    lin = _linear(d_in, 20, bias)
    m = MuMoELinear(lin, 0.4, PromptContext(), mean_shift=shift)
    x = _x((tokens, d_in))
    want, _, _ = reference.mean_shift_linear(x, lin.weight, lin.bias, 0.4, shift)
    with torch.no_grad():
        torch.testing.assert_close(m(x), want, **TOL)


def test_mean_shift_changes_the_output_and_zero_is_plain_mumoe():
    lin = _linear()
    x = _x((12, 48))
    with torch.no_grad():
        plain = MuMoELinear(lin, 0.5, PromptContext())(x)
        zero = MuMoELinear(lin, 0.5, PromptContext(), mean_shift=0.0)(x)
        shifted = MuMoELinear(lin, 0.5, PromptContext(), mean_shift=0.75)(x)
    torch.testing.assert_close(zero, plain, rtol=0, atol=0)
    assert (shifted - plain).abs().max() > 1e-2


def test_batched_padded_prompts_each_get_their_own_mean_and_mask():
    lin = _linear()
    ctx = PromptContext()
    m = MuMoELinear(lin, 0.5, ctx, mean_shift=0.75)
    x = torch.stack([_x((10, 48), seed=s) for s in (3, 4)])
    am = torch.ones(2, 10, dtype=torch.bool)
    am[1, :4] = False  # left padding of prompt 1
    ctx.token_mask, ctx.batch_shape = am, (2, 10)
    with torch.no_grad():
        y = m(x)
    for b in range(2):
        want, _, _ = reference.mean_shift_linear(x[b][am[b]], lin.weight, lin.bias, 0.5, 0.75)
        torch.testing.assert_close(y[b][am[b]], want, **TOL)


def _plus(family, **opts):
    return sparsify(FAMILIES[family](), "mumoe-plus", 0.5, **opts)


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_plus_generation_equals_static_model_with_masks_and_compensation(family):
    model = _plus(family)
    ids = token_windows(1, 8, seed=5)
    want = expected_plus(model, ids)
    with torch.no_grad():
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5,
                             do_sample=False, pad_token_id=PAD, output_logits=True,
                             return_dict_in_generate=True)
        static = static_plus_model(FAMILIES[family], want)
        ref = static(input_ids=gen.sequences[:, :-1], use_cache=False).logits[0, ids.shape[1] - 1:]
    torch.testing.assert_close(torch.stack(gen.logits, 1)[0], ref, **TOL)


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_plus_left_padded_batch_each_prompt_equals_its_static_model(family):
    model = _plus(family)
    prompts = [token_windows(1, n, seed=s) for n, s in ((8, 1), (5, 2))]
    width = max(p.shape[1] for p in prompts)
    ids = torch.full((2, width), FILL, dtype=torch.long)
    am = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - p.shape[1]:], am[i, width - p.shape[1]:] = p[0], 1
    with torch.no_grad():
        gen = model.generate(ids, attention_mask=am, max_new_tokens=4, do_sample=False,
                             pad_token_id=PAD, output_logits=True, return_dict_in_generate=True)
    logits = torch.stack(gen.logits, 1)
    for i, p in enumerate(prompts):
        want = expected_plus(model, p)
        seq = torch.cat([p, gen.sequences[i:i + 1, width:-1]], 1)
        with torch.no_grad():
            ref = static_plus_model(FAMILIES[family], want)(input_ids=seq, use_cache=False).logits[0]
        torch.testing.assert_close(logits[i], ref[p.shape[1] - 1:], **TOL)


def test_plus_prefix_then_cached_continuation_equals_static_model():
    """The `prefix` evaluation path: prefill, then the rest against the cache in one call."""
    model = _plus("llama")
    window = token_windows(1, 12, seed=7)
    prompt, rest = window[:, :6], window[:, 6:]
    want = expected_plus(model, prompt)
    with torch.no_grad():
        out = model(input_ids=prompt, use_cache=True)
        cont = model(input_ids=rest, use_cache=True, **{cache_kwarg(model): cache_in_output(out)})
        ref = static_plus_model(FAMILIES["llama"], want)(input_ids=window, use_cache=False).logits[0]
    torch.testing.assert_close(cont.logits[0], ref[6:], **TOL)


# ---- OWL allocation ------------------------------------------------------------------------

def _brute_ratio(weights, m):
    flat = torch.cat([w.detach().abs().flatten().double() for w in weights])
    return float((flat > m * flat.mean()).double().mean())


def test_outlier_ratio_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    ws = [torch.randn(20, 30, generator=g) ** 3, torch.randn(7, 30, generator=g)]
    for m in (1.0, 2.0, 5.0):
        assert outlier_ratio(ws, m) == pytest.approx(_brute_ratio(ws, m), abs=1e-9)


def test_owl_densities_hold_the_mean_and_follow_the_outliers():
    g = torch.Generator().manual_seed(0)
    layers = {i: [torch.randn(16, 16, generator=g) ** (1 + 2 * i)] for i in range(4)}
    d = owl_densities(layers, 0.4, m=3.0, lam=0.08)
    ratios = [_brute_ratio(layers[i], 3.0) for i in range(4)]
    assert sum(d.values()) / 4 == pytest.approx(0.4, abs=1e-12)
    assert max(d.values()) - min(d.values()) == pytest.approx(0.16, abs=1e-12)  # 2·lam
    order = sorted(range(4), key=lambda i: ratios[i])
    assert [d[i] for i in order] == sorted(d.values())
    with pytest.raises(ValueError, match="owl_lambda"):
        owl_densities(layers, 0.95, m=3.0, lam=0.2)


def test_sparsify_owl_gives_each_layer_its_density_and_rows_stay_exact_k():
    model = sparsify(FAMILIES["llama"](), "mumoe", 0.5, allocation="owl", owl_m=2.0)
    linears = {n: m for n, m in model.named_modules() if isinstance(m, MuMoELinear)}
    layers = {}
    for name, m in linears.items():
        layers.setdefault(int(name.split(".")[2]), []).append(m.weight)
    want = owl_densities(layers, 0.5, 2.0, 0.08)
    for name, m in linears.items():
        assert m.density == pytest.approx(want[int(name.split(".")[2])])
    assert len(set(round(m.density, 9) for m in linears.values())) == 2
    ids = token_windows(1, 6, seed=3)
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
    session = cache_in_output(out)._mumoe_session
    for name, m in linears.items():
        rs = session.weights[m]
        k = m.in_features - int(m.in_features * (1 - m.density))
        assert rs.values.shape[-2:] == (m.out_features, k)
        kept = unpack_bitmap(rs.bitmap, m.in_features).sum(-1)
        assert kept.eq(k).all()
    restore(model)


# ---- options -------------------------------------------------------------------------------

def test_plus_defaults_and_overrides():
    assert mumoe_options("mumoe-plus", {}) == PLUS
    assert mumoe_options("mumoe", {}).mean_shift == 0.0
    assert mumoe_options("mumoe-plus", {"allocation": "uniform"}).allocation == "uniform"
    model = _plus("llama", mean_shift=0.5)
    assert {m.mean_shift for m in model.modules() if isinstance(m, MuMoELinear)} == {0.5}


@pytest.mark.parametrize("opts,err,match", [
    ({"mean_shift": 1.5}, ValueError, "mean_shift"),
    ({"mean_shift": -0.1}, ValueError, "mean_shift"),
    ({"mean_shift": "a"}, TypeError, "mean_shift"),
    ({"allocation": "random"}, ValueError, "allocation"),
    ({"owl_m": 0}, ValueError, "owl_m"),
    ({"owl_lambda": 0.9}, ValueError, "owl_lambda"),
    ({"blocksize": 64}, TypeError, "blocksize"),
])
def test_bad_options_raise_naming_the_option(opts, err, match):
    model = FAMILIES["llama"]()
    with pytest.raises(err, match=match):
        sparsify(model, "mumoe", 0.5, **opts)
    assert not any(isinstance(m, MuMoELinear) for m in model.modules())


def test_owl_with_a_pattern_raises():
    with pytest.raises(ValueError, match="pattern"):
        sparsify(FAMILIES["llama"](), "mumoe-plus", pattern="2:4")


def test_option_strings():
    opts = parse_option_string("mean_shift=0.5, allocation=owl")
    assert opts == {"mean_shift": 0.5, "allocation": "owl"}
    assert option_label(opts) == "allocation=owl,mean_shift=0.5"
    assert option_label({}) is None
    with pytest.raises(ValueError, match="key=value"):
        parse_option_string("mean_shift")


def test_non_finite_activations_raise_with_mean_shift():
    m = MuMoELinear(_linear(), 0.5, PromptContext(), mean_shift=0.75)
    x = _x((6, 48))
    x[2, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"), torch.no_grad():
        m(x)


@pytest.mark.parametrize("method", ["mumoe", "mumoe-plus"])
def test_sparsifying_a_mumoe_model_again_raises(method):
    model = sparsify(FAMILIES["llama"](), method, 0.5)
    with pytest.raises(RuntimeError, match="already sparsified"):
        sparsify(model, "mumoe-plus", 0.5)
    with pytest.raises(RuntimeError, match="already sparsified"):
        sparsify(model, "mumoe", 0.5)
