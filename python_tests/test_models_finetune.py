"""Training through µ-MoE: gradients flow through MuMoELinear (sparsify(model, "mumoe", d)), so a
LoRA-style fine-tune of a tiny random Llama lowers its loss with µ-MoE active, and a full
fine-tune changes only the weights the prompts keep."""
import pytest
import torch

from mumoe_ext import MuMoELinear, restore, sparsify
from helpers_models import VOCAB, tiny_llama


class LoRA(torch.nn.Module):
    """y += scale * B(A(x)); B starts at zero so training starts from the pruned model."""

    def __init__(self, d_in, d_out, rank=4, scale=2.0):
        super().__init__()
        self.a = torch.nn.Linear(d_in, rank, bias=False)
        self.b = torch.nn.Linear(rank, d_out, bias=False)
        torch.nn.init.zeros_(self.b.weight)
        self.scale = scale

    def forward(self, x):
        return self.scale * self.b(self.a(x))


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    # a learnable pattern: token t+1 = (token t + 1) mod 40, from random starts
    start = torch.randint(4, 44, (4, 1), generator=g)
    return (start + torch.arange(24)) % 40 + 4


def _lora_model(density):
    model = sparsify(tiny_llama(), "mumoe", density)
    for p in model.parameters():
        p.requires_grad_(False)
    adapters = torch.nn.ModuleList()
    for m in model.modules():
        if isinstance(m, MuMoELinear):
            lora = LoRA(m.in_features, m.out_features)
            adapters.append(lora)
            m.register_forward_hook(lambda mod, inp, out, lora=lora: out + lora(inp[0]))
    return model, adapters


def test_lora_finetune_lowers_the_loss_with_mumoe_active():
    torch.manual_seed(0)
    model, adapters = _lora_model(0.5)
    assert sum(isinstance(m, MuMoELinear) for m in model.modules()) == 14  # 7 per layer, 2 layers
    opt = torch.optim.Adam(adapters.parameters(), lr=2e-2)
    model.train()
    ids = _batch()
    losses = []
    for step in range(20):
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # every adapter got a gradient: it flowed back through every µ-MoE linear's x
    assert all(a.a.weight.grad is not None and a.a.weight.grad.abs().sum() > 0 for a in adapters)
    assert losses[-1] < 0.9 * losses[0] and max(losses[-5:]) < min(losses[:5]), losses
    restore(model)


def test_full_finetune_updates_only_the_kept_weights():
    torch.manual_seed(0)
    model = sparsify(tiny_llama(), "mumoe", 0.25)
    lin = next(m for m in model.modules() if isinstance(m, MuMoELinear))
    for p in model.parameters():
        p.requires_grad_(p is lin.weight)
    model.train()
    ids = _batch()
    seen = {}
    lin.register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0].detach()))  # returns None
    model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
    g = lin.weight.grad
    # the prompts of the batch prune separately: a weight gets a gradient only if some prompt kept it
    from mumoe_ext import reference
    kept = reference.wanda_mask(lin.weight.detach(), reference.col_norms(seen["x"]), 0.25).any(0)
    assert bool((g[~kept] == 0).all()) and bool((g[kept] != 0).any())
    restore(model)
