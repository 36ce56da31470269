"""Package data: the paper's attribute prompts, example pairs and everyday prompts."""
