"""sparsify / restore on tiny random OPT, Llama and LLaVA models, every method."""
import pytest
import torch
from torch import nn

import mumoe_ext
from mumoe_ext.models import MuMoELinear, find_adapter, restore, select_linears, sparsify
from mumoe_ext.models.sparsify import METHODS

from helpers_models import FAMILIES, calib_batches, family_inputs, tiny_llama, tiny_opt

LAYERS = {"llama": "model.layers", "opt": "model.decoder.layers",
          "llava": "model.language_model.layers"}


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _k(d_in, density):
    import math
    return d_in - math.floor(d_in * (1 - density))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_adapter_finds_decoder_layers(family):
    model = FAMILIES[family]()
    assert find_adapter(model).layers_path == LAYERS[family]
    names = list(select_linears(model))
    assert names and all(n.startswith(LAYERS[family] + ".") for n in names)
    assert not any("lm_head" in n or "embed" in n or "vision" in n for n in names)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_method_patches_runs_and_restores(family, method):
    model = FAMILIES[family]()
    before = _snapshot(model)
    inputs = family_inputs(family)
    with torch.no_grad():
        dense_logits = model(**inputs).logits
    calib = calib_batches(family, 3) if method in ("wanda", "sparsegpt") else None
    assert sparsify(model, method, 0.5, calib=calib, progress=False) is model
    linears = select_linears(model)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert torch.isfinite(logits).all()
    if method == "dense":
        assert torch.equal(logits, dense_logits)
    elif method in ("mumoe", "mumoe-plus"):
        assert all(isinstance(m, MuMoELinear) for m in linears.values())
        assert list(model.state_dict()) == list(before)  # same keys: weight/bias kept
        assert not torch.allclose(logits, dense_logits)
    else:
        for name, lin in linears.items():
            kept = (lin.weight != 0).sum().item()
            if method == "wanda":  # exactly k per row
                assert ((lin.weight != 0).sum(1) == _k(lin.in_features, 0.5)).all(), name
            else:
                assert kept <= lin.weight.numel() - int(lin.weight.numel() * 0.5), name
    # lm_head and embeddings never pruned
    assert torch.equal(model.get_output_embeddings().weight, before[_key(model, "out")])
    assert torch.equal(model.get_input_embeddings().weight, before[_key(model, "in")])
    restore(model)
    assert not any(isinstance(m, MuMoELinear) for m in model.modules())
    after = _snapshot(model)
    assert list(after) == list(before)
    for k in before:
        assert torch.equal(after[k], before[k]), k


def _key(model, which):
    module = model.get_output_embeddings() if which == "out" else model.get_input_embeddings()
    return next(n for n, p in model.named_parameters() if p is module.weight)


def test_include_exclude_patterns():
    model = tiny_llama()
    mlp = select_linears(model, include="model.layers.*.mlp.*")
    assert set(mlp) == {f"model.layers.{i}.mlp.{p}_proj" for i in range(2)
                        for p in ("gate", "up", "down")}
    no_q = select_linears(model, exclude=["*.q_proj"])
    assert len(no_q) == 12 and not any(n.endswith("q_proj") for n in no_q)
    # lm_head is never selected, even when asked for
    assert "lm_head" not in select_linears(model, include=["*"])
    with pytest.raises(ValueError, match="include"):
        select_linears(model, include="nothing.*")


def test_include_limits_what_gets_pruned():
    model = tiny_llama()
    before = _snapshot(model)
    sparsify(model, "magnitude", 0.5, include="model.layers.1.mlp.*")
    for k, v in model.state_dict().items():
        changed = not torch.equal(v, before[k])
        assert changed == (k.startswith("model.layers.1.mlp.")), k


def test_bad_arguments_raise_clear_errors():
    model = tiny_llama()
    with pytest.raises(ValueError, match="method"):
        sparsify(model, "random", 0.5)
    with pytest.raises(ValueError, match="density"):
        sparsify(model, "magnitude", 1.5)
    with pytest.raises(ValueError, match="calib"):
        sparsify(model, "wanda", 0.5)
    with pytest.raises(ValueError, match="nsamples"):
        sparsify(model, "wanda", 0.5, calib=calib_batches("llama"), nsamples=0)
    with pytest.raises(TypeError, match="calib"):
        sparsify(model, "wanda", 0.5, calib=3.0)
    with pytest.raises(TypeError, match="options"):
        sparsify(model, "wanda", 0.5, calib=calib_batches("llama"), blocksize=4)
    sparsify(model, "mumoe", 0.5)
    with pytest.raises(RuntimeError, match="restore"):
        sparsify(model, "magnitude", 0.5)
    restore(model)
    restore(model)  # restoring twice is a no-op


