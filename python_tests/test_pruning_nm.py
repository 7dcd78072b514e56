"""N:M patterns of the offline baselines (the references' prune_n/prune_m paths), of sparsify on
tiny models (every method, generate with µ-MoE), and of `mumoe eval --pattern`."""
import json

import pytest
import torch
from torch import nn

import mumoe_ext
from mumoe_ext.cli import build_parser, main
from mumoe_ext.models import MuMoELinear, cache_weights, restore, select_linears, sparsify
from mumoe_ext.pruning import prune_layers
from mumoe_ext.pruning.magnitude import magnitude_mask
from mumoe_ext.pruning.sparsegpt import sparsegpt_weight

from helpers_models import calib_batches, tiny_llama, tiny_text, tiny_tokenizer


def groups_keep(mask, n, m):
    return bool((mask.reshape(*mask.shape[:-1], -1, m).sum(-1) == n).all())


def reference_group_mask(scores, n, m):
    """locuslab/wanda's N:M loop: for each group of m columns prune the m - n smallest scores."""
    pruned = torch.zeros_like(scores, dtype=torch.bool)
    for i in range(0, scores.shape[1], m):
        tmp = scores[:, i:i + m].float()
        pruned.scatter_(1, i + torch.topk(tmp, m - n, dim=1, largest=False)[1], True)
    return ~pruned


@pytest.mark.parametrize("pattern", ["2:4", "4:8", "1:4"])
def test_magnitude_nm_is_the_reference_group_rule(pattern):
    n, m = map(int, pattern.split(":"))
    w = torch.randn(12, 64)
    assert torch.equal(magnitude_mask(w, None, pattern), reference_group_mask(w.abs(), n, m))


def reference_sparsegpt_nm(W, H, n, m, blocksize, percdamp=0.01):
    """IST-DASLab/sparsegpt fasterprune with prunen/prunem (m - n pruned per group), written out."""
    W, H = W.clone().float(), H.clone().float()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += percdamp * torch.mean(torch.diag(H)) * torch.eye(H.shape[0])
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    for i1 in range(0, W.shape[1], blocksize):
        i2 = min(i1 + blocksize, W.shape[1])
        W1, Q1 = W[:, i1:i2].clone(), torch.zeros(W.shape[0], i2 - i1)
        Err1, Hinv1 = torch.zeros_like(Q1), Hinv[i1:i2, i1:i2]
        mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(i2 - i1):
            if i % m == 0:
                tmp = W1[:, i:i + m] ** 2 / torch.diag(Hinv1)[i:i + m].reshape(1, -1) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, m - n, dim=1, largest=False)[1], True)
            w, d = W1[:, i], Hinv1[i, i]
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W


@pytest.mark.parametrize("pattern,blocksize", [("2:4", 16), ("4:8", 32), ("1:4", 8)])
def test_sparsegpt_nm_matches_reference_sweep(pattern, blocksize):
    n, m = map(int, pattern.split(":"))
    W, X = torch.randn(10, 48), torch.randn(200, 48)
    H = X.t() @ X * (2 / 200)
    ours = sparsegpt_weight(W, H, None, blocksize=blocksize, pattern=pattern)
    want = reference_sparsegpt_nm(W, H, n, m, blocksize)
    assert torch.equal(ours != 0, want != 0)
    assert groups_keep(ours != 0, n, m)
    assert torch.allclose(ours, want, rtol=1e-4, atol=1e-5)


def test_sparsegpt_nm_bad_blocksize():
    with pytest.raises(ValueError, match="sparsegpt: pattern='4:8' needs M=8 to divide blocksize=12"):
        sparsegpt_weight(torch.randn(4, 48), torch.eye(48), None, blocksize=12, pattern="4:8")


