"""Each offline method against a hand-checkable expectation, and offline Wanda's parity with
the reference algorithm (locuslab/wanda) and with `mumoe_ext.wanda_mask`."""
import pytest
import torch
from torch import nn

import mumoe_ext
from mumoe_ext.pruning import (HessianStats, WandaStats, magnitude_mask, prune_layers,
                               sparsegpt_weight)

from helpers_models import calib_batches, tiny_llama


class ToyStack(nn.Module):
    """input_ids -> embedding -> layers (plain linears): the smallest model the engine can drive."""

    def __init__(self, *linears, d=4, vocab=8):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(linears)

    def forward(self, input_ids=None, use_cache=False):
        x = self.embed(input_ids)
        for layer in self.layers:
            x = layer(x)
        return x


def _linear(weight):
    weight = torch.as_tensor(weight, dtype=torch.float32)
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
    return lin


def test_magnitude_keeps_largest_of_whole_matrix():
    w = torch.tensor([[1.0, -5.0, 2.0], [0.5, 4.0, -3.0]])
    assert magnitude_mask(w, 0.5).tolist() == [[False, True, False], [False, True, True]]
    # one threshold per matrix, not per row: row 0 keeps 1 weight, row 1 keeps 2
    ties = torch.ones(2, 3)
    assert magnitude_mask(ties, 0.5).tolist() == [[True, True, True], [False, False, False]]


def test_wanda_uses_calibration_norms_per_row():
    # embedding rows give tokens whose columns have norms 1, 2, 3, 4: all-ones weights keep
    # the two columns with the largest norms in every row
    stack = ToyStack(_linear(torch.ones(2, 4)))
    with torch.no_grad():
        stack.embed.weight.copy_(torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0])).repeat(2, 1))
    batches = [{"input_ids": torch.tensor([[0, 1, 2, 3]])}]
    prune_layers(stack, stack.layers, "wanda", 0.5, batches, progress=False)
    assert stack.layers[0].weight.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1]]


def test_wanda_second_layer_sees_pruned_first_layer():
    # layer 0 keeps column 1 only (norm 2 > 1), so layer 1 sees x1 = [0, 2]-driven outputs
    first = _linear([[1.0, 1.0], [1.0, 1.0]])
    second = _linear([[1.0, 1.0]])
    stack = ToyStack(first, second, d=2, vocab=2)
    with torch.no_grad():
        stack.embed.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    seen = {}
    prune_layers(stack, stack.layers, "wanda", 0.5, [{"input_ids": torch.tensor([[0, 1]])}],
                 progress=False, on_pruned=lambda name, lin, st: seen.setdefault(id(lin), st.norms))
    assert first.weight.tolist() == [[0.0, 1.0], [0.0, 1.0]]
    # pruned layer 0 maps tokens to (0, 0) and (2, 2): column norms 2 and 2, tie -> column 0
    assert torch.allclose(seen[id(second)], torch.tensor([2.0, 2.0]))
    assert second.weight.tolist() == [[1.0, 0.0]]


def test_sparsegpt_diagonal_hessian_is_blockwise_magnitude_without_update():
    w = torch.tensor([[4.0, -1.0, 0.5, 3.0], [2.0, 3.0, -6.0, 1.0]])
    out = sparsegpt_weight(w, torch.eye(4), 0.5, blocksize=2, percdamp=0.0)
    # per 2x2 block keep the 2 largest |w| (over the whole block), others unchanged
    assert out.tolist() == [[4.0, 0.0, 0.0, 3.0], [0.0, 3.0, -6.0, 0.0]]


def test_sparsegpt_obs_update_by_hand():
    # H = [[2, 1], [1, 2]]: scores w1^2 (ac-b^2)/c = 1.5 < w2^2 c = 2, so w1 is pruned and the
    # OBS update moves it onto w2: w2 + w1 * b / c = 1.5
    out = sparsegpt_weight(torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 1.0], [1.0, 2.0]]),
                           0.5, blocksize=2, percdamp=0.0)
    assert torch.allclose(out, torch.tensor([[0.0, 1.5]]))


def test_sparsegpt_reduces_reconstruction_error_versus_plain_mask():
    torch.manual_seed(0)
    x = torch.randn(256, 16) @ torch.randn(16, 16)  # correlated inputs
    w = torch.randn(8, 16)
    stats = HessianStats(_linear(w))
    stats.add(x.unsqueeze(0))
    out = sparsegpt_weight(w, stats.hessian, 0.5, blocksize=8)
    assert ((out == 0).sum(dim=None) == 64)
    plain = w * (out != 0)
    assert (x @ (w - out).T).square().sum() < (x @ (w - plain).T).square().sum()


def test_hessian_matches_reference_running_average():
    torch.manual_seed(1)
    lin = _linear(torch.randn(3, 5))
    stats = HessianStats(lin)
    batches = [torch.randn(1, 7, 5), torch.randn(1, 4, 5)]
    H, n = torch.zeros(5, 5), 0
    for b in batches:  # IST-DASLab/sparsegpt add_batch
        stats.add(b)
        H *= n / (n + 1)
        n += 1
        inp = (2 / n) ** 0.5 * b.reshape(-1, 5).t()
        H += inp @ inp.t()
    assert torch.allclose(stats.hessian, H, rtol=1e-5, atol=1e-6)


