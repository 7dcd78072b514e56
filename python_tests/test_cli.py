"""`mumoe eval` end to end on a tiny saved model and a tiny text file; `mumoe table`."""
import json
import subprocess
import sys

import pytest

from mumoe_ext.cli import build_parser, main

from helpers_models import tiny_llama, tiny_text, tiny_tokenizer

KEYS = {"model", "method", "calib", "density", "dataset", "mode", "seqlen", "windows", "ppl"}


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama().save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return str(path)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "tinytext.txt"
    path.write_text(tiny_text(1500))
    return str(path)


def test_eval_smoke(tiny_model_dir, text_file, tmp_path, capsys):
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    rc = main(["eval", "--model", tiny_model_dir, "--methods", "dense,magnitude,wanda,sparsegpt,mumoe",
               "--density", "0.5", "--text-file", text_file, "--calib", text_file,
               "--sparsegpt-calib", "same", "--seqlen", "16", "--max-windows", "2",
               "--nsamples", "2", "--mode", "window,prefix", "--out", str(out),
               "--markdown", str(md), "--no-progress"])
    assert rc == 0
    records = json.loads(out.read_text())
    # dense once + 4 methods at one density, one dataset, two modes
    assert len(records) == (1 + 4) * 2
    assert all(KEYS <= set(r) for r in records)
    assert {r["mode"] for r in records} == {"window", "prefix"}
    assert {r["dataset"] for r in records} == {"tinytext"}
    assert {r["calib"] for r in records if r["method"] in ("wanda", "sparsegpt")} == {"tinytext"}
    assert all(r["windows"] == 2 and r["seqlen"] == 16 and r["ppl"] > 1 for r in records)
    printed = capsys.readouterr().out
    for label in ("dense (tinytext:", "Magnitude", "Wanda (tinytext calib)",
                  "SparseGPT (tinytext calib)", "µ-MoE", "50%", "mode=prefix"):
        assert label in printed
    table = md.read_text()
    assert "| µ-MoE |" in table and "mode `window`" in table and "mode `prefix`" in table

    assert main(["table", str(out), "--markdown", str(tmp_path / "again.md")]) == 0
    assert (tmp_path / "again.md").read_text() == table


def test_eval_mumoe_plus_and_options_rows(tiny_model_dir, text_file, tmp_path, capsys):
    import torch
    import transformers
    out = tmp_path / "r.json"
    common = ["eval", "--model", tiny_model_dir, "--density", "0.5", "--text-file", text_file,
              "--seqlen", "16", "--max-windows", "2", "--mode", "prefix", "--no-progress"]
    assert main(common + ["--methods", "mumoe,mumoe-plus", "--out", str(out)]) == 0
    assert main(common + ["--methods", "mumoe", "--mumoe-options", "mean_shift=0.75",
                          "--out", str(tmp_path / "s.json")]) == 0
    records = json.loads(out.read_text()) + json.loads((tmp_path / "s.json").read_text())
    by = {(r["method"], r["options"]): r for r in records}
    assert set(by) == {("mumoe", None), ("mumoe-plus", None), ("mumoe", "mean_shift=0.75")}
    assert by[("mumoe-plus", None)]["mumoe_settings"] == {"mean_shift": 0.75, "allocation": "owl",
                                                          "owl_m": 5.0, "owl_lambda": 0.08}
    assert by[("mumoe", "mean_shift=0.75")]["mumoe_settings"]["mean_shift"] == 0.75
    assert len({r["ppl"] for r in records}) == 3  # three different models
    for r in records:
        assert r["torch"] == torch.__version__ and r["transformers"] == transformers.__version__
        assert r["commit"]
    capsys.readouterr()
    assert main(["table", str(out), str(tmp_path / "s.json")]) == 0
    printed = capsys.readouterr().out
    assert "µ-MoE+" in printed and "µ-MoE (mean_shift=0.75)" in printed


def test_missing_data_is_a_clear_error(tiny_model_dir, monkeypatch, capsys):
    from mumoe_ext.eval import datasets as D
    monkeypatch.delenv("MUMOE_DATA_DIR", raising=False)
    monkeypatch.setattr(D, "default_data_dir", lambda: None)
    monkeypatch.setattr(D, "_hub_available", lambda: False)
    rc = main(["eval", "--model", tiny_model_dir, "--methods", "dense", "--datasets", "wikitext2",
               "--no-progress"])
    assert rc == 2
    assert "--data-dir" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["eval", "--methods", "dense,bogus"], "--methods"),
    (["eval", "--density", "0.5,1.5"], "--density"),
    (["eval", "--mode", "sideways"], "--mode"),
    (["eval", "--seqlen", "0"], "positive"),
    (["eval", "--mumoe-options", "mean_shift=2"], "mean_shift"),
    (["eval", "--mumoe-options", "shift=0.5"], "unexpected options"),
    (["eval", "--mumoe-options", "mean_shift"], "key=value"),
])
def test_bad_options_are_rejected(argv, message, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert message in capsys.readouterr().err


def test_python_dash_m_entry_point():
    done = subprocess.run([sys.executable, "-m", "mumoe_ext", "eval", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--max-windows" in done.stdout
