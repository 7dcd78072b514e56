"""µ-MoE generation: the masks are chosen at prefill and reused for every decode step."""
import pytest
import torch

import mumoe_ext
from mumoe_ext.models import MuMoELinear, restore, sparsify
from mumoe_ext.models.mumoe_linear import SPARSE_DECODE_MAX_T

from helpers_models import FAMILIES, token_windows


def _prompt_masks(model, ids, density):
    """The Wanda mask of every µ-MoE linear from the prompt's own activations (plain forward)."""
    norms, handles = {}, []
    for name, m in model.named_modules():
        if isinstance(m, MuMoELinear):
            handles.append(m.register_forward_pre_hook(
                lambda mod, args, name=name: norms.__setitem__(name, mumoe_ext.col_norms(args[0]))))
    with torch.no_grad():
        model(input_ids=ids, use_cache=False)
    for h in handles:
        h.remove()
    return {n: mumoe_ext.wanda_mask(model.get_submodule(n).weight, v.reshape(-1), density)
            for n, v in norms.items()}


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_generation_reuses_prefill_mask(family):
    density = 0.5
    model = FAMILIES[family]()
    sparsify(model, "mumoe", density)
    ids = token_windows(1, 8, seed=5)
    expected = _prompt_masks(model, ids, density)
    with torch.no_grad():
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5,
                             do_sample=False, output_logits=True, return_dict_in_generate=True,
                             pad_token_id=1)
    linears = {n: m for n, m in model.named_modules() if isinstance(m, MuMoELinear)}
    for name, lin in linears.items():
        assert torch.equal(lin._mask.reshape(expected[name].shape), expected[name]), name
        if mumoe_ext.__dict__.get("prune_rows") is not None:
            assert lin._rowsparse is not None  # decode ran on the compact RowSparse weight
    gen_logits = torch.stack(gen.logits, dim=1)[0]

    # a static model carrying the prefill masks reproduces every generated step's logits
    restore(model)
    with torch.no_grad():
        for name, mask in expected.items():
            model.get_submodule(name).weight.mul_(mask)
        static = model(input_ids=gen.sequences[:, :-1], use_cache=False).logits[0, ids.shape[1] - 1:]
    torch.testing.assert_close(gen_logits, static, rtol=1e-4, atol=1e-4)


def test_decode_differs_from_re_pruning_every_step():
    model = FAMILIES["llama"]()
    sparsify(model, "mumoe", 0.4)
    ids = token_windows(1, 8, seed=6)
    with torch.no_grad():
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4,
                             do_sample=False, output_logits=True, return_dict_in_generate=True,
                             pad_token_id=1)
        replay = model(input_ids=gen.sequences[:, :-1], use_cache=False).logits[0, 7:]
    assert not torch.allclose(torch.stack(gen.logits, 1)[0], replay, atol=1e-4)


def test_left_padded_batch_generation_matches_single_prompts():
    model = FAMILIES["llama"]()
    sparsify(model, "mumoe", 0.5)
    a, b = token_windows(1, 8, seed=7), token_windows(1, 5, seed=8)
    ids = torch.cat([a, torch.cat([torch.ones(1, 3, dtype=torch.long), b], 1)])
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    kw = dict(max_new_tokens=4, do_sample=False, pad_token_id=1)
    with torch.no_grad():
        both = model.generate(ids, attention_mask=mask, **kw)
        alone_b = model.generate(b, attention_mask=torch.ones_like(b), **kw)
        alone_a = model.generate(a, attention_mask=torch.ones_like(a), **kw)
    assert torch.equal(both[0, 8:], alone_a[0, 8:])
    assert torch.equal(both[1, 8:], alone_b[0, 5:])


def test_short_decode_chunks_use_sparse_path_and_long_ones_masked_dense():
    assert SPARSE_DECODE_MAX_T >= 1
    model = FAMILIES["llama"]()
    sparsify(model, "mumoe", 0.5)
    ids = token_windows(1, 12, seed=9)
    with torch.no_grad():
        out = model(input_ids=ids[:, :6], use_cache=True)
        cont = model(input_ids=ids[:, 6:], past_key_values=out.past_key_values, use_cache=True)
    masks = {n: m._mask.clone() for n, m in model.named_modules() if isinstance(m, MuMoELinear)}
    restore(model)
    with torch.no_grad():
        for name, mask in masks.items():
            model.get_submodule(name).weight.mul_(mask.reshape(model.get_submodule(name).weight.shape))
        static = model(input_ids=ids, use_cache=False).logits[:, 6:]
    torch.testing.assert_close(cont.logits, static, rtol=1e-4, atol=1e-4)
