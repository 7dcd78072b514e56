"""Evaluation and calibration text with the published joining rules (DESIGN §2).

Sources, in order: local files when a data folder is given (``--data-dir`` / ``$MUMOE_DATA_DIR``),
else the `datasets` hub when that package is installed and reachable, else ``../shared/data``
beside the repository. Local layout (see shared/data/README.md):

- wikitext2: ``wikitext2/test.raw`` (eval: strip ``\\r``, join rows with ``"\\n\\n"``),
  ``wikitext2/valid.tokens`` (calibration, rows joined with ``" "``)
- ptb: ``ptb/test.txt`` / ``ptb/valid.txt`` (strip each line, join with ``" "``)
- c4: ``c4/train-00000.first1000.jsonl``: documents 0-499 are the *evaluation stand-in* for the
  validation split (joined with ``" "``, first 256 × seqlen tokens), documents 500-999 the
  calibration pool. Every C4 number from local files is therefore "C4 (train-excerpt stand-in)".

Any other name is read as a text file path (named by its stem), used as-is.
"""
from __future__ import annotations

import json
import os
import random

import torch

DATASETS = ("wikitext2", "ptb", "c4")
C4_EVAL_DOCS = range(0, 500)
C4_CALIB_DOCS = range(500, 1000)
C4_EVAL_WINDOWS = 256  # the protocol keeps the first 256 x seqlen tokens of C4
C4_LOCAL_NOTE = ("C4 = documents 0-499 of the en train shard 00000 excerpt (validation stand-in); "
                 "calibration from documents 500-999")
_REPO_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "..", "shared", "data")
_C4_FILE = os.path.join("c4", "train-00000.first1000.jsonl")
_LOCAL_FILES = {
    ("wikitext2", "eval"): os.path.join("wikitext2", "test.raw"),
    ("wikitext2", "calib"): os.path.join("wikitext2", "valid.tokens"),
    ("ptb", "eval"): os.path.join("ptb", "test.txt"),
    ("ptb", "calib"): os.path.join("ptb", "valid.txt"),
    ("c4", "eval"): _C4_FILE,
    ("c4", "calib"): _C4_FILE,
}


class DataNotFoundError(FileNotFoundError):
    pass


def dataset_label(name: str) -> str:
    """Short name of a dataset or text file (its stem)."""
    return name if name in DATASETS else os.path.splitext(os.path.basename(name))[0]


def default_data_dir() -> str | None:
    env = os.environ.get("MUMOE_DATA_DIR")
    if env:
        return env
    return os.path.normpath(_REPO_DATA) if os.path.isdir(_REPO_DATA) else None


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return f.read().replace("\r", "").splitlines(keepends=True)


def _c4_docs(path: str, docs: range) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= docs.stop:
                break
            if i >= docs.start:
                out.append(json.loads(line)["text"])
    return out


def _local(name: str, split: str, data_dir: str):
    path = os.path.join(data_dir, _LOCAL_FILES[(name, split)])
    if not os.path.isfile(path):
        raise DataNotFoundError(f"{name}: {path} not found (data dir {data_dir!r}; expected the "
                                f"layout of shared/data, see its README.md)")
    if name == "wikitext2":
        lines = _read_lines(path)
        return "\n\n".join(lines) if split == "eval" else " ".join(lines)
    if name == "ptb":
        return " ".join(line.strip() for line in _read_lines(path))
    docs = _c4_docs(path, C4_EVAL_DOCS if split == "eval" else C4_CALIB_DOCS)
    return " ".join(docs) if split == "eval" else docs


def _hub(name: str, split: str):
    """The published splits from the `datasets` hub (only when installed and online)."""
    from datasets import load_dataset  # optional dependency
    if name == "wikitext2":
        rows = load_dataset("wikitext", "wikitext-2-raw-v1",
                            split="test" if split == "eval" else "train")["text"]
        return "\n\n".join(rows) if split == "eval" else " ".join(rows)
    if name == "ptb":
        rows = load_dataset("ptb_text_only", "penn_treebank",
                            split="test" if split == "eval" else "train")["sentence"]
        return " ".join(rows)
    if split == "eval":
        rows = load_dataset("allenai/c4", data_files={"validation": "en/c4-validation.00000-of-00008.json.gz"},
                            split="validation")["text"]
        return " ".join(rows[:1100])
    return load_dataset("allenai/c4", data_files={"train": "en/c4-train.00000-of-01024.json.gz"},
                        split="train")["text"]


