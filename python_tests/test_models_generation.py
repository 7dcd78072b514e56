"""µ-MoE generation against an independent expectation: each prompt's masks from the reference
selection on that prompt alone, and a static model carrying them (helpers_generation.py). Runs on
every supported transformers release (.ci/run runs this file on both ends of the range)."""
import copy

import pytest
import torch

import mumoe_ext
from mumoe_ext.models import cache_weights, restore, sparsify
from mumoe_ext.models.hf_cache import cache_in_output, cache_kwarg

from helpers_generation import expected_masks, static_logits, static_model
from helpers_models import FAMILIES, token_windows

DENSITY = 0.5
PAD = 1
# Left padding is filled with an ordinary token: the config's pad id has a zero embedding in
# Llama, which would hide padding that leaks into the norms.
FILL = 9
# fp32 logits of the µ-MoE model and of the static one differ only by summation order
# (sparse GEMV vs dense GEMM): ~1e-7 on these tiny models.
TOL = dict(rtol=1e-5, atol=1e-5)


def _mumoe(family):
    model = FAMILIES[family]()
    return sparsify(model, "mumoe", DENSITY)


def _generate(model, ids, attention_mask=None, **kw):
    kw = dict(max_new_tokens=5, do_sample=False, pad_token_id=PAD, output_logits=True,
              return_dict_in_generate=True) | kw
    if attention_mask is None:
        attention_mask = torch.ones_like(ids)
    with torch.no_grad():
        return model.generate(ids, attention_mask=attention_mask, **kw)


def _left_pad(prompts):
    width = max(p.shape[1] for p in prompts)
    ids = torch.full((len(prompts), width), FILL, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - p.shape[1]:] = p[0]
        mask[i, width - p.shape[1]:] = 1
    return ids, mask


@pytest.mark.parametrize("cache", ["dynamic", "static"])
@pytest.mark.parametrize("family", ["llama", "opt"])
def test_greedy_generation_equals_static_model_with_prefill_masks(family, cache):
    model = _mumoe(family)
    ids = token_windows(1, 8, seed=5)
    want = expected_masks(model, ids, DENSITY)
    kw = {"cache_implementation": "static"} if cache == "static" else {}
    gen = _generate(model, ids, **kw)
    logits = torch.stack(gen.logits, 1)[0]
    static = static_logits(FAMILIES[family], want, gen.sequences[:, :-1])[ids.shape[1] - 1:]
    torch.testing.assert_close(logits, static, **TOL)


@pytest.mark.parametrize("cache", ["dynamic", "static"])
@pytest.mark.parametrize("family", ["llama", "opt"])
def test_left_padded_batch_each_prompt_equals_its_static_model(family, cache):
    model = _mumoe(family)
    prompts = [token_windows(1, 8, seed=7), token_windows(1, 5, seed=8), token_windows(1, 3, seed=9)]
    ids, mask = _left_pad(prompts)
    kw = {"cache_implementation": "static"} if cache == "static" else {}
    gen = _generate(model, ids, mask, **kw)
    logits = torch.stack(gen.logits, 1)
    for i, p in enumerate(prompts):
        seq = gen.sequences[i:i + 1, ids.shape[1] - p.shape[1]:-1]
        static = static_logits(FAMILIES[family], expected_masks(model, p, DENSITY), seq)
        # the batch's padding and other prompts add float noise in attention: looser than alone
        torch.testing.assert_close(logits[i], static[p.shape[1] - 1:], rtol=1e-4, atol=1e-4)


def test_generation_keeps_one_compact_weight_per_linear_equal_to_the_reference_masks():
    model = _mumoe("llama")
    ids = token_windows(1, 8, seed=5)
    want = expected_masks(model, ids, DENSITY)
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
    got = cache_weights(model, cache_in_output(out))
    assert set(got) == set(want)
    for name, rs in got.items():
        assert torch.equal(rs.mask().reshape(want[name].shape), want[name]), name
        assert rs.k == round(DENSITY * rs.d_in)


