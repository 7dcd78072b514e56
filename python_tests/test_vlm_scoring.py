"""ScienceQA and TextVQA scorers against hand-computed accuracies (no model, no downloads)."""
import pytest

from mumoe_ext.vlm.data import ScienceQAExample, TextVQAExample
from mumoe_ext.vlm.scienceqa import extract_letter, predicted_index, score_scienceqa
from mumoe_ext.vlm.textvqa import normalize_answer, score_textvqa, vqa_accuracy

LETTER_CASES = [
    ("B", "B"),
    ("  C \n", "C"),                            # generation output is stripped first
    ("A. a magnet", "A"),                       # "X. " prefix
    ("The answer is B.", "B"),
    ("I think so. The answer is D, clearly", "D"),
    ("The answer is B", None),                  # official pattern needs a character after it
    ("(C)", None),
    ("b", None),                                # lower case is not a letter option
    ("no letter here", None),
    ("", None),
    ("The answer is A. No, the answer is B. The answer is C.", None),  # two matches: fails
    ("A.", None),                               # "X. " needs the space
]


@pytest.mark.parametrize("text,letter", LETTER_CASES, ids=[repr(c[0]) for c in LETTER_CASES])
def test_extract_letter(text, letter):
    assert extract_letter(text) == letter


def test_predicted_index_rejects_letters_past_the_choices():
    assert predicted_index("C", 3) == 2
    assert predicted_index("D", 3) == -1
    assert predicted_index("The answer is Z.", 5) == -1


def _sqa(id, answer, hint="", image=None, subject="natural science", grade="grade3"):
    return ScienceQAExample(id=id, question="q?", choices=["x", "y", "z"], answer=answer,
                            hint=hint, subject=subject, grade=grade, image=image)


def test_scienceqa_breakdown_by_hand():
    examples = [
        _sqa("1", 0, hint="a hint", image="img.png"),                    # TXT+IMG NAT G1-6
        _sqa("2", 1, image="img.png", subject="social science"),         # IMG SOC G1-6
        _sqa("3", 2, subject="language science", grade="grade8"),        # NO LAN G7-12
        _sqa("4", 0, hint="ctx", grade="grade12"),                       # TXT NAT G7-12
        _sqa("5", 1, subject="social science", grade="grade7"),          # NO SOC G7-12
    ]
    preds = {"1": "The answer is A.", "2": "(B)", "3": "C", "4": "A. x"}  # "5" missing: wrong
    acc = score_scienceqa(examples, preds)["accuracy"]
    expected = {"NAT": 100.0, "SOC": 0.0, "LAN": 100.0, "TXT": 100.0, "IMG": 50.0,
                "NO": 50.0, "G1-6": 50.0, "G7-12": 200 / 3, "Avg": 60.0}
    assert acc == pytest.approx(expected)


def test_scienceqa_empty_column_is_none():
    acc = score_scienceqa([_sqa("1", 0)], {"1": "A"})["accuracy"]
    assert acc["SOC"] is None and acc["Avg"] == 100.0


NORMALISATION_CASES = [
    ("two", "2"),
    ("Two", "2"),
    ("the cat", "cat"),
    ("A Cat.", "cat"),
    ("Hello, World!", "hello world"),
    ("coca-cola", "coca cola"),
    ("3.5", "3.5"),
    ("dont", "don't"),
    ("it's", "it 's"),
    ("none", "0"),
    ("  yes\n", "yes"),
    ("(stop)", "stop"),
]


@pytest.mark.parametrize("raw,norm", NORMALISATION_CASES, ids=[c[0] for c in NORMALISATION_CASES])
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


ANSWERS = ["two", "2", "2", "cat", "the cat", "Cat", "cat", "dog", "dog", "dog"]  # 2:3 cat:4 dog:3


@pytest.mark.parametrize("pred,acc", [
    ("2", 0.9),        # 3 matches: the 3 subsets without one of them see 2 -> (3*2/3 + 7*1)/10
    ("Two.", 0.9),
    ("The cat", 1.0),  # 4 matches: every subset keeps >= 3
    ("dog", 0.9),
    ("bird", 0.0),
])
def test_vqa_accuracy(pred, acc):
    assert vqa_accuracy(pred, ANSWERS) == pytest.approx(acc)


def test_vqa_accuracy_one_and_two_matches():
    one = ["zebra"] + ["x"] * 9
    two = ["zebra"] * 2 + ["x"] * 8
    assert vqa_accuracy("zebra", one) == pytest.approx(9 * (1 / 3) / 10)
    assert vqa_accuracy("zebra", two) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)


def test_score_textvqa_mean_and_missing():
    examples = [TextVQAExample(question_id=1, question="q", answers=ANSWERS),
                TextVQAExample(question_id=2, question="q", answers=["stop"] * 10),
                TextVQAExample(question_id=3, question="q", answers=["no"] * 10)]
    out = score_textvqa(examples, {"1": "2", "2": "STOP!"})  # 3 is missing -> 0
    assert out["accuracy"]["VQA"] == pytest.approx(100 * (0.9 + 1.0 + 0.0) / 3)


def test_score_textvqa_needs_answers():
    with pytest.raises(ValueError, match="no reference answers"):
        score_textvqa([TextVQAExample(question_id=1, question="q")], {"1": "a"})