def test_calibration_sources_agree():
    """A LongTensor of windows and the equivalent dicts of forward kwargs give the same pruning."""
    windows = torch.cat([b["input_ids"] for b in calib_batches("opt", 3)])
    a, b = tiny_opt(), tiny_opt()
    sparsify(a, "sparsegpt", 0.5, calib=windows, progress=False)
    sparsify(b, "sparsegpt", 0.5, calib=({"input_ids": w[None]} for w in windows), progress=False)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    c = tiny_opt()
    sparsify(c, "sparsegpt", 0.5, calib=windows, nsamples=2, progress=False)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_mumoe_linear_matches_wanda_linear_per_prompt():
    model = tiny_llama()
    sparsify(model, "mumoe", 0.4)
    lin = model.model.layers[0].mlp.up_proj
    x = torch.randn(2, 5, lin.in_features)
    expected = mumoe_ext.wanda_linear(x, lin.weight, lin.bias, 0.4)
    assert torch.equal(lin(x), expected)
    assert lin.in_features == 32 and lin.out_features == 64 and isinstance(lin, nn.Linear)


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_mumoe_padding_excluded_via_attention_mask(family):
    """A right-padded prompt in a batch gets the same logits as when run alone: its own norms
    (padding excluded), its own masks. OPT flattens (B*T, d) before fc1/fc2: covered too."""
    model = FAMILIES[family]()
    sparsify(model, "mumoe", 0.5)
    ids = torch.randint(4, 120, (2, 9), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    ids[1, 6:] = 1
    with torch.no_grad():
        both = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        alone = model(input_ids=ids[1:, :6], use_cache=False).logits
        first = model(input_ids=ids[:1], use_cache=False).logits
    torch.testing.assert_close(both[1, :6], alone[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(both[0], first[0], rtol=1e-5, atol=1e-5)
    # and the padding does matter if not masked out
    with torch.no_grad():
        unmasked = model(input_ids=ids[1:], use_cache=False).logits
    assert not torch.allclose(unmasked[0, :6], alone[0], atol=1e-4)


def test_mumoe_on_llava_prunes_only_the_language_model():
    from helpers_models import tiny_llava, llava_inputs
    model = tiny_llava()
    sparsify(model, "mumoe", 0.5)
    swapped = [n for n, m in model.named_modules() if isinstance(m, MuMoELinear)]
    assert swapped and all(n.startswith("model.language_model.layers.") for n in swapped)
    with torch.no_grad():
        out = model(**llava_inputs(batch=2)).logits
    assert out.shape[:2] == (2, 10) and torch.isfinite(out).all()


class Toy(nn.Module):
    """Not a Hugging Face model: reachable only through include patterns."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [4.0, -3.0, 2.0, 1.0]]))

    def forward(self, x):
        return self.proj(x)


def test_mumoe_by_hand_on_any_model_via_include():
    toy = sparsify(Toy(), "mumoe", 0.5, include="proj")
    # prompt A: column norms 1, 2, 3, 4 -> scores row 0 = [1, 2, 3, 4], row 1 = [4, 6, 6, 4]:
    # row 0 keeps columns 2, 3; row 1 keeps columns 1, 2 (tie 6 = 6, both kept)
    a = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    expected_a = a @ torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, -3.0, 2.0, 0.0]]).T
    assert torch.equal(toy(a), expected_a)
    # prompt B: norms 4, 3, 2, 1 -> row 0 scores [4, 3, 2, 1] keeps 0, 1; row 1 [16, 9, 4, 1] keeps 0, 1
    b = torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0]))
    expected_b = b @ torch.tensor([[1.0, 1.0, 0.0, 0.0], [4.0, -3.0, 0.0, 0.0]]).T
    assert torch.equal(toy(b), expected_b)
    # both prompts in one batch: each gets its own mask
    assert torch.equal(toy(torch.stack([a, b])), torch.stack([expected_a, expected_b]))
    restore(toy)
    assert type(toy.proj) is nn.Linear


def test_magnitude_and_dense_by_hand_via_include():
    toy = sparsify(Toy(), "magnitude", 0.5, include=["proj"])
    # one threshold for the whole matrix: the 4 largest |w| are 4, -3, 2 and the first 1
    assert toy.proj.weight.tolist() == [[1.0, 0.0, 0.0, 0.0], [4.0, -3.0, 2.0, 0.0]]
    restore(toy)
    assert toy.proj.weight.tolist() == Toy().proj.weight.tolist()
    dense = sparsify(Toy(), "dense", 0.5, include="proj")
    assert dense.proj.weight.tolist() == Toy().proj.weight.tolist()
