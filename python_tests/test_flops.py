"""`mumoe flops` / `mumoe_ext.flops.count_flops`: FLOPs and MACs from a config on the meta device.

Checked against independent expectations: kept-weight counts against the weights each method
really prunes; every line against closed forms from the config; the dense totals against calflops
(optional dependency; skipped without it) line by line; and the paper's Table 4 for OPT-13B at 128
tokens under the conventions docs/flops.md names.
"""
import json

import pytest
import torch

from helpers_models import VOCAB, token_windows
from mumoe_ext.flops import count_flops, kept_weights, meta_model, opt_13b_config
from mumoe_ext.flops.cli import human
from mumoe_ext.flops.counter import meta_safe_rotary

DENSITIES = [1.0, 0.8, 0.55, 0.2]
METHODS = ["magnitude", "wanda", "sparsegpt"]
TOKENS = 24


def opt_config(hidden=160, ffn=192, layers=2, heads=4):
    from transformers import OPTConfig
    return OPTConfig(vocab_size=VOCAB, hidden_size=hidden, ffn_dim=ffn, num_hidden_layers=layers,
                     num_attention_heads=heads, max_position_embeddings=128,
                     word_embed_proj_dim=hidden, pad_token_id=1, bos_token_id=2, eos_token_id=3)


def llama_config():
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=VOCAB, hidden_size=96, intermediate_size=200,
                       num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2,
                       max_position_embeddings=128, tie_word_embeddings=False)


CONFIGS = {"opt": opt_config, "llama": llama_config}


def _linear_shapes(config):
    """(d_out, d_in) of every decoder-layer linear, from the config alone."""
    h = config.hidden_size
    if config.model_type == "opt":
        per_layer = [(h, h)] * 4 + [(config.ffn_dim, h), (h, config.ffn_dim)]
    else:
        hd = h // config.num_attention_heads
        kv = config.num_key_value_heads * hd
        i = config.intermediate_size
        per_layer = [(h, h), (kv, h), (kv, h), (h, h), (i, h), (i, h), (h, i)]
    return per_layer * config.num_hidden_layers


# --- kept weights are what the methods keep -----------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("density", [0.8, 0.55, 0.3], ids=lambda d: f"d{d}")
def test_kept_weights_equal_what_sparsify_keeps(method, density):
    from transformers import OPTForCausalLM

    from mumoe_ext import sparsify
    from mumoe_ext.models.selection import select_linears
    torch.manual_seed(0)
    model = OPTForCausalLM(opt_config()).eval()  # d_in 160 and 192: SparseGPT blocks 128 + rest
    sparsify(model, method, density, calib=token_windows(4, 16), nsamples=4, progress=False)
    for name, lin in select_linears(model).items():
        d_out, d_in = lin.weight.shape
        assert kept_weights(method, d_out, d_in, density) == int((lin.weight != 0).sum()), name


def test_kept_weights_mumoe_equals_the_mask():
    import mumoe_ext
    w, n = torch.randn(37, 203), torch.rand(203)
    for density in DENSITIES:
        mask = mumoe_ext.wanda_mask(w, n, density)
        assert kept_weights("mumoe", 37, 203, density) == int(mask.sum())


# --- every line against closed forms -------------------------------------------------------------

@pytest.mark.parametrize("family", list(CONFIGS))
@pytest.mark.parametrize("density", DENSITIES, ids=lambda d: f"d{d}")
def test_lines_match_closed_forms(family, density):
    config = CONFIGS[family]()
    r = count_flops(config, density, TOKENS, "mumoe")
    T, h, L = TOKENS, config.hidden_size, config.num_hidden_layers
    H = config.num_attention_heads
    hd = h // H
    shapes = _linear_shapes(config)
    kept = sum(kept_weights("mumoe", o, i, density) for o, i in shapes)
    lines = r.lines
    assert lines["linears (pruned)"].macs == T * kept
    assert lines["linears (pruned)"].flops == 2 * T * kept
    assert lines["attention QK^T, AV"].macs == L * 2 * H * T * T * hd
    assert lines["softmax"].flops == L * H * T * T
    assert lines["lm_head"].macs == T * h * VOCAB
    if family == "opt":
        assert lines["norms"].flops == (2 * L + 1) * T * h * 5
        assert lines["activations"].flops == L * T * config.ffn_dim  # ReLU
        assert lines["residual and position adds"].flops == 2 * L * T * h + T * h
        assert "rotary embedding" not in lines
    else:
        i = config.intermediate_size
        assert lines["norms"].flops == (2 * L + 1) * T * h * 4
        assert lines["activations"].flops == L * T * i * 2  # SiLU + gate·up
        assert lines["rotary embedding"].flops == L * 3 * T * (H + config.num_key_value_heads) * hd
        assert lines["residual and position adds"].flops == 2 * L * T * h
    weights = sum(o * i for o, i in shapes)
    if density == 1.0:
        assert not any(k.startswith("mumoe:") for k in lines)  # the layer is the plain linear
    else:
        assert lines["mumoe: column norms"].macs == T * sum(i for _, i in shapes)
        assert lines["mumoe: scores"].flops == weights
        assert lines["mumoe: selection"].flops == 2 * weights
        assert lines["mumoe: compact weight"].flops == weights
    assert r.macs == sum(v.macs for v in lines.values())
    rec = r.record()
    assert rec["flops"] == r.flops and rec["density"] == density and set(rec["lines"]) == set(lines)


