"""drift-local: personalize a local LLM from a few dozen choices, with no training."""

__version__ = "0.1.0"
