"""Data loading, the official LLaVA prompts, multimodal calibration batches and greedy
generation on a tiny LLaVA (dense; the pruning methods are in test_vlm_sparsify.py)."""
import json

import pytest
import torch

pytest.importorskip("PIL", reason="the VLM tests write PNG images: pip install pillow")

from helpers_vlm import build_tiny_llava, write_vlm_fixture
from mumoe_ext.vlm.calibration import calibration_batches, load_calibration
from mumoe_ext.vlm.data import load_examples
from mumoe_ext.vlm.generate import example_prompt, generate_predictions
from mumoe_ext.vlm.inputs import encode
from mumoe_ext.vlm.predictions import read_predictions, write_predictions
from mumoe_ext.vlm.prompts import chat_prompt, scienceqa_question, textvqa_question

SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. The assistant "
          "gives helpful, detailed, and polite answers to the human's questions.")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_vlm_fixture(str(tmp_path_factory.mktemp("vlm_data")))


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_llava()


def test_load_scienceqa_fields_and_categories(data_dir):
    ex = {e.id: e for e in load_examples("scienceqa", "test", data_dir)}
    assert list(ex) == ["s1", "s2", "s3", "s4"]
    assert ex["s1"].context_categories == ["IMG"]
    assert ex["s2"].context_categories == ["TXT", "IMG"]
    assert ex["s3"].context_categories == ["NO"]
    assert ex["s4"].context_categories == ["TXT"]
    assert [ex[k].grade_band for k in ex] == ["G1-6", "G1-6", "G7-12", "G7-12"]
    assert [ex[k].subject_code for k in ex] == ["NAT", "SOC", "LAN", "NAT"]
    assert ex["s1"].image.endswith("scienceqa/images/test/s1/image.png")
    assert len(load_examples("scienceqa", "test", data_dir, limit=2)) == 2


def test_load_errors_name_the_argument(data_dir, tmp_path):
    with pytest.raises(ValueError, match="task must be one of"):
        load_examples("vqav2", "test", data_dir)
    with pytest.raises(FileNotFoundError, match="data_dir"):
        load_examples("textvqa", "nosuchsplit", data_dir)
    with pytest.raises(ValueError, match="limit"):
        load_examples("textvqa", "validation", data_dir, limit=0)
    (tmp_path / "scienceqa").mkdir()
    (tmp_path / "scienceqa" / "test.jsonl").write_text(json.dumps(
        {"id": "x", "question": "q", "choices": ["a"], "answer": 3}) + "\n")
    with pytest.raises(ValueError, match="answer index 3"):
        load_examples("scienceqa", "test", str(tmp_path))


def test_scienceqa_prompt_is_llava_cqm_a(data_dir):
    s1, s2 = load_examples("scienceqa", "test", data_dir)[:2]
    assert scienceqa_question(s1) == (
        "Context: N/A\nQuestion: Which animal is a mammal?\nOptions: (A) dog (B) trout\n"
        "Answer with the option's letter from the given choices directly.")
    assert scienceqa_question(s2).startswith("Context: Look at the map.\nQuestion: Which city")
    assert example_prompt("scienceqa", s1) == (
        f"{SYSTEM} USER: <image>\n{scienceqa_question(s1)} ASSISTANT:")


def test_textvqa_prompt_has_ocr_tokens(data_dir):
    t1, t2 = load_examples("textvqa", "validation", data_dir)[:2]
    assert textvqa_question(t1) == ("what is written on the sign?\nReference OCR token: STOP, ahead"
                                    "\nAnswer the question using a single word or phrase.")
    assert textvqa_question(t2) == ("how many bottles are there?"
                                    "\nAnswer the question using a single word or phrase.")
    assert chat_prompt("q", False, "llava_hf") == "USER: q ASSISTANT:"
    with pytest.raises(ValueError, match="template"):
        chat_prompt("q", True, "chatml")


def test_encode_expands_image_tokens_and_pads_to_square(tiny, data_dir):
    _, processor = tiny
    s1 = load_examples("scienceqa", "test", data_dir)[0]
    batch = encode(processor, example_prompt("scienceqa", s1), s1.image)
    assert batch["pixel_values"].shape == (1, 3, 28, 28)
    assert int((batch["input_ids"] == 4).sum()) == 4  # 2x2 patches
    no_image = encode(processor, "USER: hi ASSISTANT:")
    assert "pixel_values" not in no_image


