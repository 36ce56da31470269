"""Resident memory: the weights are in memory once, whatever number of roles and sequences.

(a) the model with one context of one sequence; (b) the same GGUF opened as both LLM and sLM
with 8 sequences (plus the LLM's context). Each case runs in a fresh process; the difference
(b) − (a) should be the extra KV-cache and compute buffers, not a second copy of the weights.

    python benchmarks/memory.py [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASE = r"""
import json, sys
from drift_local.sessions.runtime import model_file
from drift_local.engine.context import Context, ContextSettings
from drift_local.engine.model import load_model

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

path, case = sys.argv[1], sys.argv[2]
settings = ContextSettings(n_ctx=2048)
llm = load_model(model_file(path))
contexts = [Context(llm, 1, settings)]
if case == "b":
    slm = load_model(model_file(path))  # the same file as sLM: must be the same object
    assert slm is llm
    contexts.append(Context(slm, 8, settings))
for c in contexts:
    c.clear()  # zeroes the KV cache: every page of it becomes resident
    c.last_logits({0: list(range(10, 60))})  # touches every weight page, as real use does
buffers = {k: sum(c.buffer_sizes_mib()[k] for c in contexts) for k in ("kv", "compute", "output")}
print(json.dumps({"rss_mib": rss_mib(), "weights_mib": llm.size_bytes / 2**20, **buffers}))
"""


def measure(model: str, case: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CASE, model, case], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="catalogue name or .gguf path (default: embedded SmolLM2)")
    args = parser.parse_args()
    a, b = measure(args.model, "a"), measure(args.model, "b")
    print(f"weights (GGUF tensors):           {a['weights_mib']:8.1f} MiB")
    for name, m in (("(a) 1 context x 1 sequence", a), ("(b) LLM+sLM, 1 + 8 sequences", b)):
        print(f"{name:32s}  RSS {m['rss_mib']:8.1f} MiB   KV {m['kv']:7.1f}   compute {m['compute']:7.1f}   output {m['output']:5.1f}")
    grown = b["rss_mib"] - a["rss_mib"]
    deltas = {k: b[k] - a[k] for k in ("kv", "compute", "output")}
    print(
        f"(b) - (a): RSS +{grown:.1f} MiB = KV +{deltas['kv']:.1f} (zeroed, so resident) + {grown - deltas['kv']:.1f} of "
        f"+{deltas['compute'] + deltas['output']:.1f} compute/output buffers (allocated, touched as used)"
    )
    verdict = "once" if grown <= sum(deltas.values()) + 0.25 * a["weights_mib"] else "MORE THAN ONCE"
    print(f"weights in memory {verdict}: a second copy would add {a['weights_mib']:.1f} MiB beyond the buffers")

if __name__ == "__main__":
    main()
