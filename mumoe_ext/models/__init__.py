"""Model layer: sparsify a Hugging Face model five ways, undo it, load models."""
from .adapters import Adapter, find_adapter
from .exact import generate_each
from .loading import load_model
from .mumoe_linear import MuMoELinear, cache_weights
from .prompt_context import PromptContext
from .selection import select_linears
from .sparsify import METHODS, restore, sparsify, sparsify_state

__all__ = ["Adapter", "find_adapter", "generate_each", "load_model", "MuMoELinear", "PromptContext", "cache_weights",
           "select_linears", "METHODS", "restore", "sparsify", "sparsify_state"]