def test_one_selection_per_linear_then_sparse_decode():
    """generate selects every linear once (the prefill) and decodes with sparse_linear: the ops
    that ran, as the profiler saw them."""
    from torch.profiler import ProfilerActivity, profile
    model = _mumoe("llama")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _generate(model, token_windows(1, 8, seed=1), max_new_tokens=4)
    calls = {e.key: e.count for e in prof.key_averages() if e.key.startswith("mumoe::")}
    n_linears = 2 * 7
    assert calls.pop("mumoe::wanda_linear_compact") == n_linears
    assert calls.pop("mumoe::sparse_linear") == 3 * n_linears  # 4 new tokens: 1 from prefill + 3 steps
    calls.pop("mumoe::col_norms", None)  # inside wanda_linear_compact
    assert calls == {}


def test_beam_search_equals_static_model():
    model = _mumoe("llama")
    ids = token_windows(1, 8, seed=11)
    static = static_model(FAMILIES["llama"], expected_masks(model, ids, DENSITY))
    kw = dict(num_beams=3, num_return_sequences=2, max_new_tokens=6, output_logits=False)
    got = _generate(model, ids, **kw).sequences
    want = _generate(static, ids, **kw).sequences
    assert torch.equal(got, want)


def test_sampling_equals_static_model_with_the_same_seed():
    model = _mumoe("opt")
    ids = token_windows(1, 6, seed=12)
    static = static_model(FAMILIES["opt"], expected_masks(model, ids, DENSITY))
    kw = dict(do_sample=True, top_k=20, temperature=1.0, max_new_tokens=8, num_return_sequences=3)
    torch.manual_seed(3)
    got = _generate(model, ids, **kw).sequences
    torch.manual_seed(3)
    want = _generate(static, ids, **kw).sequences
    assert torch.equal(got, want)


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_prompt_caching_continues_with_the_prefix_masks(family):
    """A cached prefix, then generate(prefix + suffix, cache=copy): the masks are the ones the
    prefix chose (DESIGN §1: a mask belongs to the cache it was chosen with)."""
    model = _mumoe(family)
    prefix, suffix = token_windows(1, 6, seed=13), token_windows(1, 4, seed=14)
    with torch.no_grad():
        prompt_cache = cache_in_output(model(input_ids=prefix, use_cache=True))
    full = torch.cat([prefix, suffix], 1)
    gen = _generate(model, full, **{cache_kwarg(model): copy.deepcopy(prompt_cache)})
    logits = torch.stack(gen.logits, 1)[0]
    static = static_logits(FAMILIES[family], expected_masks(model, prefix, DENSITY),
                           gen.sequences[:, :-1])[full.shape[1] - 1:]
    torch.testing.assert_close(logits, static, **TOL)
    # the original cache was not touched and can serve another suffix
    assert cache_weights(model, prompt_cache)


def test_an_unrelated_prompt_in_between_does_not_change_a_continuation():
    model = _mumoe("llama")
    a, other, cont = token_windows(1, 8, seed=15), token_windows(1, 8, seed=16), token_windows(1, 3, seed=17)
    name = cache_kwarg(model)
    with torch.no_grad():
        cache_a = cache_in_output(model(input_ids=a, use_cache=True))
        alone = model(input_ids=cont, use_cache=True, **{name: copy.deepcopy(cache_a)}).logits
        model(input_ids=other, use_cache=True)  # another prompt's prefill
        model(input_ids=other, use_cache=False)  # and a plain forward
        after = model(input_ids=cont, use_cache=True, **{name: cache_a}).logits
    assert torch.equal(alone, after)
    static = static_logits(FAMILIES["llama"], expected_masks(model, a, DENSITY), torch.cat([a, cont], 1))
    torch.testing.assert_close(after[0], static[a.shape[1]:], **TOL)


def test_cache_passed_positionally_is_found():
    model = _mumoe("llama")
    a, cont = token_windows(1, 8, seed=18), token_windows(1, 2, seed=19)
    with torch.no_grad():
        cache = cache_in_output(model(input_ids=a, use_cache=True))
        by_name = model(input_ids=cont, use_cache=True, **{cache_kwarg(model): copy.deepcopy(cache)}).logits
        # LlamaForCausalLM.forward(input_ids, attention_mask, position_ids, cache, ...)
        positional = model(cont, None, None, cache, use_cache=True).logits
    assert torch.equal(by_name, positional)
    static = static_logits(FAMILIES["llama"], expected_masks(model, a, DENSITY), torch.cat([a, cont], 1))
    torch.testing.assert_close(positional[0], static[a.shape[1]:], **TOL)