def test_calibration_draws_only_multimodal_prompts(tiny, data_dir):
    _, processor = tiny
    batches = load_calibration(processor, "scienceqa", data_dir=data_dir, nsamples=3, seed=0)
    assert len(batches) == 3
    assert all("pixel_values" in b and int((b["input_ids"] == 4).sum()) == 4 for b in batches)
    again = load_calibration(processor, "scienceqa", data_dir=data_dir, nsamples=3, seed=0)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(batches, again))
    train = load_examples("scienceqa", "train", data_dir)
    with pytest.warns(UserWarning, match="only 4 calibration examples"):
        assert len(calibration_batches(processor, "scienceqa", train, nsamples=10)) == 4
    with pytest.raises(ValueError, match="nsamples"):
        calibration_batches(processor, "scienceqa", train, nsamples=0)


def test_greedy_generation_and_prediction_files(tiny, data_dir, tmp_path):
    model, processor = tiny
    examples = load_examples("textvqa", "validation", data_dir)
    preds = generate_predictions(model, processor, "textvqa", examples, max_new_tokens=3,
                                 progress=False)
    assert list(preds) == ["101", "102", "103"] and all(isinstance(p, str) for p in preds.values())
    assert preds == generate_predictions(model, processor, "textvqa", examples, max_new_tokens=3,
                                         progress=False)  # greedy: deterministic
    path = str(tmp_path / "p.jsonl")
    write_predictions(path, "textvqa", examples, preds)
    assert json.loads(open(path).readline())["question_id"] == 101
    assert read_predictions(path, "textvqa") == preds


def test_save_examples_round_trip(data_dir, tmp_path):
    from mumoe_ext.vlm.data_export import save_examples

    for task, split in (("scienceqa", "test"), ("textvqa", "validation")):
        original = load_examples(task, split, data_dir)
        save_examples(task, split, original, str(tmp_path))
        copy = load_examples(task, split, str(tmp_path))
        assert [e.id for e in copy] == [e.id for e in original]
        assert [e.has_image for e in copy] == [e.has_image for e in original]
        assert [scienceqa_question(e) if task == "scienceqa" else textvqa_question(e)
                for e in copy] == [scienceqa_question(e) if task == "scienceqa"
                                   else textvqa_question(e) for e in original]


class _FakeHubDataset:
    """The few `datasets.Dataset` calls the hub loader makes, over in-memory rows."""

    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter([dict(r) for r in self.rows])

    def __getitem__(self, i):
        return self.rows[i]

    def select(self, indices):
        return _FakeHubDataset([self.rows[i] for i in indices])

    def cast_column(self, name, feature):
        return self

    def select_columns(self, names):
        return _FakeHubDataset([{k: r[k] for k in names} for r in self.rows])

    def remove_columns(self, names):
        return _FakeHubDataset([{k: v for k, v in r.items() if k not in names}
                                for r in self.rows])


def test_hub_rows_without_download(monkeypatch, tiny, tmp_path):
    import sys
    import types

    from PIL import Image

    from mumoe_ext.vlm.data_export import save_examples

    picture = Image.new("RGB", (30, 20), (200, 10, 10))
    hub = {
        "derek-thomas/ScienceQA": [
            {"image": picture, "question": "Which is red?", "choices": ["box", "sky"],
             "answer": 0, "hint": "", "subject": "natural science", "grade": "grade1",
             "lecture": "..."},
            {"image": None, "question": "Pick a noun.", "choices": ["cat", "run"], "answer": 0,
             "hint": "Read.", "subject": "language science", "grade": "grade9", "lecture": ""}],
        "facebook/textvqa": [
            {"image": picture, "question_id": 7, "question": "what color?", "answers": ["red"] * 10,
             "ocr_tokens": ["RED"], "image_id": "x"}],
    }
    fake = types.SimpleNamespace(load_dataset=lambda name, split: _FakeHubDataset(hub[name]),
                                 Image=lambda decode=True: None)
    monkeypatch.setitem(sys.modules, "datasets", fake)
    sqa = load_examples("scienceqa", "test")
    assert [e.id for e in sqa] == ["0", "1"] and [e.has_image for e in sqa] == [True, False]
    assert sqa[1].context_categories == ["TXT"] and sqa[1].grade_band == "G7-12"
    assert len(load_examples("scienceqa", "test", limit=1)) == 1
    (tvqa,) = load_examples("textvqa", "validation")
    batch = encode(tiny[1], example_prompt("textvqa", tvqa), tvqa.image)  # decoded on use
    assert batch["pixel_values"].shape == (1, 3, 28, 28)
    save_examples("scienceqa", "test", sqa, str(tmp_path))
    assert [e.has_image for e in load_examples("scienceqa", "test", str(tmp_path))] == [True, False]

    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(ImportError, match="data_dir"):
        load_examples("textvqa", "validation")
