"""Options shared by several commands, defined once so their names and help never drift apart.

Values are checked by `Settings` (config.py), not here: a flag and `config set` obey one rule.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

Profile = Annotated[Optional[str], typer.Option("--profile", "-p", help="Profile whose preferences steer the answer.")]
Llm = Annotated[Optional[str], typer.Option("--llm", help="The large model: a catalogue name or a .gguf path (default: config, else the embedded SmolLM2).")]
Slm = Annotated[Optional[str], typer.Option("--slm", help="The small model that scores attributes; must share the LLM's tokenizer (default: config, else embedded).")]
Beta = Annotated[Optional[float], typer.Option("--beta", help="Strength of personalization: smaller steers harder (paper: 0.5). 'inf' turns it off.")]
Attributes = Annotated[Optional[int], typer.Option("--attributes", "-k", help="Number of attributes used in decoding, by largest |weight| (paper: 7).")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Random seed (>= 0): the same seed gives the same answer (default: config, else random).")]
Greedy = Annotated[bool, typer.Option("--greedy", help="Always take the most likely token (deterministic).")]
Temperature = Annotated[Optional[float], typer.Option("--temperature", help="Sampling temperature (default: config).")]
TopP = Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling mass (default 0.9; 1 turns it off).")]
TopK = Annotated[Optional[int], typer.Option("--top-k", help="Keep only the k most likely tokens (0: off; default: config).")]
MinP = Annotated[Optional[float], typer.Option("--min-p", help="Drop tokens below this fraction of the top token's probability (0: off; default: config).")]
RepeatPenalty = Annotated[Optional[float], typer.Option("--repeat-penalty", help="Penalty for repeating recent tokens (1: off; default: config).")]
MaxTokens = Annotated[Optional[int], typer.Option("--max-tokens", help="Stop after this many tokens (default: config, 500).")]
NCtx = Annotated[Optional[int], typer.Option("--n-ctx", help="Context size in tokens for each sequence.")]
NGpuLayers = Annotated[Optional[int], typer.Option("--n-gpu-layers", help="Layers to offload to the GPU (-1: all; 0: CPU only). Needs a CUDA or Metal build.")]
Threads = Annotated[Optional[int], typer.Option("--threads", help="CPU threads (0: all).")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Method = Annotated[Optional[str], typer.Option("--method", help="How pairs become weights: bt (default: regularized Bradley–Terry, strength chosen from your pairs), paper (the closed form (W−L)/‖W−L‖) or logreg.")]
Reward = Annotated[Optional[str], typer.Option("--reward", help="Reward per response: 'sum' of token log-ratios (the paper) or 'mean' per token.")]
MaxResponseTokens = Annotated[Optional[int], typer.Option("--max-response-tokens", help="Score at most this many tokens of each response (0: all); faster on slow machines.")]
