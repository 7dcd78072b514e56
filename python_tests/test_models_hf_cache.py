"""The transformers behaviour µ-MoE's phase detection relies on, pinned on every supported release,
and the padding rule for 2-D and 4-D attention masks."""
import copy
import inspect

import pytest
import torch

from mumoe_ext.models.hf_cache import cache_in_output, cache_kwarg, cache_length, find_cache
from mumoe_ext.models.prompt_context import CacheSession, PromptContext, session_of, tokens_mask, SESSION_ATTR

from helpers_models import FAMILIES, token_windows


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_forward_names_its_cache_argument_and_returns_a_cache(family):
    from transformers.cache_utils import Cache
    model = FAMILIES[family]()
    name = cache_kwarg(model)
    assert name in inspect.signature(model.forward).parameters
    with torch.no_grad():
        out = model(input_ids=token_windows(1, 4), use_cache=True)
    cache = cache_in_output(out)
    assert isinstance(cache, Cache) and cache_length(cache) == 4
    assert find_cache((), {name: cache}) is cache and find_cache((None, cache), {}) is cache


def test_our_attribute_survives_on_a_cache_and_its_deep_copy():
    from transformers import DynamicCache, StaticCache
    model = FAMILIES["llama"]()
    ctx = PromptContext()
    for cache in (DynamicCache(), StaticCache(config=model.config, max_cache_len=8)):
        session = CacheSession(ctx, 1)
        session.weights["w"] = torch.ones(2)
        setattr(cache, SESSION_ATTR, session)
        clone = copy.deepcopy(cache)
        assert session_of(cache) is session and session_of(clone) is not session
        assert session_of(clone).owned_by(ctx) and session_of(clone).weights["w"] is session.weights["w"]


def test_static_cache_length_is_positive_after_a_left_padded_prefill():
    """cache_length is only trusted to be > 0 once the cache holds tokens (4.57 undercounts)."""
    model = FAMILIES["llama"]()
    ids = torch.cat([torch.ones(1, 3, dtype=torch.long), token_windows(1, 5)], 1)
    am = torch.ones_like(ids)
    am[0, :3] = 0
    seen = []
    model.register_forward_pre_hook(lambda m, a, kw: seen.append(cache_length(find_cache(a, kw))),
                                    with_kwargs=True)
    with torch.no_grad():
        model.generate(ids, attention_mask=am, max_new_tokens=3, do_sample=False, pad_token_id=1,
                       cache_implementation="static")
    assert seen[0] == 0 and all(n > 0 for n in seen[1:]) and len(seen) == 3


def _causal_4d(keep, dtype=torch.bool, unmask_empty_rows=False):
    """What transformers builds: (B, 1, T, K) from a (B, T) padding mask, K = T + 2 free slots."""
    B, T = keep.shape
    K = T + 2
    causal = torch.arange(K)[None, :] <= torch.arange(T)[:, None]
    keys = torch.cat([keep, torch.zeros(B, 2, dtype=torch.bool)], 1)
    allowed = causal[None] & keys[:, None, :]
    if unmask_empty_rows:  # SDPA-safe masks let fully masked rows attend everything
        allowed = allowed | ~allowed.any(-1, keepdim=True)
    allowed = allowed[:, None]
    if dtype == torch.bool:
        return allowed
    return torch.where(allowed, 0.0, torch.finfo(dtype).min).to(dtype)


@pytest.mark.parametrize("unmask", [False, True], ids=["plain", "unmasked-rows"])
@pytest.mark.parametrize("dtype", [torch.bool, torch.float32, torch.bfloat16])
def test_tokens_mask_reads_padding_from_4d_masks(dtype, unmask):
    keep = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    got = tokens_mask(_causal_4d(keep, dtype, unmask), 3, 5, past=0)
    assert torch.equal(got, keep)
    assert tokens_mask({"full_attention": _causal_4d(keep, dtype, unmask)}, 3, 5, past=0).equal(keep)


def test_tokens_mask_2d_takes_this_calls_columns_and_none_when_all_kept():
    am = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    assert tokens_mask(am, 2, 2, past=2) is None  # this call's two tokens are both real
    assert torch.equal(tokens_mask(am, 2, 4, past=0), am.bool())
    assert tokens_mask(torch.ones(2, 4), 2, 4, past=0) is None
    with pytest.raises(ValueError, match="does not cover"):
        tokens_mask(am, 2, 5, past=0)
    with pytest.raises(TypeError, match="cannot read padding"):
        tokens_mask(object(), 2, 4, past=0)
