"""Catalogue of known GGUF models (catalog.toml); installed as drift_local.known_models."""
