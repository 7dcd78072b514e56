"""`mumoe score` and `mumoe eval-vlm` through the VLM CLI's own parser (`register`)."""
import argparse
import json

import pytest

pytest.importorskip("PIL", reason="the VLM tests write PNG images: pip install pillow")

from helpers_vlm import build_tiny_llava, write_vlm_fixture
from mumoe_ext.vlm.cli import main, register


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_vlm_fixture(str(tmp_path_factory.mktemp("vlm_cli_data")))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("tiny_llava"))
    model, processor = build_tiny_llava()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_register_adds_both_subcommands():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["score", "--task", "textvqa", "--predictions", "p.jsonl"])
    assert args.func.__name__ == "run_score"
    args = parser.parse_args(["eval-vlm", "--model", "m", "--task", "scienceqa"])
    assert args.methods == ["dense", "magnitude", "sparsegpt", "wanda", "mumoe"]
    assert args.density == [0.6, 0.5, 0.4] and args.calib_task is None
    args = parser.parse_args(["eval-vlm", "--model", "m", "--task", "textvqa", "--methods",
                              "dense,mumoe", "wanda", "--density", "0.5,0.4", "0.3"])
    assert args.methods == ["dense", "mumoe", "wanda"] and args.density == [0.5, 0.4, 0.3]
    for bad in (["--density", "1.5"], ["--density", "half"], ["--methods", "random"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["eval-vlm", "--model", "m", "--task", "scienceqa", *bad])


def test_main_cli_has_the_vlm_subcommands():
    from mumoe_ext.cli import build_parser

    args = build_parser().parse_args(["score", "--task", "scienceqa", "--predictions", "p.jsonl"])
    assert args.func.__name__ == "run_score"


def test_score_scienceqa_prints_breakdown_and_writes_json(data_dir, tmp_path, capsys):
    preds = _write(tmp_path / "p.jsonl", [
        {"id": "s1", "prediction": "A"},                    # IMG NAT G1-6: right
        {"id": "s2", "prediction": "The answer is B."},     # TXT IMG SOC G1-6: wrong (A)
        {"id": "s3", "prediction": "B. table"},             # NO LAN G7-12: right
        {"id": "s4", "prediction": "(C)"},                  # TXT NAT G7-12: unparsable
    ])
    out = str(tmp_path / "score.json")
    assert main(["score", "--task", "scienceqa", "--data-dir", data_dir, "--predictions", preds,
                 "--out", out]) == 0
    text = capsys.readouterr().out
    assert "NAT" in text and "G7-12" in text and "50.00" in text
    acc = json.load(open(out))["accuracy"]
    assert acc == pytest.approx({"NAT": 50.0, "SOC": 0.0, "LAN": 100.0, "TXT": 0.0, "IMG": 50.0,
                                 "NO": 100.0, "G1-6": 50.0, "G7-12": 50.0, "Avg": 50.0})


def test_score_textvqa_missing_and_unknown_ids(data_dir, tmp_path, capsys):
    preds = _write(tmp_path / "p.jsonl", [{"question_id": 101, "prediction": "Stop."},
                                          {"question_id": 102, "prediction": "2"}])
    out = str(tmp_path / "s.json")
    main(["score", "--task", "textvqa", "--data-dir", data_dir, "--predictions", preds,
          "--out", out])
    assert "no prediction" in capsys.readouterr().err
    # 101: 8 of 10 say "stop" -> 1.0; 102: "two" x5 + "2" x5 all normalise to "2" -> 1.0; 103: 0
    assert json.load(open(out))["accuracy"]["VQA"] == pytest.approx(200 / 3)
    main(["score", "--task", "textvqa", "--data-dir", data_dir, "--predictions", preds,
          "--out", out, "--skip-missing"])
    assert json.load(open(out))["accuracy"]["VQA"] == pytest.approx(100.0)
    bad = _write(tmp_path / "bad.jsonl", [{"question_id": 999, "prediction": "x"}])
    with pytest.raises(ValueError, match="not in the data"):
        main(["score", "--task", "textvqa", "--data-dir", data_dir, "--predictions", bad])
    nofield = _write(tmp_path / "nofield.jsonl", [{"question_id": 101}])
    with pytest.raises(ValueError, match="'prediction'"):
        main(["score", "--task", "textvqa", "--data-dir", data_dir, "--predictions", nofield])


def test_eval_vlm_end_to_end(data_dir, tiny_dir, tmp_path, capsys):
    out = str(tmp_path / "res.json")
    preds_dir = str(tmp_path / "preds")
    assert main(["eval-vlm", "--model", tiny_dir, "--task", "scienceqa", "--methods", "dense",
                 "mumoe", "--density", "0.5", "--vision-tower", "--data-dir", data_dir,
                 "--limit", "3", "--max-new-tokens", "2", "--device", "cpu",
                 "--predictions-dir", preds_dir, "--no-progress", "--out", out]) == 0
    assert "ScienceQA accuracy" in capsys.readouterr().out
    res = json.load(open(out))
    assert [(r["method"], r["density"]) for r in res["rows"]] == [("dense", 1.0), ("mumoe", 0.5)]
    assert res["config"]["vision_tower"] is True and res["model"] == tiny_dir
    row = res["rows"][0]
    assert row["count"]["Avg"] == 3
    # the written predictions score to the same numbers with the standalone scorer
    score_out = str(tmp_path / "rescore.json")
    main(["score", "--task", "scienceqa", "--data-dir", data_dir, "--predictions",
          row["predictions"], "--skip-missing", "--out", score_out])
    assert json.load(open(score_out))["accuracy"] == row["accuracy"]
