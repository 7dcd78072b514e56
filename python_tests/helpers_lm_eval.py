"""Local lm-eval tasks (YAML + jsonl written into a test's tmp dir) for the lm-eval tests.

Tasks over the tiny word-level tokenizer's words (one word = one token, so lm-eval's
word_perplexity is the token perplexity):
- ``tiny_mc``      multiple choice, 4 choices of 1-3 words (one-word choices share a context, so
                   lm-eval's one-token-continuation cache is exercised too)
- ``tiny_ll``      loglikelihood: a window's first half as context, its second half as target
- ``tiny_rolling`` loglikelihood_rolling over documents of ROLLING_WORDS words
- ``tiny_gen``     generate_until, greedy, at most 4 new tokens
and, from real text (for the SmolLM2 check): ``ptb_cloze``, multiple choice over PTB test
sentences (the true next 3 words against 3 words of other sentences).
"""
from __future__ import annotations

import json
import os
import random

from helpers_models import WORDS

ROLLING_WORDS = 23
LL_WINDOW = 12


def _words(rng, n):
    return " ".join(rng.choice(WORDS[:40]) if rng.random() < 0.7 else rng.choice(WORDS)
                    for _ in range(n))


def _write(folder, name, docs, yaml_body):
    data = os.path.join(folder, f"{name}.jsonl")
    with open(data, "w") as f:
        for doc in docs:
            f.write(json.dumps(doc) + "\n")
    with open(os.path.join(folder, f"{name}.yaml"), "w") as f:
        f.write(f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                f"    test: {data}\n  cache_dir: {os.path.join(folder, 'hf_cache')}\n"
                f"test_split: test\n{yaml_body}")


def mc_docs(n=12, seed=0):
    rng = random.Random(seed)
    return [{"q": _words(rng, rng.randint(4, 10)),
             "choices": [_words(rng, rng.randint(1, 3)) for _ in range(4)],
             "label": rng.randint(0, 3)} for _ in range(n)]


def ll_docs(n=6, seed=1):
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        words = _words(rng, LL_WINDOW).split()
        docs.append({"ctx": " ".join(words[:LL_WINDOW // 2]),
                     # lm-eval puts no delimiter between a loglikelihood context and target
                     "cont": " " + " ".join(words[LL_WINDOW // 2:])})
    return docs


def rolling_docs(n=5, seed=2, words=ROLLING_WORDS):
    rng = random.Random(seed)
    return [{"text": _words(rng, words)} for _ in range(n)]


def gen_docs(n=6, seed=3):
    rng = random.Random(seed)
    return [{"q": _words(rng, rng.randint(3, 9)), "a": _words(rng, 2)} for _ in range(n)]


MC_YAML = """output_type: multiple_choice
doc_to_text: "{{q}}"
doc_to_choice: "{{choices}}"
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
LL_YAML = """output_type: loglikelihood
doc_to_text: "{{ctx}}"
doc_to_target: "{{cont}}"
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
"""
ROLLING_YAML = """output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{text}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
"""
GEN_YAML = """output_type: generate_until
doc_to_text: "{{q}}"
doc_to_target: "{{a}}"
generation_kwargs:
  until: ["w0"]
  max_gen_toks: 4
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def write_tiny_tasks(folder) -> str:
    os.makedirs(folder, exist_ok=True)
    _write(folder, "tiny_mc", mc_docs(), MC_YAML)
    _write(folder, "tiny_ll", ll_docs(), LL_YAML)
    _write(folder, "tiny_rolling", rolling_docs(), ROLLING_YAML)
    _write(folder, "tiny_gen", gen_docs(), GEN_YAML)
    return str(folder)


def ptb_cloze_docs(ptb_test: str, n=6, ctx_words=8, cont_words=3, seed=0):
    with open(ptb_test, encoding="utf-8") as f:
        sents = [line.split() for line in f if len(line.split()) >= ctx_words + cont_words]
    rng = random.Random(seed)
    picked = rng.sample(sents, n + 3 * n)
    docs = []
    for i in range(n):
        s = picked[i]
        true = " ".join(s[ctx_words:ctx_words + cont_words])
        others = [" ".join(o[ctx_words:ctx_words + cont_words]) for o in picked[n + 3 * i:n + 3 * i + 3]]
        label = rng.randint(0, 3)
        choices = others[:label] + [true] + others[label:]
        docs.append({"q": " ".join(s[:ctx_words]), "choices": choices, "label": label})
    return docs


def write_ptb_cloze(folder, ptb_test: str) -> str:
    os.makedirs(folder, exist_ok=True)
    _write(folder, "ptb_cloze", ptb_cloze_docs(ptb_test), MC_YAML)
    return str(folder)
