#!/usr/bin/python3
"""tools/train/export.py — a training checkpoint to a Hugging Face model directory.

  export.py --ckpt runs/cpu-small/ckpt.pt --vocab vocab/tokenizer.json --out hf/cpu-small [--dtype f32]

Writes what transformers (AutoModelForCausalLM / AutoTokenizer) and vLLM load as they are:
  config.json              LlamaForCausalLM: hidden_size, intermediate_size, num_hidden_layers,
                           num_attention_heads, num_key_value_heads, head_dim, vocab_size,
                           max_position_embeddings, rms_norm_eps, rope_theta, tie_word_embeddings,
                           bos/eos token ids, hidden_act silu, no biases
  model.safetensors        the state dict under Hugging Face's names (model.py), f32 by
                           default (f16/bf16 on request); lm_head.weight left out when tied
  tokenizer.json           copied from the vocabulary
  tokenizer_config.json, special_tokens_map.json, generation_config.json
  mccom.json               training facts (preset, steps, tokens, validation losses)
Then `mccom convert hf OUT OUT.gguf` makes the GGUF file. RoPE: the weights use Hugging Face's
rotate_half order (see model.py); the converter permutes q/k rows for llama.cpp's order.

safetensors (written and read here by hand, since Debian has no python3-safetensors):
  u64 little-endian N; N bytes of JSON {"name": {"dtype": "F32", "shape": [...],
  "data_offsets": [begin, end]}, ..., "__metadata__": {"format": "pt"}}, padded with spaces
  to a multiple of 8; then the raw little-endian tensor bytes, offsets relative to that point.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Config, Llama  # noqa: E402
from tokfile import Vocab  # noqa: E402
from train import load_ckpt  # noqa: E402

ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
ST_TORCH = {v: k for k, v in ST_DTYPES.items()}
ST_SIZE = {"F32": 4, "F16": 2, "BF16": 2}


def save_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> torch tensor (f32/f16/bf16), written in sorted name order."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        b = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            f.seek(base + a)
            raw = f.read(b - a)
            dt = info["dtype"]
            if dt == "BF16":
                t = torch.from_numpy(np.frombuffer(raw, dtype="<i2").copy()).view(torch.bfloat16)
            else:
                t = torch.from_numpy(np.frombuffer(raw, dtype={"F32": "<f4", "F16": "<f2"}[dt]).copy())
            out[name] = t.reshape(info["shape"])
    return out


def hf_config(cfg, eos_id, bos_id, dtype_name):
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": cfg.n_embd,
        "intermediate_size": cfg.n_ff,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_head_kv,
        "head_dim": cfg.head_dim,
        "vocab_size": cfg.n_vocab,
        "max_position_embeddings": cfg.n_ctx,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": None,
        "tie_word_embeddings": cfg.tied,
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "use_cache": True,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "torch_dtype": dtype_name,
    }


def config_from_hf(d):
    """Our Config from a config.json (the inverse of hf_config)."""
    return Config(n_vocab=d["vocab_size"], n_embd=d["hidden_size"], n_layer=d["num_hidden_layers"],
                  n_head=d["num_attention_heads"],
                  n_head_kv=d.get("num_key_value_heads", d["num_attention_heads"]),
                  n_ff=d["intermediate_size"], n_ctx=d["max_position_embeddings"],
                  tied=d.get("tie_word_embeddings", False), rope_theta=d.get("rope_theta", 10000.0),
                  norm_eps=d.get("rms_norm_eps", 1e-6))


def load_hf_dir(path):
    """Our Llama with the weights of a Hugging Face directory written by export()."""
    with open(os.path.join(path, "config.json")) as f:
        cfg = config_from_hf(json.load(f))
    sd = {k: v.float() for k, v in load_safetensors(os.path.join(path, "model.safetensors")).items()}
    if cfg.tied:
        sd.setdefault("lm_head.weight", sd["model.embed_tokens.weight"])
    m = Llama(cfg)
    m.load_state_dict(sd, strict=True)
    m.eval()
    return m


def export(ckpt_path, vocab_path, out, dtype="f32"):
    ck = load_ckpt(ckpt_path)
    cfg = Config.from_dict(ck["config"])
    vocab = Vocab(vocab_path)
    if vocab.n_vocab > cfg.n_vocab:
        raise SystemExit("export: vocabulary has %d tokens, model %d" % (vocab.n_vocab, cfg.n_vocab))
    eos = vocab.id("<|endoftext|>")
    tdt = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    sd = {k: v.to(tdt) for k, v in ck["model"].items()}
    if cfg.tied:
        sd.pop("lm_head.weight", None)
    os.makedirs(out, exist_ok=True)
    save_safetensors(os.path.join(out, "model.safetensors"), sd, {"format": "pt"})
    dname = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[dtype]
    files = {
        "config.json": hf_config(cfg, eos, eos, dname),
        "generation_config.json": {"bos_token_id": eos, "eos_token_id": eos},
    }
    specials = [s for s in ("<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                            "<|file_sep|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>",
                            "<fim_pad>") if vocab.id(s) is not None]
    tok_cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": cfg.n_ctx,
               "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
               "unk_token": "<|endoftext|>", "add_bos_token": False, "add_eos_token": False,
               "clean_up_tokenization_spaces": False, "additional_special_tokens": specials}
    pad = next((s for s in ("<|fim_pad|>", "<fim_pad>") if vocab.id(s) is not None), None)
    if pad:
        tok_cfg["pad_token"] = pad
    files["tokenizer_config.json"] = tok_cfg
    files["special_tokens_map.json"] = {k: tok_cfg[k] for k in ("bos_token", "eos_token", "unk_token",
                                                                 "additional_special_tokens")}
    if "pad_token" in tok_cfg:
        files["special_tokens_map.json"]["pad_token"] = tok_cfg["pad_token"]
    final = {}
    fj = os.path.join(os.path.dirname(ckpt_path), "final.json")
    if os.path.exists(fj):
        with open(fj) as f:
            final = json.load(f)
    files["mccom.json"] = {"preset": ck.get("preset"), "step": ck["step"], "config": cfg.to_dict(),
                           "rope": "hf-rotate-half", "train": final}
    for name, obj in files.items():
        with open(os.path.join(out, name), "w") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")
    shutil.copyfile(vocab_path, os.path.join(out, "tokenizer.json"))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--vocab", required=True, help="tokenizer.json of the vocabulary")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    a = ap.parse_args(argv)
    print(export(a.ckpt, a.vocab, a.out, a.dtype))
    return 0


if __name__ == "__main__":
    sys.exit(main())
