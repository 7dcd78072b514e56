"""bench-generate's measurement logic (not its speed): token timing, records, ratios, output files."""
import json
import math

import pytest
import torch

from mumoe_ext.perf.generate_bench import Record, _compare, bench_generate, markdown_table, time_generate
from mumoe_ext.perf.shapes import SHAPES, random_model
from mumoe_ext.models import sparsify, sparsify_state

from helpers_models import tiny_llama, token_windows


def test_time_generate_times_every_token_and_reports_kept_bytes():
    model = tiny_llama()
    t = time_generate(model, token_windows(1, 8), 5)
    assert len(t.step_s) == 4 and t.prefill_s > 0 and all(s > 0 for s in t.step_s)
    assert t.kept_mib == 0
    sparsify(model, "mumoe", 0.5)
    t = time_generate(model, token_windows(1, 8), 3)
    # 2 layers x 7 linears, each (d_out, k) fp32 values + (d_out, ceil(d_in/32)) bitmap words
    want = sum(m.out_features * (m.in_features // 2 * 4 + math.ceil(m.in_features / 32) * 4)
               for m in model.modules() if type(m).__name__ == "MuMoELinear")
    assert t.kept_mib * 2**20 == pytest.approx(want)
    with pytest.raises(ValueError, match="new_tokens"):
        time_generate(model, token_windows(1, 8), 1)


def test_only_untimed_calls_sample_memory(monkeypatch):
    """The memory sampler takes CPU and the GIL from the timed work: time_generate runs it only when
    asked, and bench_generate asks once per configuration, after its timed rounds."""
    import mumoe_ext.perf.generate_bench as gb
    model = tiny_llama()
    assert time_generate(model, token_windows(1, 8), 3).peak_extra_mib is None
    assert time_generate(model, token_windows(1, 8), 3, measure_memory=True).peak_extra_mib >= 0
    started = []

    class CountingRSS(gb._PeakRSS):
        def __enter__(self):
            started.append(self)
            return super().__enter__()

    monkeypatch.setattr(gb, "_PeakRSS", CountingRSS)
    records = bench_generate(model, [0.5], prompt_tokens=8, new_tokens=3, repeats=3)
    assert len(started) == len(records) == 2  # one memory call each for dense and µ-MoE, none timed
    assert all(r.peak_extra_mib >= 0 for r in records)


def test_bench_generate_restores_the_model_and_compares_with_dense():
    model = tiny_llama()
    records = bench_generate(model, [0.5, 0.3], prompt_tokens=8, new_tokens=3, repeats=2)
    assert [(r.method, r.density) for r in records] == [("dense", 1.0), ("mumoe", 0.5), ("mumoe", 0.3)]
    assert sparsify_state(model) is None
    dense = records[0]
    for r in records[1:]:
        assert r.decode_speedup == pytest.approx(dense.decode_ms / r.decode_ms)
        assert r.prefill_overhead == pytest.approx(r.prefill_ms / dense.prefill_ms)
        assert len(r.prefill_ms_all) == 2
    assert "| mumoe | 0.3 |" in markdown_table(records)


def test_bench_generate_times_mumoe_plus_too():
    model = tiny_llama()
    records = bench_generate(model, [0.5], prompt_tokens=8, new_tokens=3, repeats=1,
                             methods=("mumoe", "mumoe-plus"))
    assert [(r.method, r.density) for r in records] == [("dense", 1.0), ("mumoe", 0.5),
                                                          ("mumoe-plus", 0.5)]
    assert sparsify_state(model) is None
    assert records[2].kept_mib > 0


def _rec(prefill, decode):
    return Record("x", 0.5, 8, 33, prefill, decode, 1e3 / decode,
                  33 / ((prefill + 32 * decode) / 1e3), 0, 0, 1, [prefill], [decode])


def test_break_even_tokens():
    dense = _rec(100.0, 10.0)
    assert _compare(_rec(160.0, 6.0), dense).break_even_tokens == pytest.approx(15.0)  # 60 / 4
    assert _compare(_rec(90.0, 6.0), dense).break_even_tokens == 0.0
    assert _compare(_rec(160.0, 12.0), dense).break_even_tokens == math.inf


def test_shapes_are_the_real_models_and_layers_truncate():
    model = random_model("tinyllama-1.1b", layers=1, dtype=torch.bfloat16)
    c = model.config
    assert (c.hidden_size, c.intermediate_size, c.num_key_value_heads, c.num_hidden_layers) == (2048, 5632, 4, 1)
    assert next(model.parameters()).dtype == torch.bfloat16
    assert SHAPES["llama-2-7b"]["intermediate_size"] == 11008
    with pytest.raises(ValueError, match="shape must be one of"):
        random_model("gpt-5")


def test_cli_writes_json_and_markdown(tmp_path, monkeypatch):
    from mumoe_ext import cli
    import mumoe_ext.perf.shapes as shapes
    monkeypatch.setitem(shapes.SHAPES, "tiny", dict(hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        vocab_size=128, max_position_embeddings=128))
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    assert cli.main(["bench-generate", "--shape", "tiny", "--prompt-tokens", "8", "--new-tokens", "3",
                     "--repeats", "1", "--dtype", "float32", "--out", str(out), "--markdown", str(md)]) == 0
    data = json.loads(out.read_text())
    assert {"cpu", "torch", "transformers", "commit", "command"} <= set(data["machine"])
    assert [r["method"] for r in data["records"]] == ["dense", "mumoe"]
    assert "decode ms/token" in md.read_text()


def test_cli_plot_without_matplotlib_fails_before_the_run(monkeypatch):
    import builtins
    from mumoe_ext import cli
    import mumoe_ext.perf.generate_bench as gb
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the benchmark ran before the missing plot dependency was reported")

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    monkeypatch.setattr(gb, "bench_generate", must_not_run)
    with pytest.raises(RuntimeError, match="needs matplotlib"):
        cli.main(["bench-generate", "--shape", "tinyllama-1.1b", "--plot", "x.png"])


def test_decode_gaps_times_every_linear_inside_generate():
    """tools/decode_gaps.py wraps nn.Linear.forward and MuMoELinear._decode inside HF generate: every
    linear of every decode step must show up (a transformers release that stops routing decode
    through them, or a µ-MoE decode not recognised, would drop rows), the wrappers must be gone
    afterwards, and the bytes per call are the dense weight's or the prefill's compact one's."""
    import sys
    from pathlib import Path
    from torch import nn
    from mumoe_ext.models.mumoe_linear import MuMoELinear
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import decode_gaps
    model = tiny_llama()
    layers = model.config.num_hidden_layers
    forward, decode = nn.Linear.forward, MuMoELinear._decode
    results = decode_gaps.dense_and_mumoe(model, token_windows(1, 8), 4, 1, 0.5)
    assert nn.Linear.forward is forward and MuMoELinear._decode is decode
    assert sparsify_state(model) is None  # left dense
    kinds = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    for method, r in results.items():
        rows = {row["linear"]: row for row in r["rows"]}
        assert set(rows) == kinds | {"lm_head"}, method
        assert all(rows[k]["calls_per_step"] == layers for k in kinds) and rows["lm_head"]["calls_per_step"] == 1
        assert r["linears_ms"] > 0 and r["lm_head_ms"] > 0 and r["floor_ms"] > 0
        assert r["linears_ms"] + r["lm_head_ms"] + r["between_ms"] == pytest.approx(r["step_ms_wrapped"])
    q = model.model.layers[0].self_attn.q_proj
    dense_mib = q.weight.numel() * q.weight.element_size() / 2**20
    sparse_mib = q.out_features * (q.in_features // 2 * q.weight.element_size() + math.ceil(q.in_features / 32) * 4) / 2**20
    assert {r["linear"]: r["mib_per_call"] for r in results["dense"]["rows"]}["q_proj"] == pytest.approx(dense_mib)
    assert {r["linear"]: r["mib_per_call"] for r in results["mumoe 0.5"]["rows"]}["q_proj"] == pytest.approx(sparse_mib)