def _reference_wanda(model, batches, density):
    """locuslab/wanda prune_wanda on the model's decoder layers: scaler_row running mean of squared
    norms, ascending stable sort per row, prune the first int(d_in * sparsity)."""
    layers = model.model.layers
    inps, kws = [], []

    class Stop(Exception):
        pass

    def catch(mod, args, kwargs):
        inps.append(args[0])
        kws.append({k: v for k, v in kwargs.items() if k != "past_key_values"})
        raise Stop

    h = layers[0].register_forward_pre_hook(catch, with_kwargs=True)
    for b in batches:
        try:
            model(**b, use_cache=False)
        except Stop:
            pass
    h.remove()
    masks = {}
    for i, layer in enumerate(layers):
        subset = {n: m for n, m in layer.named_modules() if isinstance(m, nn.Linear)}
        scaler = {n: torch.zeros(m.in_features) for n, m in subset.items()}
        count = {n: 0 for n in subset}

        def hook(name):
            def fn(mod, args):
                x = args[0].reshape(-1, args[0].shape[-1]).float()
                scaler[name] *= count[name] / (count[name] + 1)
                count[name] += 1
                scaler[name] += x.norm(dim=0) ** 2 / count[name]
            return fn

        hs = [m.register_forward_pre_hook(hook(n)) for n, m in subset.items()]
        for x, kw in zip(inps, kws):
            layer(x, **kw)
        for hh in hs:
            hh.remove()
        for n, m in subset.items():
            metric = m.weight.abs() * scaler[n].sqrt().unsqueeze(0)
            idx = torch.sort(metric, dim=-1, stable=True).indices
            n_prune = int(m.in_features * (1 - density))
            pruned = torch.zeros_like(metric, dtype=torch.bool).scatter_(1, idx[:, :n_prune], True)
            with torch.no_grad():
                m.weight[pruned] = 0
            masks[f"model.layers.{i}.{n}"] = ~pruned
        inps = [layer(x, **kw) for x, kw in zip(inps, kws)]
        inps = [o[0] if isinstance(o, tuple) else o for o in inps]
    return masks


@pytest.mark.parametrize("density", [0.6, 0.5, 0.4])
def test_offline_wanda_matches_reference_and_wanda_mask(density):
    batches = calib_batches("llama", 3)
    ref_model = tiny_llama()
    with torch.no_grad():
        expected = _reference_wanda(ref_model, batches, density)
    model = tiny_llama()
    originals = {n: m.weight.detach().clone() for n, m in model.named_modules()
                 if isinstance(m, nn.Linear)}
    names = {id(m): n for n, m in model.named_modules()}
    norms = {}
    prune_layers(model, model.model.layers, "wanda", density, batches, progress=False,
                 on_pruned=lambda name, lin, st: norms.__setitem__(names[id(lin)], st.norms.clone()))
    assert set(norms) == set(expected)
    for name, keep in expected.items():
        weight = model.get_submodule(name).weight
        ours = weight != 0
        assert torch.equal(ours, keep), name
        assert torch.equal(ours, mumoe_ext.wanda_mask(originals[name], norms[name], density)), name
        assert torch.equal(weight, originals[name] * keep)


def test_sparsify_wanda_equals_engine_on_same_windows():
    from mumoe_ext.models import restore, sparsify
    windows = torch.cat([b["input_ids"] for b in calib_batches("llama", 3)])
    a, b = tiny_llama(), tiny_llama()
    sparsify(a, "wanda", 0.5, calib=windows, progress=False)
    prune_layers(b, b.model.layers, "wanda", 0.5, [{"input_ids": w[None]} for w in windows],
                 progress=False)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), n
    restore(a)
    for p, q in zip(a.parameters(), tiny_llama().parameters()):
        assert torch.equal(p, q)


class ScaledLayer(nn.Module):
    """A layer called with an extra positional argument (as CLIP's encoder calls its layers)."""

    def __init__(self, linear):
        super().__init__()
        self.linear = linear

    def forward(self, x, scale, *, shift=0.0):
        return self.linear(x * scale) + shift


class PositionalStack(ToyStack):
    def forward(self, input_ids=None, use_cache=False):
        x = self.embed(input_ids)
        for layer in self.layers:
            x = layer(x, 2.0, shift=1.0)
        return x


def test_engine_keeps_positional_and_keyword_layer_arguments():
    first, second = _linear(torch.ones(2, 2)), _linear(torch.ones(1, 2))
    stack = PositionalStack(ScaledLayer(first), ScaledLayer(second), d=2, vocab=2)
    with torch.no_grad():
        stack.embed.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
    seen = {}
    prune_layers(stack, stack.layers, "wanda", 0.5, [{"input_ids": torch.tensor([[0, 1]])}],
                 progress=False, on_pruned=lambda n, lin, st: seen.setdefault(id(lin), st.norms))
    # layer 0 sees 2 * embeddings: norms (2, 6)
    assert torch.allclose(seen[id(first)], torch.tensor([2.0, 6.0]))
    # pruned layer 0 (keeps column 1) + shift 1 gives rows (1, 1) and (7, 7); layer 1 sees
    # 2x that: (2, 2) and (14, 14), column norms sqrt(4 + 196)
    assert torch.allclose(seen[id(second)], torch.tensor([200.0, 200.0]).sqrt())
