"""The perplexity harness: windows, parity with a plain HF loss, both modes, dataset rules."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from mumoe_ext.eval import datasets as D
from mumoe_ext.eval.perplexity import perplexity, split_windows
from mumoe_ext.models import sparsify

from helpers_generation import expected_masks, static_logits
from helpers_models import WORDS, tiny_llama, tiny_opt, tiny_text, tiny_tokenizer, token_windows


def test_split_windows_drops_tail_and_caps():
    ids = torch.arange(23)
    w = split_windows(ids, 5)
    assert w.shape == (4, 5) and w[-1, -1] == 19
    assert split_windows(ids, 5, max_windows=2).shape == (2, 5)
    with pytest.raises(ValueError, match="seqlen"):
        split_windows(ids, 30)
    with pytest.raises(ValueError, match="max_windows"):
        split_windows(ids, 5, max_windows=0)


@pytest.mark.parametrize("build", [tiny_llama, tiny_opt], ids=["llama", "opt"])
def test_dense_perplexity_equals_hf_loss(build):
    model = build()
    ids = token_windows(1, 16 * 5 + 3).reshape(-1)
    ppl, n = perplexity(model, ids, 16, progress=False)["window"]
    with torch.no_grad():
        losses = [model(input_ids=w[None], labels=w[None]).loss for w in ids[:80].view(5, 16)]
    assert n == 5
    assert math.isclose(ppl, math.exp(torch.stack(losses).double().mean().item()), rel_tol=1e-6)


def test_prefix_mode_of_static_model_equals_cached_continuation():
    model = tiny_llama()
    ids = token_windows(1, 20 * 3).reshape(-1)
    sliced = perplexity(model, ids, 20, modes=("window", "prefix"), progress=False)
    cached = perplexity(model, ids, 20, modes=("prefix",), prompt_dependent=True, progress=False)
    assert math.isclose(sliced["prefix"][0], cached["prefix"][0], rel_tol=1e-5)
    assert sliced["window"][0] != sliced["prefix"][0]


def test_mumoe_prefix_mode_uses_masks_of_first_half_only():
    model = tiny_llama()
    sparsify(model, "mumoe", 0.5)
    window = token_windows(1, 16, seed=4)
    got, _ = perplexity(model, window.reshape(-1), 16, modes=("prefix",), prompt_dependent=True,
                        progress=False)["prefix"]
    logits = static_logits(tiny_llama, expected_masks(model, window[:, :8], 0.5), window)
    nll = F.cross_entropy(logits[7:-1], window[0, 8:])
    assert math.isclose(got, math.exp(nll.item()), rel_tol=1e-4)


def test_mumoe_window_mode_reprunes_each_window():
    model = tiny_llama()
    ids = token_windows(1, 48, seed=2).reshape(-1)
    sparsify(model, "mumoe", 0.5)
    together = perplexity(model, ids, 16, progress=False)["window"][0]
    nlls = []
    for w in ids.view(3, 16):  # each window alone: the same number, so masks are per window
        nlls.append(math.log(perplexity(model, w, 16, progress=False)["window"][0]))
    assert math.isclose(together, math.exp(sum(nlls) / 3), rel_tol=1e-6)


# ---- datasets -------------------------------------------------------------------------------

@pytest.fixture
def data_dir(tmp_path):
    """A miniature of shared/data's layout with made-up text (never the real files)."""
    (tmp_path / "wikitext2").mkdir()
    (tmp_path / "ptb").mkdir()
    (tmp_path / "c4").mkdir()
    (tmp_path / "wikitext2" / "test.raw").write_bytes(b" = w1 w2 = \r\n w3 w4 w5 \r\n")
    (tmp_path / "wikitext2" / "valid.tokens").write_text(tiny_text(400, seed=1))
    (tmp_path / "ptb" / "test.txt").write_text(" w1 w2 \n w3 \n")
    (tmp_path / "ptb" / "valid.txt").write_text(tiny_text(400, seed=2))
    with open(tmp_path / "c4" / "train-00000.first1000.jsonl", "w") as f:
        for i in range(1000):
            words = " ".join([WORDS[0] if i < 500 else WORDS[1]] * (3 if i % 2 else 40))
            f.write(json.dumps({"text": words, "timestamp": "", "url": ""}) + "\n")
    return str(tmp_path)


def test_local_joining_rules(data_dir):
    text, source = D.load_text("wikitext2", "eval", data_dir)
    assert text == " = w1 w2 = \n\n\n w3 w4 w5 \n" and source == f"local:{data_dir}"
    assert D.load_text("ptb", "eval", data_dir)[0] == "w1 w2 w3"
    c4_eval = D.load_text("c4", "eval", data_dir)[0]
    c4_calib = D.load_text("c4", "calib", data_dir)[0]
    assert WORDS[1] not in c4_eval.split() and len(c4_calib) == 500
    assert all(set(doc.split()) == {WORDS[1]} for doc in c4_calib)


def test_eval_tokens_and_calibration_windows(data_dir):
    tok = tiny_tokenizer()
    ids, _ = D.eval_tokens("c4", tok, 8, data_dir)
    assert ids.numel() == min(256 * 8, ids.numel())
    a = D.calibration_windows("c4", tok, 4, 16, seed=0, data_dir=data_dir)
    b = D.calibration_windows("c4", tok, 4, 16, seed=0, data_dir=data_dir)
    assert a.shape == (4, 16) and torch.equal(a, b)
    assert set(a.unique().tolist()) == {tok.convert_tokens_to_ids(WORDS[1])}  # docs 500-999 only
    w = D.calibration_windows("ptb", tok, 3, 10, seed=1, data_dir=data_dir)
    assert w.shape == (3, 10)
    with pytest.raises(ValueError, match="seqlen"):
        D.calibration_windows("ptb", tok, 1, 10**6, data_dir=data_dir)


def test_text_file_and_missing_data_message(tmp_path, monkeypatch):
    path = tmp_path / "notes.txt"
    path.write_text("w1 w2 w3")
    assert D.load_text(str(path)) == ("w1 w2 w3", "file")
    assert D.dataset_label(str(path)) == "notes"
    monkeypatch.delenv("MUMOE_DATA_DIR", raising=False)
    monkeypatch.setattr(D, "default_data_dir", lambda: None)
    monkeypatch.setattr(D, "_hub_available", lambda: False)
    with pytest.raises(D.DataNotFoundError, match="--data-dir"):
        D.load_text("wikitext2")
    with pytest.raises(D.DataNotFoundError, match="neither"):
        D.load_text("no-such-dataset")
