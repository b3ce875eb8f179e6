"""tools/train/model.py — the llama-architecture decoder that mccom's factory trains.

RMSNorm (pre-norm), rotary position embeddings, grouped-query attention, SwiGLU MLP, no
biases, optional tied input/output embeddings. Parameter names and layouts are exactly
Hugging Face's LlamaForCausalLM (model.embed_tokens.weight, model.layers.N.self_attn.q_proj
.weight, ..., lm_head.weight), so the state dict is written to model.safetensors unchanged.

RoPE convention (what the exporter and `mccom convert hf` must know): Hugging Face's
"rotate_half" order — dimension i of a head is rotated with dimension i + head_dim/2, with
frequency theta^(-2i/head_dim) for i < head_dim/2. llama.cpp's LLAMA architecture ("normal"
rope) rotates adjacent pairs (2i, 2i+1) instead, so a converter to GGUF arch "llama" must
permute the rows of q_proj and k_proj exactly as llama.cpp's convert_hf_to_gguf.py does for
every HF Llama checkpoint:
    w.reshape(n_head, 2, head_dim // 2, n_embd).swapaxes(1, 2).reshape(w.shape)
(n_head = num_key_value_heads for k_proj). Alternatively it may keep the rows as they are and
mark the file as NeoX-ordered rope; mccom's convert does the former, like llama.cpp.

Presets: PRESETS below (n_vocab comes from the vocabulary; n_ctx is the training context).
Attention uses F.scaled_dot_product_attention where PyTorch has it (2.x, fused on CUDA) and an
explicit causal softmax otherwise (Debian's torch 1.13); both compute the same function.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# name: n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx, tied.
# Approximate parameter counts are for a 16,384-token vocabulary.
PRESETS = {
    # tests: trains in seconds on one core
    "tiny-test": dict(n_embd=64, n_layer=2, n_head=4, n_head_kv=2, n_ff=160, n_ctx=64, tied=False),
    # the CPU-scale pair shipped in models/ (sizes picked from measured tokens/s, docs/training.md)
    "cpu-small": dict(n_embd=192, n_layer=4, n_head=3, n_head_kv=1, n_ff=512, n_ctx=2048, tied=True),
    "cpu-large": dict(n_embd=320, n_layer=6, n_head=5, n_head_kv=1, n_ff=864, n_ctx=2048, tied=True),
    # Models v2 (docs/training.md): the CPU-trained small model, context 512 for the bulk of
    # training (1024 in the final phase), one KV head; the large one grows from it by depth
    "v2-small": dict(n_embd=256, n_layer=6, n_head=4, n_head_kv=1, n_ff=704, n_ctx=512, tied=True),
    # ... and the large one: v2-small's layers stacked twice (train.py --init-from SMALL_CKPT
    # --grow-layers 12), then trained on (12.6M parameters, 8.5M without embeddings)
    "v2-large": dict(n_embd=256, n_layer=12, n_head=4, n_head_kv=1, n_ff=704, n_ctx=512, tied=True),
    # the release pair, trained on one H100 (~40M and ~180M parameters)
    "gpu-slm": dict(n_embd=512, n_layer=10, n_head=8, n_head_kv=4, n_ff=1408, n_ctx=2048, tied=True),
    "gpu-llm": dict(n_embd=1024, n_layer=14, n_head=16, n_head_kv=8, n_ff=2816, n_ctx=2048, tied=True),
}
ROPE_THETA = 10000.0
NORM_EPS = 1e-5


class Config:
    def __init__(self, n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx, tied=True,
                 rope_theta=ROPE_THETA, norm_eps=NORM_EPS):
        assert n_embd % n_head == 0 and n_head % n_head_kv == 0
        self.n_vocab, self.n_embd, self.n_layer = n_vocab, n_embd, n_layer
        self.n_head, self.n_head_kv, self.n_ff, self.n_ctx = n_head, n_head_kv, n_ff, n_ctx
        self.tied, self.rope_theta, self.norm_eps = bool(tied), float(rope_theta), float(norm_eps)
        self.head_dim = n_embd // n_head

    def to_dict(self):
        return {k: getattr(self, k) for k in ("n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv",
                                              "n_ff", "n_ctx", "tied", "rope_theta", "norm_eps")}

    @staticmethod
    def from_dict(d):
        return Config(**d)

    @staticmethod
    def preset(name, n_vocab, **over):
        d = dict(PRESETS[name])
        d.update({k: v for k, v in over.items() if v is not None})
        return Config(n_vocab=n_vocab, **d)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rope_cache(head_dim, n_pos, theta, device):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    t = torch.arange(n_pos, dtype=torch.float32, device=device)
    f = torch.outer(t, inv)                      # (n_pos, head_dim/2)
    emb = torch.cat([f, f], dim=-1)              # (n_pos, head_dim)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, cos, sin):
    # x: (B, H, T, D); cos/sin: (T, D), fp32
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


_MASKS = {}


def causal_mask(rep, T, dtype, device):
    """(rep*T, T) additive causal mask (0 on and below the diagonal, -inf above) for rep query
    heads stacked along time; cached per shape (a pure function of its arguments)."""
    key = (rep, T, dtype, str(device))
    m = _MASKS.get(key)
    if m is None:
        tri = torch.full((T, T), float("-inf"), dtype=dtype, device=device).triu(1)
        m = _MASKS[key] = tri.repeat(rep, 1)
    return m


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.q_proj = nn.Linear(c.n_embd, c.n_head * c.head_dim, bias=False)
        self.k_proj = nn.Linear(c.n_embd, c.n_head_kv * c.head_dim, bias=False)
        self.v_proj = nn.Linear(c.n_embd, c.n_head_kv * c.head_dim, bias=False)
        self.o_proj = nn.Linear(c.n_head * c.head_dim, c.n_embd, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        c = self.c
        q = self.q_proj(x).view(B, T, c.n_head, c.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, c.n_head_kv, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, c.n_head_kv, c.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        rep = c.n_head // c.n_head_kv
        if hasattr(F, "scaled_dot_product_attention"):
            if rep > 1:  # kv head j serves query heads j*rep .. j*rep+rep-1 (HF repeat_kv)
                k = k.repeat_interleave(rep, dim=1)
                v = v.repeat_interleave(rep, dim=1)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            # No fused attention (Debian's torch 1.13): the rep query heads of a kv head are
            # stacked along the time axis, (B, Hkv, rep*T, D), so one batched matmul per kv
            # head serves them all without copying k and v; the additive causal mask of that
            # stacked shape is built once per T and folded into the matmul (baddbmm).
            Hkv, D = c.n_head_kv, c.head_dim
            qs = q.reshape(B * Hkv, rep * T, D)
            ks = k.reshape(B * Hkv, T, D)
            mask = causal_mask(rep, T, q.dtype, x.device)
            att = torch.baddbmm(mask, qs, ks.transpose(1, 2), alpha=1.0 / math.sqrt(D))
            y = torch.bmm(att.softmax(dim=-1), v.reshape(B * Hkv, T, D))
            y = y.view(B, c.n_head, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, c.n_head * c.head_dim))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c.n_embd, c.n_ff, bias=False)
        self.up_proj = nn.Linear(c.n_embd, c.n_ff, bias=False)
        self.down_proj = nn.Linear(c.n_ff, c.n_embd, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c.n_embd, c.norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.n_embd, c.norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Body(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.n_vocab, c.n_embd)
        self.layers = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.norm = RMSNorm(c.n_embd, c.norm_eps)


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.model = Body(c)
        self.lm_head = nn.Linear(c.n_embd, c.n_vocab, bias=False)
        if c.tied:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2 style scaled residual projections
            if name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))
        # rotary tables for the training context: buffers (not saved), so .to(device) moves
        # them and torch.compile sees constants; longer inputs compute theirs on the fly
        cos, sin = rope_cache(c.head_dim, c.n_ctx, c.rope_theta, "cpu")
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def rope(self, T, device):
        if T <= self.rope_cos.shape[0]:
            return self.rope_cos[:T], self.rope_sin[:T]
        return rope_cache(self.config.head_dim, T, self.config.rope_theta, device)

    def forward(self, idx, targets=None, reduction="mean", weights=None):
        """idx (B, T) -> logits (B, T, V) if targets is None, else (loss, None); with
        weights (B, T), the loss is the weighted mean sum(w * ce) / sum(w)."""
        cos, sin = self.rope(idx.shape[1], idx.device)
        x = self.model.embed_tokens(idx)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        logits = self.lm_head(self.model.norm(x))
        if targets is None:
            return logits
        if weights is not None:
            ce = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1),
                                 reduction="none")
            w = weights.reshape(-1).float()
            return (ce * w).sum() / w.sum().clamp(min=1.0), None
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1),
                               reduction=reduction)
        return loss, None

    def n_params(self, embeddings=True):
        n = sum(p.numel() for p in self.parameters())  # tied weights are counted once
        if not embeddings:
            n -= self.model.embed_tokens.weight.numel()
            if not self.config.tied:
                n -= self.lm_head.weight.numel()
        return n

    def flops_per_token(self):
        """Training FLOPs per token (forward + backward): 6 N + attention 12 L T d."""
        c = self.config
        n = self.n_params(embeddings=False) + c.n_vocab * c.n_embd  # the lm_head matmul
        return 6 * n + 12 * c.n_layer * c.n_ctx * c.n_embd
