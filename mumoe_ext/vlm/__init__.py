"""µ-MoE and the offline baselines on LLaVA, with the ScienceQA and TextVQA evaluations of the
paper (Tables 2 and 3). See docs/vlm.md."""
from .calibration import calibration_batches, load_calibration
from .data import ScienceQAExample, TextVQAExample, load_examples
from .generate import generate_predictions
from .model import llava_parts, load_llava, restore
from .predictions import read_predictions, write_predictions
from .prompts import chat_prompt, scienceqa_question, textvqa_question
from .report import format_table
from .runner import VLMEvalConfig, evaluate_vlm
from .scienceqa import extract_letter, score_scienceqa
from .scoring import score
from .sparsify import METHODS, sparsify_llava
from .textvqa import normalize_answer, score_textvqa, vqa_accuracy

__all__ = ["ScienceQAExample", "TextVQAExample", "VLMEvalConfig", "METHODS",
           "calibration_batches", "chat_prompt", "evaluate_vlm", "extract_letter", "format_table",
           "generate_predictions", "llava_parts", "load_calibration", "load_examples",
           "load_llava", "normalize_answer", "read_predictions", "restore", "scienceqa_question",
           "score", "score_scienceqa", "score_textvqa", "sparsify_llava", "textvqa_question",
           "vqa_accuracy", "write_predictions"]
