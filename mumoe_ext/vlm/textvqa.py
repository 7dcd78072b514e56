"""TextVQA scoring: VQA accuracy with the EvalAI answer normalisation, as implemented by the
m4c evaluator that LLaVA's ``eval_textvqa.py`` calls (our own code, same rules and quirks)."""
from __future__ import annotations

import re
from collections import Counter

_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
            "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = frozenset({"a", "an", "the"})
# Punctuation that is deleted when it touches a space and replaced by a space otherwise.
_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<",
                "@", "`", ",", "?", "!")
_DIGIT_COMMA_DIGIT = re.compile(r"(?<=\d)(,)+(?=\d)")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
# The reference passes re.UNICODE (= 32) as `count` to re.sub, so at most 32 periods go.
_MAX_PERIODS_REMOVED = 32

# Missing-apostrophe spellings and their canonical forms (EvalAI's list).
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't", "havent": "haven't",
    "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've",
    "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're",
    "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've",
    "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}


def _strip_punctuation(text: str) -> str:
    out = text
    # The digit-comma test looks at the input text, as the reference does (commas are already
    # gone by then, so in practice only the "touches a space" test decides).
    comma_between_digits = _DIGIT_COMMA_DIGIT.search(text) is not None
    for p in _PUNCTUATION:
        if p + " " in text or " " + p in text or comma_between_digits:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=_MAX_PERIODS_REMOVED)


def _digits_articles_contractions(text: str) -> str:
    words = [_NUMBERS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def normalize_answer(answer: str) -> str:
    """EvalAI's VQA answer normalisation: lower case, punctuation, number words to digits,
    articles dropped, contractions restored."""
    text = str(answer).lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _digits_articles_contractions(_strip_punctuation(text))


def vqa_accuracy(prediction: str, answers) -> float:
    """min(1, matches / 3) averaged over the leave-one-annotator-out subsets of the answers.

    With 10 answers this is the standard VQA/TextVQA score; with one answer, min(1, matches / 3).
    """
    gts = [normalize_answer(a) for a in answers]
    if not gts:
        raise ValueError("answers must hold at least one reference answer")
    pred = normalize_answer(prediction)
    matches = sum(g == pred for g in gts)
    if len(gts) == 1:
        return min(1.0, matches / 3)
    # Leaving out annotator i removes one match exactly when gts[i] equals the prediction.
    scores = [min(1.0, (matches - (g == pred)) / 3) for g in gts]
    return sum(scores) / len(scores)


def score_textvqa(examples, predictions: dict) -> dict:
    """Mean VQA accuracy in percent; ``predictions`` maps str(question_id) to the raw model text
    (missing predictions score 0)."""
    per_example, total = [], 0.0
    for ex in examples:
        if not ex.answers:
            raise ValueError(f"textvqa question {ex.question_id}: no reference answers to score "
                             f"against (use a split with answers, e.g. validation)")
        text = predictions.get(str(ex.question_id))
        acc = 0.0 if text is None else vqa_accuracy(text.strip(), ex.answers)
        total += acc
        per_example.append({"question_id": ex.question_id, "prediction": text,
                            "normalized": None if text is None else normalize_answer(text),
                            "accuracy": acc,
                            "top_answer": Counter(ex.answers).most_common(1)[0][0]})
    n = len(per_example)
    return {"task": "textvqa", "accuracy": {"VQA": 100.0 * total / n if n else None},
            "count": {"VQA": n}, "per_example": per_example}
