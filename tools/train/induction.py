#!/usr/bin/env python3
"""Where a checkpoint stands on copying: the copy probe of train.py and, per layer and query
head, the attention that goes where an induction head and a previous-token head look.

  induction.py CKPT [--length 64] [--seqs 4] [--threads 1]

On random ordinary tokens repeated once (the copy probe's input), for every position t of the
second copy: "induction" is the attention weight on t - L + 1 (the token after the previous
occurrence of the current token: what an induction head reads), "previous" the weight on t - 1
(what a previous-token head reads). Copying needs a previous-token head in one layer and an
induction head in a later one (Olsson et al., 2022); watching both shows the phase change
coming before the probe's top-1 accuracy moves.
"""
import argparse
import math
import pickle
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpuenv  # noqa: F401  (OpenBLAS core type before torch)
import torch  # noqa: E402

from model import Config, Llama, apply_rope  # noqa: E402


def attention_shares(model, x, length, check=False):
    """[(induction (H,), previous (H,))] per layer, means over sequences and positions. With
    check, the attention recomputed here must give the layer's own output (else ValueError)."""
    out = []

    def hook(mod, inp, res):
        h = inp[0]
        B, T, _ = h.shape
        c = mod.c
        q = mod.q_proj(h).view(B, T, c.n_head, c.head_dim).transpose(1, 2)
        k = mod.k_proj(h).view(B, T, c.n_head_kv, c.head_dim).transpose(1, 2)
        cos, sin = model.rope(T, h.device)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k = k.repeat_interleave(c.n_head // c.n_head_kv, dim=1)
        a = (q @ k.transpose(-1, -2)) / math.sqrt(c.head_dim)
        a = a.masked_fill(torch.ones(T, T, dtype=torch.bool, device=h.device).triu(1), float("-inf"))
        a = a.softmax(-1)
        if check:
            v = mod.v_proj(h).view(B, T, c.n_head_kv, c.head_dim).transpose(1, 2)
            v = v.repeat_interleave(c.n_head // c.n_head_kv, dim=1)
            y = mod.o_proj((a @ v).transpose(1, 2).reshape(B, T, c.n_head * c.head_dim))
            err = (y - res).abs().max().item()
            if err > 1e-4 * max(1.0, res.abs().max().item()):
                raise ValueError("induction: recomputed attention differs from the layer's (%g)" % err)
        t = torch.arange(length + 1, 2 * length, device=h.device)
        out.append((a[:, :, t, t - length + 1].mean((0, 2)), a[:, :, t, t - 1].mean((0, 2))))

    hooks = [blk.self_attn.register_forward_hook(hook) for blk in model.model.layers]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for hk in hooks:
            hk.remove()
    return out, logits


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt")
    ap.add_argument("--length", type=int, default=64, help="tokens per copy (64)")
    ap.add_argument("--seqs", type=int, default=4, help="sequences (4)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.length < 2 or a.seqs < 1 or a.threads < 1:
        raise SystemExit("induction: --length must be >= 2, --seqs and --threads >= 1")
    torch.set_num_threads(a.threads)
    try:
        ck = torch.load(a.ckpt, map_location="cpu", weights_only=False)
        cfg_d, state = ck["config"], ck["model"]
    except (OSError, RuntimeError, KeyError, TypeError, EOFError, pickle.UnpicklingError) as e:
        raise SystemExit("induction: %s is not a readable train.py checkpoint (%s)" % (a.ckpt, e))
    cfg = Config.from_dict(cfg_d)
    if 2 * a.length > cfg.n_ctx:
        raise SystemExit("induction: --length %d is too long for context %d" % (a.length, cfg.n_ctx))
    model = Llama(cfg)
    model.load_state_dict(state)
    model.eval()
    g = torch.Generator().manual_seed(a.seed)
    lo = min(300, cfg.n_vocab // 2)
    seq = torch.randint(lo, cfg.n_vocab, (a.seqs, a.length), generator=g)
    x = torch.cat([seq, seq], dim=1)
    shares, logits = attention_shares(model, x, a.length)
    pred = logits[:, a.length:-1].argmax(-1)
    acc = (pred == x[:, a.length + 1:]).float().mean().item()
    print("%s: step %s, %.1fM tokens seen; copy probe top-1 %.3f (%d x %d tokens)" % (
        a.ckpt, ck.get("step"), ck.get("tokens_seen", 0) / 1e6, acc, a.seqs, a.length))
    for i, (ind, prev) in enumerate(shares):
        print("layer %2d  induction %s  previous-token %s" % (
            i, " ".join("%.3f" % v for v in ind.tolist()), " ".join("%.3f" % v for v in prev.tolist())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
