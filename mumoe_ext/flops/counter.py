"""FLOPs and MACs of one forward of a causal LM over one prompt of T tokens, from its config alone.

The model is built on the ``meta`` device (no weights, no memory) and run once on meta tensors;
forward hooks read the shapes every module really sees, so any Hugging Face decoder (OPT, Llama,
Mistral, Qwen, ...) is counted from what it executes. Conventions (docs/flops.md):

- A MAC is one multiply-accumulate and counts as 2 FLOPs. A linear's bias add takes the place of
  the last of its row's additions, so a linear is exactly 2·MACs FLOPs, with or without bias.
- Pruned linears (those `sparsify` selects) count their *kept* weights: T·d_out·k with
  k = d_in − floor(d_in·(1 − density)) per row (µ-MoE, Wanda), per matrix (magnitude) or per
  128-column block (SparseGPT), exactly what each method keeps. lm_head and any other linear
  are never pruned.
- Attention: QK^T and AV as executed (T×T scores per head, the causal upper triangle included);
  softmax and activations 1 op per element (calflops/fvcore); LayerNorm 5 per element (4 without
  affine), RMSNorm 4 (square, sum, scale, weight); a gated MLP's gate·up 1 per element; rotary
  embeddings 3 per rotated element (q·cos + rot(q)·sin); residual and position adds 1 per element.
- µ-MoE's own work, once per prompt and pruned linear (none at density 1, where the layer is the
  plain linear): column norms T·d_in MACs + d_in square roots; scores |W|·n one multiply per
  weight; selection 2 ops per weight (the radix histogram pass and the pass that gathers the
  threshold's bucket; the in-bucket refinement touches one bucket and is not counted); building
  the compact weight 1 op per weight (the keep test while writing it). Comparisons and histogram
  increments count as operations in the FLOPs column, as the paper counts its comparators.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .._checks import check_density, keep_count

ONLINE_METHODS = ("mumoe",)
OFFLINE_METHODS = ("magnitude", "wanda", "sparsegpt")
METHODS = ("dense",) + OFFLINE_METHODS + ONLINE_METHODS
SPARSEGPT_BLOCK = 128
LINE_ORDER = ("linears (pruned)", "attention QK^T, AV", "softmax", "norms", "activations",
              "rotary embedding", "residual and position adds", "other linears", "lm_head",
              "mumoe: column norms", "mumoe: scores", "mumoe: selection",
              "mumoe: compact weight")


@dataclass
class Line:
    flops: int = 0
    macs: int = 0

    def add(self, flops: int = 0, macs: int = 0):
        self.flops += int(flops)
        self.macs += int(macs)


@dataclass
class FlopsReport:
    model: str
    method: str
    density: float
    tokens: int
    lines: dict = field(default_factory=dict)  # name -> Line, in LINE_ORDER

    @property
    def flops(self) -> int:
        return sum(line.flops for line in self.lines.values())

    @property
    def macs(self) -> int:
        return sum(line.macs for line in self.lines.values())

    def record(self) -> dict:
        return {"model": self.model, "method": self.method, "density": self.density,
                "tokens": self.tokens, "flops": self.flops, "macs": self.macs,
                "lines": {name: asdict(line) for name, line in self.lines.items()}}


def kept_weights(method: str, d_out: int, d_in: int, density: float) -> int:
    """How many weights of a (d_out, d_in) linear `method` keeps at `density`, exactly."""
    if method == "dense" or density == 1.0:
        return d_out * d_in
    if method in ("wanda",) + ONLINE_METHODS:
        return d_out * keep_count(d_in, density, "count_flops")
    if method == "magnitude":
        n = d_out * d_in
        return n - int(math.floor(n * (1.0 - density)))
    if method == "sparsegpt":
        kept = 0
        for start in range(0, d_in, SPARSEGPT_BLOCK):
            n = d_out * min(SPARSEGPT_BLOCK, d_in - start)
            kept += n - int(math.floor(n * (1.0 - density)))
        return kept
    raise ValueError(f"count_flops: method must be one of {METHODS}, got {method!r}")


def _tokens(x: torch.Tensor, width: int) -> int:
    return x.numel() // width


class _Tally:
    """Forward hooks that add each module's work to the lines."""

    def __init__(self, model, pruned: dict, method: str, density: float):
        self.model, self.pruned, self.method, self.density = model, pruned, method, density
        self.lines = {name: Line() for name in LINE_ORDER}
        self.head = model.get_output_embeddings()
        config = model.config.get_text_config() if hasattr(model.config, "get_text_config") \
            else model.config
        self.config = config
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(getattr(config, "num_key_value_heads", None) or self.heads)
        self.rotary = any("Rotary" in type(m).__name__ for m in model.modules())
        self.attention_calls = 0

    def linear(self, name, module, x):
        tokens = _tokens(x, module.in_features)
        if module is self.head:
            self.lines["lm_head"].add(2 * tokens * module.weight.numel(),
                                      tokens * module.weight.numel())
            return
        if name not in self.pruned:
            n = module.out_features * module.in_features
            self.lines["other linears"].add(2 * tokens * n, tokens * n)
            return
        d_out, d_in = module.out_features, module.in_features
        kept = kept_weights(self.method, d_out, d_in, self.density)
        self.lines["linears (pruned)"].add(2 * tokens * kept, tokens * kept)
        if self.method in ONLINE_METHODS and self.density < 1.0:
            n = d_out * d_in
            self.lines["mumoe: column norms"].add(2 * tokens * d_in + d_in, tokens * d_in)
            self.lines["mumoe: scores"].add(n)
            self.lines["mumoe: selection"].add(2 * n)
            self.lines["mumoe: compact weight"].add(n)

    def attention(self, module, hidden):
        self.attention_calls += 1
        batch, tokens = hidden.shape[0], hidden.shape[1]
        head_dim = int(getattr(module, "head_dim", 0) or
                       getattr(self.config, "head_dim", 0) or hidden.shape[-1] // self.heads)
        scores = batch * self.heads * tokens * tokens  # key length = T: no cache
        self.lines["attention QK^T, AV"].add(2 * 2 * scores * head_dim, 2 * scores * head_dim)
        self.lines["softmax"].add(scores)
        if self.rotary:
            self.lines["rotary embedding"].add(3 * batch * tokens * (self.heads + self.kv_heads)
                                               * head_dim)

    def norm(self, module, x):
        kind = type(module).__name__
        if isinstance(module, nn.LayerNorm) or "LayerNorm" in kind:
            affine = getattr(module, "weight", None) is not None
            self.lines["norms"].add((5 if affine else 4) * x.numel())
        else:  # RMSNorm
            self.lines["norms"].add(4 * x.numel())

    def activation(self, x):
        self.lines["activations"].add(x.numel())

    def gated_mlp(self, module, x):
        up = getattr(module, "up_proj", None) or getattr(module, "gate_proj")
        self.lines["activations"].add(_tokens(x, up.in_features) * up.out_features)

    def decoder_layer(self, x):
        self.lines["residual and position adds"].add(2 * x.numel())

    def position_add(self, out):
        self.lines["residual and position adds"].add(out.numel())


def _is_activation(module) -> bool:
    mod = type(module).__module__
    return ((mod.startswith("torch.nn.modules.activation") and not isinstance(
        module, (nn.Softmax, nn.MultiheadAttention))) or mod.startswith("transformers.activations"))


def _hidden(args, kwargs):
    x = kwargs.get("hidden_states", args[0] if args else None)
    return x if isinstance(x, torch.Tensor) else None


def _install(tally: _Tally, model: nn.Module, layer_ids: set) -> list:
    handles = []

    def pre(fn):
        return lambda m, args, kwargs: fn(m, _hidden(args, kwargs))

    for name, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, nn.Linear):
            handles.append(module.register_forward_pre_hook(
                lambda m, args, kwargs, n=name: tally.linear(n, m, _hidden(args, kwargs)),
                with_kwargs=True))
        elif kind.endswith("Attention") and hasattr(module, "q_proj"):
            handles.append(module.register_forward_pre_hook(pre(tally.attention), with_kwargs=True))
        elif "Norm" in kind and ("LayerNorm" in kind or "RMSNorm" in kind):
            handles.append(module.register_forward_pre_hook(pre(tally.norm), with_kwargs=True))
        elif _is_activation(module):
            handles.append(module.register_forward_pre_hook(
                lambda m, args, kwargs: tally.activation(_hidden(args, kwargs)), with_kwargs=True))
        elif id(module) in layer_ids:
            handles.append(module.register_forward_pre_hook(
                lambda m, args, kwargs: tally.decoder_layer(_hidden(args, kwargs)),
                with_kwargs=True))
        elif "PositionalEmbedding" in kind:
            handles.append(module.register_forward_hook(lambda m, args, out: tally.position_add(out)))
        if hasattr(module, "gate_proj") and hasattr(module, "up_proj"):
            handles.append(module.register_forward_pre_hook(pre(tally.gated_mlp), with_kwargs=True))
    return handles