def _hub_available() -> bool:
    import importlib.util
    return (importlib.util.find_spec("datasets") is not None
            and os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("1", "true", "TRUE")
            and os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "TRUE"))


def load_text(name: str, split: str = "eval", data_dir: str | None = None):
    """The joined text of `name` for `split` ("eval" or "calib"); c4 calib is a list of documents.
    Returns (text, source) where source is "local:<dir>", "hub" or "file"."""
    if split not in ("eval", "calib"):
        raise ValueError(f"split must be 'eval' or 'calib', got {split!r}")
    if name not in DATASETS:
        if not os.path.isfile(name):
            raise DataNotFoundError(f"dataset {name!r} is neither one of {DATASETS} nor a text file")
        with open(name, encoding="utf-8") as f:
            return f.read(), "file"
    explicit = data_dir or os.environ.get("MUMOE_DATA_DIR")
    if explicit:
        return _local(name, split, explicit), f"local:{explicit}"
    if _hub_available():
        try:
            return _hub(name, split), "hub"
        except Exception:  # offline or hub layout changed: fall back to local copies
            pass
    fallback = default_data_dir()
    if fallback is None:
        raise DataNotFoundError(
            f"{name}: no offline copy found and the `datasets` hub is not available. Point the "
            f"harness at local files with --data-dir DIR or MUMOE_DATA_DIR=DIR (layout: "
            f"wikitext2/test.raw, ptb/test.txt, c4/train-00000.first1000.jsonl, ...), or "
            f"evaluate any text file with --text-file PATH")
    return _local(name, split, fallback), f"local:{fallback}"


def _encode(tokenizer, text: str) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt", verbose=False).input_ids
    return ids.reshape(-1).long()


def eval_tokens(name: str, tokenizer, seqlen: int, data_dir: str | None = None):
    """Returns (token ids 1-D, source); C4 keeps the first 256 x seqlen tokens (protocol)."""
    text, source = load_text(name, "eval", data_dir)
    ids = _encode(tokenizer, text)
    if name == "c4":
        ids = ids[:C4_EVAL_WINDOWS * seqlen]
    return ids, source


def calibration_windows(name: str, tokenizer, nsamples: int, seqlen: int, seed: int = 0,
                        data_dir: str | None = None) -> torch.LongTensor:
    """`nsamples` random windows (nsamples, seqlen) of calibration text, as the references draw
    them: from the joined token stream, or for C4 a random document longer than seqlen."""
    if nsamples < 1 or seqlen < 1:
        raise ValueError(f"nsamples and seqlen must be >= 1, got {nsamples}, {seqlen}")
    text, _ = load_text(name, "calib", data_dir)
    rng = random.Random(seed)
    windows = []
    if isinstance(text, list):  # C4: a pool of documents
        long_docs = {}
        for _ in range(nsamples):
            for _attempt in range(100 * len(text)):
                i = rng.randint(0, len(text) - 1)
                ids = long_docs.get(i)
                if ids is None:
                    ids = long_docs[i] = _encode(tokenizer, text[i])
                if ids.numel() > seqlen:
                    break
            else:
                raise ValueError(f"calib: no {name} document is longer than seqlen={seqlen} tokens")
            start = rng.randint(0, ids.numel() - seqlen - 1)
            windows.append(ids[start:start + seqlen])
    else:
        ids = _encode(tokenizer, text)
        if ids.numel() <= seqlen:
            raise ValueError(f"calib: {name} has {ids.numel()} tokens, fewer than seqlen+1={seqlen + 1}")
        for _ in range(nsamples):
            start = rng.randint(0, ids.numel() - seqlen - 1)
            windows.append(ids[start:start + seqlen])
    return torch.stack(windows)
