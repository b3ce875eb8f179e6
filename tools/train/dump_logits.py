#!/usr/bin/python3
"""tools/train/dump_logits.py — logits of a Hugging Face model directory, for cross-checks.

  dump_logits.py MODEL_DIR --tokens 1,2,3 --out F.bin [--transformers]
  dump_logits.py MODEL_DIR --tokens @ids.txt --out F.bin

Runs the token sequence (comma- or whitespace-separated ids; @FILE reads them from a file)
through the model in one causal forward pass, in float32 on the CPU, and writes the logits
of every position to F.bin: float32 little-endian, n_tokens rows of vocab_size values, no
header (stdout says the shape). By default the model is this factory's PyTorch code
(model.py) on the directory's config.json and model.safetensors; with --transformers it is
transformers' AutoModelForCausalLM (where transformers is installed), which proves the
directory loads as a standard Llama. mccom's tests compare these with the engine's logits on
the GGUF that `mccom convert hf` makes from the same directory.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import load_hf_dir  # noqa: E402


def parse_tokens(s):
    if s.startswith("@"):
        with open(s[1:]) as f:
            s = f.read()
    return [int(x) for x in s.replace(",", " ").split()]


@torch.no_grad()
def logits(model_dir, ids, use_transformers=False):
    x = torch.tensor([ids], dtype=torch.long)
    if use_transformers:
        from transformers import AutoModelForCausalLM
        m = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
        m.eval()
        return m(x).logits[0].float().numpy()
    return load_hf_dir(model_dir)(x)[0].float().numpy()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--transformers", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # the same summation order every run
    ids = parse_tokens(a.tokens)
    lg = np.ascontiguousarray(logits(a.model_dir, ids, a.transformers), dtype="<f4")
    lg.tofile(a.out)
    print("%s: %d x %d float32" % (a.out, lg.shape[0], lg.shape[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