def test_offline_methods_have_no_overhead_and_dense_ignores_density():
    config = opt_config()
    wanda = count_flops(config, 0.5, TOKENS, "wanda")
    mumoe = count_flops(config, 0.5, TOKENS, "mumoe")
    assert not any(k.startswith("mumoe:") for k in wanda.lines)
    overhead = sum(v.flops for k, v in mumoe.lines.items() if k.startswith("mumoe:"))
    assert mumoe.flops - wanda.flops == overhead > 0
    dense = count_flops(config, 0.5, TOKENS, "dense")
    assert dense.density == 1.0 and dense.flops == count_flops(config, 1.0, TOKENS, "mumoe").flops


def test_bad_arguments():
    config = opt_config()
    for kwargs, match in [({"density": 0.0}, "density"), ({"tokens": 0}, "tokens"),
                          ({"method": "bogus"}, "method")]:
        with pytest.raises(ValueError, match=f"count_flops: {match}"):
            count_flops(config, **{"density": 0.5, **kwargs})
    from transformers import GPTNeoXConfig  # fused query_key_value: refused, never undercounted
    with pytest.raises(ValueError, match="count_flops: found 0 attention calls"):
        count_flops(GPTNeoXConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, vocab_size=VOCAB), 0.5, 8)


# --- calflops on the dense model -----------------------------------------------------------------

@pytest.mark.parametrize("family", list(CONFIGS))
def test_dense_totals_match_calflops(family):
    """calflops patches F.linear, torch.matmul, softmax, layer_norm and the activations; what it
    does not see (operators `+`/`*`: residual adds, RMSNorm, gate·up, rotary) are our extra lines,
    and nothing else differs."""
    calflops = pytest.importorskip("calflops")
    config = CONFIGS[family]()
    model = meta_model(config)
    ids = torch.zeros(1, TOKENS, dtype=torch.long, device="meta")
    with meta_safe_rotary(model):  # torch < 2.14: no autocast state on meta
        flops, macs, _ = calflops.calculate_flops(
            model=model, kwargs={"input_ids": ids, "attention_mask": torch.ones_like(ids)},
            print_results=False, print_detailed=False, output_as_string=False)
    r = count_flops(model, 1.0, TOKENS, "dense")
    assert r.macs == macs
    T, h, L = TOKENS, config.hidden_size, config.num_hidden_layers
    unseen = r.lines["residual and position adds"].flops
    if family == "llama":
        unseen += (r.lines["norms"].flops + r.lines["rotary embedding"].flops
                   + L * T * config.intermediate_size)  # RMSNorm, rotary, gate·up
    assert r.flops - unseen == flops


# --- the paper's Table 4: OPT-13B, 128 tokens ----------------------------------------------------

TABLE4_MACS = {1.0: "1.64T", 0.8: "1.33T", 0.6: "999G", 0.4: "671G", 0.2: "342G"}
TABLE4_DENSE_FLOPS = "3.29T"


@pytest.fixture(scope="module")
def opt13b():
    return meta_model(opt_13b_config())


def test_table4_conventions_reproduce_the_paper(opt13b):
    """docs/flops.md: calflops as of 2023 did not see OPT's attention (torch.bmm), and the paper's
    MACs scale *every* linear, lm_head included, by the density, then add the µ-MoE norms (T·d_in
    MACs per linear) and one MAC per weight for the scores |W|·n."""
    dense = count_flops(opt13b, 1.0, 128, "mumoe")
    L = dense.lines
    linear_macs = L["linears (pruned)"].macs + L["lm_head"].macs
    flops_2023 = (2 * linear_macs + L["softmax"].flops + L["norms"].flops
                  + L["activations"].flops)
    assert human(linear_macs) == TABLE4_MACS[1.0]
    assert human(flops_2023) == TABLE4_DENSE_FLOPS
    head_in, head_weights = opt13b.lm_head.in_features, opt13b.lm_head.weight.numel()
    for density, printed in TABLE4_MACS.items():
        if density == 1.0:
            continue
        r = count_flops(opt13b, density, 128, "mumoe")
        norms = r.lines["mumoe: column norms"].macs + 128 * head_in
        scores = r.lines["mumoe: scores"].flops + head_weights
        assert human(density * linear_macs + norms + scores) == printed, density
    # ours, for docs/flops.md: attention counted, lm_head dense, scores as FLOPs
    assert (human(dense.flops), human(dense.macs)) == ("3.30T", "1.65T")


def test_human_units():
    assert [human(x) for x in (3.29e12, 999.2e9, 670.5005e9, 1.2e3, 12)] == \
        ["3.29T", "999G", "671G", "1.20K", "12"]


# --- command line --------------------------------------------------------------------------------

def test_cli_from_a_folder_with_only_config_json(tmp_path, capsys):
    from mumoe_ext.cli import main
    folder = tmp_path / "cfg"
    folder.mkdir()
    llama_config().save_pretrained(folder)
    assert [p.name for p in folder.iterdir()] == ["config.json"]
    out = tmp_path / "flops.json"
    assert main(["flops", "--model", str(folder), "--density", "1,0.5", "--tokens", "16",
                 "--out", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["density"] for r in records] == [1.0, 0.5]
    assert all({"density", "flops", "macs", "lines", "tokens", "method"} <= set(r) for r in records)
    assert records[1]["macs"] < records[0]["macs"]
    assert records[0]["flops"] == count_flops(llama_config(), 1.0, 16).flops
    text = capsys.readouterr().out
    assert "| density | FLOPs | MACs |" in text and "mumoe: selection" in text
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="config.json"):
        main(["flops", "--model", str(empty)])
    with pytest.raises(SystemExit):
        main(["flops", "--density", "0"])
