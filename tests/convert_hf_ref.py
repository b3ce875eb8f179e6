#!/usr/bin/python3
"""tests/convert_hf_ref.py — Hugging Face model directories and reference logits for
tests/test_convert_hf.c (`mccom convert hf`).

  convert_hf_ref.py llama OUT --vocab TOKENIZER.json [--tied] [--dtype f32|f16|bf16] [--seed N]
      A random LlamaForCausalLM (model.py's shape, 64 wide, GQA 4/2, 2 layers, context 128),
      written by export.py from a checkpoint like the trainer's. The weights are scaled so
      that attention is sharp and the logits are O(several): a wrong RoPE order, a missing
      permutation or a swapped tensor moves them by O(1). Reference logits: dump_logits.py.
  convert_hf_ref.py qwen2 OUT --vocab TOKENIZER.json --tokens IDS --ref F.bin [--seed N]
      A random Qwen2ForCausalLM (q/k/v biases, tied output, theta 1e6, eps 1e-6, vocab_size
      padded past the tokenizer as Qwen2.5's is) written with export.save_safetensors, and
      its logits for IDS from the numpy float64 forward pass below, which shares no code
      with mccom or model.py (NeoX/rotate-half rope written out, GQA by repeating kv heads).
  convert_hf_ref.py shard DIR N
      Split DIR/model.safetensors into N files plus model.safetensors.index.json, as
      Hugging Face saves big checkpoints.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "train"))
import export  # noqa: E402
from model import Config, Llama  # noqa: E402


def random_llama(out, vocab, tied, dtype, seed):
    from tokfile import Vocab
    n_vocab = Vocab(vocab).n_vocab
    cfg = Config(n_vocab=n_vocab, n_embd=64, n_layer=2, n_head=4, n_head_kv=2, n_ff=160, n_ctx=128,
                 tied=tied)
    torch.manual_seed(seed)
    m = Llama(cfg)
    sd = {}
    with torch.no_grad():
        for name, p in m.state_dict().items():
            if name.endswith("norm.weight"):
                t = 1.0 + 0.2 * torch.randn(p.shape)
            elif name == "model.embed_tokens.weight":  # also the output when tied
                t = 0.4 * torch.randn(p.shape)
            elif name == "lm_head.weight":
                t = torch.randn(p.shape) * (3.0 / p.shape[1] ** 0.5)
            else:
                fan_in = p.shape[1]
                scale = 1.5 if ("q_proj" in name or "k_proj" in name) else 1.0
                t = torch.randn(p.shape) * (scale / fan_in ** 0.5)
            sd[name] = t
    if tied:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    os.makedirs(out, exist_ok=True)
    ck = os.path.join(out + ".ckpt.pt")
    torch.save({"config": cfg.to_dict(), "model": sd, "step": 0, "preset": "convert-test"}, ck)
    export.export(ck, vocab, out, dtype)
    os.remove(ck)


# ---------------------------------------------------------------- qwen2 (independent reference)
def qwen2_weights(rng, V, E, L, H, KV, D, F):
    def mat(rows, cols, scale=1.0):
        return (rng.standard_normal((rows, cols)) * (scale / np.sqrt(cols))).astype(np.float32)

    w = {"model.embed_tokens.weight": (0.4 * rng.standard_normal((V, E))).astype(np.float32),
         "model.norm.weight": (1 + 0.2 * rng.standard_normal(E)).astype(np.float32)}
    for l in range(L):
        p = "model.layers.%d." % l
        w[p + "input_layernorm.weight"] = (1 + 0.2 * rng.standard_normal(E)).astype(np.float32)
        w[p + "post_attention_layernorm.weight"] = (1 + 0.2 * rng.standard_normal(E)).astype(np.float32)
        w[p + "self_attn.q_proj.weight"] = mat(H * D, E, 1.5)
        w[p + "self_attn.k_proj.weight"] = mat(KV * D, E, 1.5)
        w[p + "self_attn.v_proj.weight"] = mat(KV * D, E)
        w[p + "self_attn.q_proj.bias"] = (0.5 * rng.standard_normal(H * D)).astype(np.float32)
        w[p + "self_attn.k_proj.bias"] = (0.5 * rng.standard_normal(KV * D)).astype(np.float32)
        w[p + "self_attn.v_proj.bias"] = (0.5 * rng.standard_normal(KV * D)).astype(np.float32)
        w[p + "self_attn.o_proj.weight"] = mat(E, H * D)
        w[p + "mlp.gate_proj.weight"] = mat(F, E)
        w[p + "mlp.up_proj.weight"] = mat(F, E)
        w[p + "mlp.down_proj.weight"] = mat(E, F)
    return w


def qwen2_forward(w, ids, L, H, KV, D, theta, eps):
    """float64 logits (T, V) of a tied Qwen2 model: RMSNorm, rotate-half rope, GQA, SwiGLU."""
    g = {k: v.astype(np.float64) for k, v in w.items()}
    T = len(ids)
    x = g["model.embed_tokens.weight"][np.asarray(ids)]

    def rms(v, weight):
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + eps) * weight

    half = D // 2
    inv = theta ** (-(np.arange(half) * 2.0) / D)
    ang = np.arange(T)[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

    def rope(v):  # (T, heads, D): dimension i pairs with i + D/2
        a, b = v[..., :half], v[..., half:]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)

    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    for l in range(L):
        p = "model.layers.%d." % l
        h = rms(x, g[p + "input_layernorm.weight"])
        q = (h @ g[p + "self_attn.q_proj.weight"].T + g[p + "self_attn.q_proj.bias"]).reshape(T, H, D)
        k = (h @ g[p + "self_attn.k_proj.weight"].T + g[p + "self_attn.k_proj.bias"]).reshape(T, KV, D)
        v = (h @ g[p + "self_attn.v_proj.weight"].T + g[p + "self_attn.v_proj.bias"]).reshape(T, KV, D)
        q, k = rope(q), rope(k)
        k = np.repeat(k, H // KV, axis=1)  # query head j reads kv head j // (H / KV)
        v = np.repeat(v, H // KV, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(D)
        s = np.where(mask[None], -np.inf, s)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", s, v).reshape(T, H * D)
        x = x + o @ g[p + "self_attn.o_proj.weight"].T
        h = rms(x, g[p + "post_attention_layernorm.weight"])
        a = h @ g[p + "mlp.gate_proj.weight"].T
        x = x + ((a / (1 + np.exp(-a))) * (h @ g[p + "mlp.up_proj.weight"].T)) @ g[p + "mlp.down_proj.weight"].T
    return rms(x, g["model.norm.weight"]) @ g["model.embed_tokens.weight"].T


def random_qwen2(out, vocab, ids, ref, seed):
    with open(vocab, encoding="utf-8") as f:
        tj = json.load(f)
    n_tok = max(list(tj["model"]["vocab"].values()) + [a["id"] for a in tj.get("added_tokens", [])]) + 1
    V, E, L, H, KV, D, F = n_tok + 38, 64, 2, 4, 2, 16, 96
    theta, eps = 1000000.0, 1e-6
    w = qwen2_weights(np.random.default_rng(seed), V, E, L, H, KV, D, F)
    os.makedirs(out, exist_ok=True)
    export.save_safetensors(os.path.join(out, "model.safetensors"),
                            {k: torch.from_numpy(v) for k, v in w.items()})
    cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": E,
           "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": H,
           "num_key_value_heads": KV, "max_position_embeddings": 4096, "rms_norm_eps": eps,
           "rope_theta": theta, "rope_scaling": None, "tie_word_embeddings": True,
           "vocab_size": V, "hidden_act": "silu", "use_sliding_window": False,
           "sliding_window": 4096, "max_window_layers": 2, "attention_dropout": 0.0,
           "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "float32"}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "model_max_length": 4096}, f, indent=1)
    shutil.copyfile(vocab, os.path.join(out, "tokenizer.json"))
    lg = qwen2_forward(w, ids, L, H, KV, D, theta, eps)
    np.ascontiguousarray(lg, dtype="<f4").tofile(ref)


def shard(d, n):
    src = os.path.join(d, "model.safetensors")
    t = export.load_safetensors(src)
    names = sorted(t)
    wm, total = {}, 0
    for i in range(n):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, n)
        part = {k: t[k] for k in names[i::n]}
        export.save_safetensors(os.path.join(d, fn), part)
        for k in part:
            wm[k] = fn
            total += part[k].numel() * part[k].element_size()
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=1)
    os.remove(src)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("llama")
    p.add_argument("out")
    p.add_argument("--vocab", required=True)
    p.add_argument("--tied", action="store_true")
    p.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("qwen2")
    p.add_argument("out")
    p.add_argument("--vocab", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--ref", required=True)
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("shard")
    p.add_argument("dir")
    p.add_argument("n", type=int)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.cmd == "llama":
        random_llama(a.out, a.vocab, a.tied, a.dtype, a.seed)
    elif a.cmd == "qwen2":
        random_qwen2(a.out, a.vocab, [int(x) for x in a.tokens.split(",")], a.ref, a.seed)
    else:
        shard(a.dir, a.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
