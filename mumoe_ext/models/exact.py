"""Exact mode for batches: generate every prompt of a batch on its own, unpadded.

A prompt in a padded batch gets its own norms and masks (padding never counts), and our ops give it
bit for bit what it gets alone. But attention over padded keys and the vendor GEMMs on other shapes
round differently (~1e-7 in fp32), and the hard top-k selection of the next layer can turn such a
difference into a few swapped mask entries, which then grow layer by layer (docs/generation.md has
the measured amounts). Where every bit matters (comparing runs, evaluating), `generate_each` gives
each prompt exactly what it gets alone, at the price of batch-1 speed.
"""
from __future__ import annotations

import torch


@torch.no_grad()
def generate_each(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                  **generate_kwargs) -> torch.Tensor:
    """`model.generate(input_ids, attention_mask, **kw)`, one unpadded prompt at a time.

    Returns the sequences as a batched generate lays them out: each row is its input row (padding
    included) followed by its new tokens, right-padded with `pad_token_id` to the longest row.
    Padding may be on either side but must leave each prompt's tokens contiguous."""
    if generate_kwargs.get("return_dict_in_generate"):
        raise ValueError("generate_each returns the sequences only; drop return_dict_in_generate")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, tokens), got shape {tuple(input_ids.shape)}")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask must have input_ids' shape {tuple(input_ids.shape)}, "
                         f"got {tuple(attention_mask.shape)}")
    pad = generate_kwargs.get("pad_token_id", model.generation_config.pad_token_id)
    if pad is None:
        raise ValueError("generate_each needs pad_token_id (in the call or the generation config)")
    rows = []
    for ids, keep in zip(input_ids, attention_mask.bool()):
        where = keep.nonzero().flatten()
        if where.numel() == 0 or where.numel() != int(where[-1] - where[0]) + 1:
            raise ValueError("generate_each: each row's attention_mask must keep one contiguous run "
                             "of at least one token")
        prompt = ids[int(where[0]):int(where[-1]) + 1].unsqueeze(0)
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), **generate_kwargs)
        rows.append(torch.cat([ids, out[0, prompt.shape[1]:]]))
    width = max(r.numel() for r in rows)
    return torch.stack([torch.nn.functional.pad(r, (0, width - r.numel()), value=int(pad)) for r in rows])