def test_a_cache_mumoe_did_not_fill_raises():
    model = FAMILIES["llama"]()
    a = token_windows(1, 8, seed=20)
    with torch.no_grad():
        dense_cache = cache_in_output(model(input_ids=a, use_cache=True))
    sparsify(model, "mumoe", DENSITY)
    with pytest.raises(ValueError, match="did not prefill"):
        with torch.no_grad():
            model(input_ids=a[:, :1], use_cache=True, **{cache_kwarg(model): dense_cache})
    other = _mumoe("llama")
    with torch.no_grad():
        other_cache = cache_in_output(other(input_ids=a, use_cache=True))
    with pytest.raises(ValueError, match="another µ-MoE model"):
        with torch.no_grad():
            model(input_ids=a[:, :1], use_cache=True, **{cache_kwarg(model): other_cache})
    # the failed calls left no state behind: a plain forward still prunes from its own input
    with torch.no_grad():
        plain = model(input_ids=a, use_cache=False).logits[0]
    torch.testing.assert_close(plain, static_logits(FAMILIES["llama"], expected_masks(model, a, DENSITY), a), **TOL)


def test_legacy_tuple_cache_raises():
    model = _mumoe("llama")
    legacy = tuple((torch.zeros(1, 2, 3, 8), torch.zeros(1, 2, 3, 8)) for _ in range(2))
    with pytest.raises(TypeError, match="legacy tuple"):
        with torch.no_grad():
            model(token_windows(1, 1), None, None, legacy, use_cache=True)


def test_plain_forward_after_generation_prunes_from_its_own_input():
    model = _mumoe("opt")
    a, b = token_windows(1, 8, seed=21), token_windows(1, 8, seed=22)
    _generate(model, a)
    with torch.no_grad():
        plain = model(input_ids=b, use_cache=False).logits[0]
    torch.testing.assert_close(plain, static_logits(FAMILIES["opt"], expected_masks(model, b, DENSITY), b), **TOL)


def test_restore_after_generation_gives_the_dense_model_back():
    model = _mumoe("llama")
    ids = token_windows(1, 8, seed=23)
    _generate(model, ids)
    restore(model)
    with torch.no_grad():
        got = model(input_ids=ids).logits
        want = FAMILIES["llama"]()(input_ids=ids).logits
    assert torch.equal(got, want)


def test_generate_each_gives_every_prompt_exactly_what_it_gets_alone():
    from mumoe_ext.models import generate_each
    model = _mumoe("llama")
    prompts = [token_windows(1, 8, seed=24), token_windows(1, 3, seed=25)]
    ids, mask = _left_pad(prompts)
    got = generate_each(model, ids, mask, max_new_tokens=4, do_sample=False, pad_token_id=PAD)
    assert got.shape == (2, ids.shape[1] + 4)
    for i, p in enumerate(prompts):
        alone = _generate(model, p, max_new_tokens=4).sequences[0, p.shape[1]:]
        assert torch.equal(got[i, :ids.shape[1]], ids[i]) and torch.equal(got[i, ids.shape[1]:], alone)
    with pytest.raises(ValueError, match="contiguous"):
        generate_each(model, ids, torch.tensor([[1, 0, 1, 1, 1, 1, 1, 1], [1] * 8]), pad_token_id=PAD)


def test_compiled_forward_generates_what_the_static_model_gives():
    # docs/generation.md "torch.compile": model.forward compiled; the prompt hook and the decode
    # path run inside the compiled forward's graph breaks, and the result must not change.
    model = _mumoe("llama")
    ids = token_windows(1, 8, seed=5)
    want = expected_masks(model, ids, DENSITY)
    torch._dynamo.reset()
    eager = model.forward
    model.forward = torch.compile(eager)
    try:
        gen = _generate(model, ids)
    finally:
        model.forward = eager
        torch._dynamo.reset()
    logits = torch.stack(gen.logits, 1)[0]
    static = static_logits(FAMILIES["llama"], want, gen.sequences[:, :-1])[ids.shape[1] - 1:]
    torch.testing.assert_close(logits, static, **TOL)