def test_offline_wanda_nm_uses_the_calibration_norms():
    model = tiny_llama()
    originals = {id(m): m.weight.detach().clone() for m in model.modules() if isinstance(m, nn.Linear)}
    seen = []
    prune_layers(model, model.model.layers, "wanda", 0.5, calib_batches("llama", 3), progress=False,
                 pattern="2:4", on_pruned=lambda name, lin, st: seen.append((lin, st.norms.clone())))
    assert len(seen) == len(select_linears(tiny_llama()))
    for lin, norms in seen:
        want = mumoe_ext.wanda_mask(originals[id(lin)], norms, pattern="2:4")
        assert torch.equal(lin.weight != 0, want)
        assert torch.equal(want, reference_group_mask(originals[id(lin)].abs() * norms, 2, 4))


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt", "mumoe"])
@pytest.mark.parametrize("pattern", ["2:4", "1:4"])
def test_sparsify_pattern_every_method(method, pattern):
    n, m = map(int, pattern.split(":"))
    model = tiny_llama()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calib = calib_batches("llama", 3) if method in ("wanda", "sparsegpt") else None
    sparsify(model, method, pattern=pattern, calib=calib, progress=False)
    ids = torch.randint(4, 100, (2, 9))
    linears = select_linears(model)
    if method == "mumoe":
        assert all(isinstance(l, MuMoELinear) and l.pattern == pattern for l in linears.values())
        out = model.generate(ids, max_new_tokens=3, do_sample=False, return_dict_in_generate=True)
        assert out.sequences.shape == (2, 12)
        for name, rs in cache_weights(model, out.past_key_values).items():
            assert groups_keep(rs.to_dense() != 0, n, m), name  # random weights: no exact zeros
    else:
        for name, lin in linears.items():
            assert groups_keep(lin.weight != 0, n, m), name
        with torch.no_grad():
            assert torch.isfinite(model(ids).logits).all()
    restore(model)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_mumoe_pattern_prompt_matches_wanda_linear():
    model = tiny_llama()
    sparsify(model, "mumoe", pattern="4:8")
    lin = model.model.layers[0].mlp.down_proj
    x = torch.randn(2, 7, lin.in_features)
    with torch.no_grad():
        assert torch.equal(lin(x), mumoe_ext.wanda_linear(x, lin.weight, lin.bias, pattern="4:8"))


@pytest.mark.parametrize("kwargs,exc,message", [
    (dict(pattern="3:5"), ValueError, "pattern='3:5' needs M=5 to divide the in_features"),
    (dict(density=0.6, pattern="2:4"), ValueError, "density=0.6 conflicts with pattern='2:4'"),
    (dict(pattern="2/4"), ValueError, "pattern must be a string 'N:M'"),
    (dict(pattern="4:4"), ValueError, "0 < N < M"),
    (dict(pattern=24), TypeError, "pattern must be None or a string"),
    (dict(), TypeError, "density must be a float"),
])
def test_sparsify_bad_pattern(kwargs, exc, message):
    model = tiny_llama()
    with pytest.raises(exc, match=message.replace("(", r"\(")):
        sparsify(model, "mumoe", **kwargs)
    assert not any(isinstance(m, MuMoELinear) for m in model.modules())


def test_eval_pattern_beside_unstructured(tmp_path, capsys):
    path = tmp_path / "tiny"
    tiny_llama().save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    text = tmp_path / "tinytext.txt"
    text.write_text(tiny_text(1500))
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    rc = main(["eval", "--model", str(path), "--methods", "dense,magnitude,wanda,mumoe",
               "--density", "0.5", "--pattern", "2:4,4:8", "--text-file", str(text),
               "--calib", str(text), "--seqlen", "16", "--max-windows", "2", "--nsamples", "2",
               "--out", str(out), "--markdown", str(md), "--no-progress"])
    assert rc == 0
    records = json.loads(out.read_text())
    assert len(records) == 1 + 3 * 3
    assert {(r["density"], r["pattern"]) for r in records if r["method"] != "dense"} == {
        (0.5, None), (0.5, "2:4"), (0.5, "4:8")}
    assert len({r["ppl"] for r in records if r["method"] == "mumoe"}) == 3  # three different masks
    header = next(l for l in md.read_text().splitlines() if l.startswith("| Active weights"))
    assert header.index("50%") < header.index("2:4") < header.index("4:8")
    assert "2:4" in capsys.readouterr().out


def test_eval_pattern_alone_runs_only_the_pattern(tmp_path):
    args = build_parser().parse_args(["eval", "--pattern", "2:4"])
    assert args.pattern == ["2:4"] and args.density is None


@pytest.mark.parametrize("bad", ["2-4", "4:4", "0:4", "a:b", "2:4:8"])
def test_eval_bad_pattern_option(bad, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--pattern", bad])
    assert "--pattern" in capsys.readouterr().err