@contextlib.contextmanager
def meta_safe_rotary(model: nn.Module):
    """Within: torch < 2.14 has no autocast state for the meta device, and transformers' rotary embeddings
    open `torch.autocast(device_type=x.device.type, enabled=False)`: on meta, give those modules a
    forward that returns cos/sin of the right shape (their FLOPs are counted in the attention
    line, not here)."""
    try:
        torch.get_autocast_dtype("meta")
        yield
        return
    except RuntimeError:
        pass
    patched = []
    for m in model.modules():
        inv_freq = getattr(m, "inv_freq", None)
        if "Rotary" not in type(m).__name__ or inv_freq is None or inv_freq.device.type != "meta":
            continue

        def shaped(x, position_ids, *args, _dim=2 * inv_freq.numel(), **kwargs):
            cos = torch.empty(*position_ids.shape, _dim, device=x.device, dtype=x.dtype)
            return cos, torch.empty_like(cos)
        m.forward = shaped
        patched.append(m)

    try:
        yield
    finally:
        for m in patched:
            del m.forward


def meta_model(config) -> nn.Module:
    """The causal LM of `config` on the meta device (eager attention, so every op is a module
    call or a plain tensor op; the count does not depend on the attention kernel)."""
    from transformers import AutoModelForCausalLM
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    return model.eval()


@torch.no_grad()
def count_flops(config_or_model, density: float = 1.0, tokens: int = 128, method: str = "mumoe",
                name: str | None = None) -> FlopsReport:
    """FLOPs and MACs of one forward over one prompt of `tokens` tokens, line by line.

    config_or_model: a transformers config (the model is built on the meta device) or a model,
    which is run once on zero token ids on its own device (pass a meta model or a config for big
    models). Nothing is pruned: the density only enters the count."""
    from ..models.adapters import find_adapter
    from ..models.selection import select_linears

    check_density(density, "count_flops")
    if method not in METHODS:
        raise ValueError(f"count_flops: method must be one of {METHODS}, got {method!r}")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"count_flops: tokens must be a positive int, got {tokens!r}")
    if method == "dense":
        density = 1.0
    model = config_or_model if isinstance(config_or_model, nn.Module) else meta_model(config_or_model)
    pruned = select_linears(model)
    layers = {id(layer) for layer in find_adapter(model).layers(model)}
    tally = _Tally(model, pruned, method, float(density))
    handles = _install(tally, model, layers)
    try:
        device = next(model.parameters()).device
        ids = torch.zeros(1, tokens, dtype=torch.long, device=device)
        # an explicit all-ones mask: without one, transformers looks for packed sequences in
        # the position ids, a data-dependent branch that meta tensors cannot take
        with meta_safe_rotary(model):
            model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    if tally.attention_calls != len(layers):
        raise ValueError(f"count_flops: found {tally.attention_calls} attention calls for "
                         f"{len(layers)} decoder layers of {type(model).__name__}; only attention "
                         f"modules named *Attention with a q_proj (OPT, Llama, Mistral, Qwen, ...) "
                         f"are counted")
    label = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
    lines = {k: v for k, v in tally.lines.items() if v.flops or v.macs}
    return FlopsReport(label, method, float(density), tokens, lines)
