#!/usr/bin/python3
"""tools/train/train.py — train a llama-architecture model on token files (mccom's factory).

  train.py --preset cpu-small --train corpus/train.tok --vocab vocab/tokenizer.json \\
           --val val=corpus/val.tok --val bench=corpus/bench.tok --out runs/cpu-small \\
           --steps 2000 --batch 4 --accum 4 [--time-budget 2700] [--resume]

Data: the train token file (tokfile.py's format) is cut into documents at the separator.
Each epoch visits the documents in a seeded permutation. A document is cut into pieces of at
most n_ctx - 3 tokens (so that a FIM example fits one context); each piece is FIM-transformed
with probability --fim-rate (at token level: two cut points drawn uniformly over its token
positions; a character-level split needs the tokenizer in Python, which we do not have), as
  PSM  <|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|> middle <|endoftext|>
  SPM  <|fim_prefix|> <|fim_suffix|> suffix <|fim_middle|> prefix middle <|endoftext|>
(SPM with probability --spm-rate among FIM pieces; StarCoder's SPM variant, which keeps the
middle last so both forms train the same "continue the middle" skill), else kept as it is;
plain pieces of a document stay consecutive and only its last one is followed by
<|endoftext|>. Documents are packed back to back; each sequence is n_ctx + 1 tokens, and consecutive sequences
overlap by one token, so every token is a target once. All randomness of the data is a
function of (seed, epoch, document position, piece): the data position (epoch, position, carried
tokens) is a few integers, saved in checkpoints.

Optimisation: AdamW (betas 0.9/0.95, weight decay on matrices only), linear warmup then
cosine decay to --min-lr-frac of --lr, gradient clipping, gradient accumulation. On CUDA:
bf16 autocast, torch.compile (PyTorch 2.x), fused scaled-dot-product attention, TF32; on
CPU: fp32. Checkpoints (model, optimizer, step, data position, RNG states) are written
atomically to OUT/ckpt.pt; --resume continues from it and gives bit-identical losses on CPU
(tests/test_train.py proves it). On CUDA, results are reproducible up to the
non-determinism of some CUDA kernels.

Progress: one line per --log-every steps (step, loss, lr, tokens/s, MFU on CUDA, ETA); every
step's loss goes to OUT/log.jsonl. Validation: nats/token and bits/byte (bytes of the
decoded targets, from the vocabulary; special tokens count 0 bytes) on about --eval-tokens
tokens of each --val file (all of it, or windows of n_ctx evenly spaced over it), no FIM.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import signal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpuenv  # noqa: E402,F401  (before torch: OpenBLAS reads its core type when it loads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from model import PRESETS, Config, Llama  # noqa: E402
from tokfile import TokenFile, Vocab  # noqa: E402

# FIM tokens: mccom's (Qwen2.5-Coder's) names, or StarCoder's.
FIM_NAMES = (("<|fim_prefix|>", "<fim_prefix>"), ("<|fim_middle|>", "<fim_middle>"),
             ("<|fim_suffix|>", "<fim_suffix>"))


# ---------------------------------------------------------------- data
def fim_transform(toks, rng, fim_rate, spm_rate, pre, mid, suf):
    """Token-level FIM of one piece (np array). rng: np.random.Generator. Returns an array
    (without the trailing separator)."""
    if pre is None or len(toks) < 2 or rng.random() >= fim_rate:
        return toks
    a, b = sorted(rng.integers(0, len(toks) + 1, size=2))
    prefix, middle, suffix = toks[:a], toks[a:b], toks[b:]
    dt = toks.dtype
    if rng.random() < spm_rate:
        parts = [np.array([pre, suf], dt), suffix, np.array([mid], dt), prefix, middle]
    else:
        parts = [np.array([pre], dt), prefix, np.array([suf], dt), suffix, np.array([mid], dt), middle]
    return np.concatenate(parts)


class Packer:
    """Deterministic, resumable stream of (n_ctx + 1)-token training sequences.

    A token file with a weight file beside it (tools/mkexamples) holds examples: each
    document becomes one sequence of its own (cut to n_ctx + 1 tokens, padded with the
    separator at weight 0), never FIM-transformed, and next_batch also returns the loss
    weight of every target."""

    def __init__(self, tf, n_ctx, seed, fim_rate=0.5, spm_rate=0.5, fim_ids=(None, None, None),
                 repeat_rate=0.0):
        self.tf, self.n_ctx, self.seed = tf, n_ctx, seed
        self.repeat_rate, self.n_batches = repeat_rate, 0
        self.fim_rate, self.spm_rate = fim_rate, spm_rate
        self.pre, self.mid, self.suf = fim_ids
        starts, ends = tf.doc_bounds()
        keep = ends > starts
        self.d_start, self.d_end = starts[keep], ends[keep]
        self.piece = max(1, n_ctx - 3)
        if len(self.d_start) == 0:
            raise ValueError("%s: no documents" % tf.path)
        self.epoch, self.pos, self.buf = 0, 0, np.zeros(0, dtype=np.int64)
        self._perm_epoch, self._perm = -1, None
        self.examples = tf.weights is not None

    def state(self):
        return {"epoch": self.epoch, "pos": self.pos, "buf": self.buf.tolist(), "batches": self.n_batches}

    def load_state(self, s):
        self.epoch, self.pos = s["epoch"], s["pos"]
        self.buf = np.asarray(s["buf"], dtype=np.int64)
        self.n_batches = s.get("batches", 0)

    def _doc(self):
        """The next document of the epoch, FIM-transformed piece by piece."""
        if self._perm_epoch != self.epoch:
            self._perm = np.random.default_rng([self.seed, 0, self.epoch]).permutation(len(self.d_start))
            self._perm_epoch = self.epoch
        j = self._perm[self.pos]
        doc = np.asarray(self.tf.tokens[self.d_start[j]:self.d_end[j]], dtype=np.int64)
        sep = np.array([self.tf.sep], dtype=np.int64)
        out = []
        for k in range(0, len(doc), self.piece):
            toks = doc[k:k + self.piece]
            rng = np.random.default_rng([self.seed, 1, self.epoch, self.pos, k])
            t = fim_transform(toks, rng, self.fim_rate, self.spm_rate, self.pre, self.mid, self.suf)
            out.append(t)
            if t is not toks or k + self.piece >= len(doc):
                out.append(sep)  # a FIM piece is complete; a plain one ends at the document's end
        self.pos += 1
        if self.pos == len(self.d_start):
            self.epoch, self.pos = self.epoch + 1, 0
        return np.concatenate(out)

    def _next_doc_index(self):
        if self._perm_epoch != self.epoch:
            self._perm = np.random.default_rng([self.seed, 0, self.epoch]).permutation(len(self.d_start))
            self._perm_epoch = self.epoch
        j = self._perm[self.pos]
        self.pos += 1
        if self.pos == len(self.d_start):
            self.epoch, self.pos = self.epoch + 1, 0
        return j

    def next_batch(self, n_seq):
        """(x, y) of shape (n_seq, n_ctx); for examples (x, y, w), w the targets' weights."""
        T = self.n_ctx
        if self.examples:
            seq = np.full((n_seq, T + 1), self.tf.sep, dtype=np.int64)
            wt = np.zeros((n_seq, T + 1), dtype=np.float32)
            for i in range(n_seq):
                j = self._next_doc_index()
                a, b = self.d_start[j], min(self.d_end[j], self.d_start[j] + T + 1)
                seq[i, :b - a] = self.tf.tokens[a:b]
                wt[i, :b - a] = self.tf.weights[a:b]
            seq = torch.from_numpy(seq)
            return seq[:, :-1], seq[:, 1:], torch.from_numpy(wt[:, 1:].copy())
        need = n_seq * T + 1
        parts, have = [self.buf], len(self.buf)
        while have < need:
            p = self._doc()
            parts.append(p)
            have += len(p)
        flat = np.concatenate(parts)
        x = np.lib.stride_tricks.sliding_window_view(flat[:need], T + 1)[::T]
        self.buf = flat[n_seq * T:].copy()  # the last target becomes the next first input
        x = np.array(x)  # a writable copy
        if self.repeat_rate > 0:
            # Repetition curriculum: a share of the sequences is their first half twice, so
            # that copying from the context pays from the first steps (induction heads form
            # after a long plateau on plain code; docs/training.md).
            h = (T + 1) // 2
            for i in range(n_seq):
                if np.random.default_rng([self.seed, 3, self.n_batches, i]).random() < self.repeat_rate:
                    x[i, h:] = x[i, :T + 1 - h]
        self.n_batches += 1
        x = torch.from_numpy(x)
        return x[:, :-1], x[:, 1:]


def eval_windows(tf, n_ctx, max_tokens):
    """Windows of n_ctx + 1 tokens: the whole file if it has at most max_tokens tokens, else
    ceil(max_tokens / n_ctx) windows at evenly spaced offsets (a sample of the whole file,
    not just its first files)."""
    n = tf.n
    if n <= max_tokens + 1:
        starts = range(0, max(n - 1, 0), n_ctx)
    else:
        k = -(-max_tokens // n_ctx)
        starts = np.linspace(0, n - n_ctx - 1, k).round().astype(np.int64)
    out = []
    for s in starts:
        w = np.asarray(tf.tokens[s:s + n_ctx + 1], dtype=np.int64)
        if len(w) >= 2:
            out.append(w)
    return out


@torch.no_grad()
def evaluate(model, tf, n_ctx, max_tokens, batch, device, byte_len, amp):
    """(nats/token, bits/byte or None, tokens)."""
    model.eval()
    nats, ntok, nbytes = 0.0, 0, 0
    for w in eval_windows(tf, n_ctx, max_tokens):  # windows differ in length only at the end
        x = torch.from_numpy(w[None, :-1]).to(device)
        y = torch.from_numpy(w[None, 1:]).to(device)
        with amp():
            loss, _ = model(x, y, reduction="sum")
        nats += loss.item()
        ntok += y.numel()
        if byte_len is not None:
            nbytes += int(byte_len[w[1:]].sum())
    model.train()
    bpb = nats / math.log(2) / nbytes if nbytes else None
    return nats / max(ntok, 1), bpb, ntok


# ---------------------------------------------------------------- schedule
def lr_at(step, total, lr, warmup, min_frac, schedule="cosine", decay_start=None, warm_from=0):
    """Learning rate of optimizer step `step` (0-based).
    cosine: linear warmup, then cosine from lr to min_frac*lr at step total.
    wsd (warmup-stable-decay): linear warmup, then lr until decay_start (None: for ever),
    then the "1 - sqrt" cooldown (Hagele et al. 2024) to min_frac*lr at the last step,
    total - 1. No total is needed until a decay begins, so a run can go on, stop and resume
    at any time, and any checkpoint can be decayed into a release on a branch.
    The warmup counts from step warm_from (a grown model's fresh optimizer warms up again)."""
    if step - warm_from < warmup:
        return lr * (step - warm_from + 1) / warmup
    if schedule == "wsd":
        if decay_start is None or step < decay_start:
            return lr
        p = min(1.0, (step - decay_start + 1) / max(1, total - decay_start))
        return lr * (min_frac + (1 - min_frac) * (1 - math.sqrt(p)))
    if total <= warmup:
        return lr
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def peak_flops(device):
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tf in (("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L40", 181e12),
                    ("4090", 165e12), ("A10", 125e12)):
        if key in name:
            return tf
    return None


def fmt_time(s):
    s = int(s)
    return "%dh%02dm" % (s // 3600, s % 3600 // 60) if s >= 3600 else "%dm%02ds" % (s // 60, s % 60)


# ---------------------------------------------------------------- main
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", required=True, choices=sorted(PRESETS))
    ap.add_argument("--train", required=True, help="token file")
    ap.add_argument("--val", action="append", default=[], help="NAME=token file (repeatable)")
    ap.add_argument("--vocab", help="tokenizer.json (byte lengths for bits/byte; FIM token ids)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1000,
                    help="optimizer steps (schedule length); with --schedule wsd, 0 runs until "
                         "stopped (--time-limit, SIGTERM/SIGINT, --stop-at); with --init-from, "
                         "steps after the checkpoint's")
    ap.add_argument("--schedule", default="cosine", choices=["cosine", "wsd"])
    ap.add_argument("--decay-steps", type=int, default=0,
                    help="wsd: the last N steps of --steps decay (1 - sqrt) to --min-lr-frac")
    ap.add_argument("--decay-frac", type=float, default=0.0,
                    help="wsd: the last fraction F of this run's steps decay (follows --time-budget)")
    ap.add_argument("--init-from", help="start from another run's checkpoint (weights, optimizer "
                                        "state, step, tokens seen) with this run's data")
    ap.add_argument("--grow-layers", type=int, default=0,
                    help="with --init-from: stack the checkpoint's layers to this depth "
                         "(depth up-scaling: layers 0..L-1, 0..L-1, ...); fresh optimizer state")
    ap.add_argument("--time-limit", type=float, default=0,
                    help="seconds: checkpoint and stop after this much wall time")
    ap.add_argument("--bf16", default="off", choices=["auto", "on", "off"],
                    help="CPU: bf16 autocast of matmuls (auto: where the CPU has AVX512_BF16). "
                         "Off by default: on this project's AVX512_BF16 machine, Debian's torch "
                         "1.13 trained v2-small at 1,075 tok/s with it and 1,300-2,000 without")
    ap.add_argument("--time-budget", type=float, default=0,
                    help="seconds: after 5 timed steps, lower --steps so training ends in time")
    ap.add_argument("--mix", help="a second token file (e.g. retrieval-formatted examples) that "
                                   "micro-batches are drawn from with probability --mix-rate")
    ap.add_argument("--mix-rate", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=8, help="sequences per micro-batch")
    ap.add_argument("--accum", type=int, default=1, help="micro-batches per step")
    ap.add_argument("--n-ctx", type=int, help="override the preset's context")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr-frac", type=float, help="default 0.1 (cosine), 0.0 (wsd)")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--fim-rate", type=float, default=0.5)
    ap.add_argument("--repeat-rate", type=float, default=0.0,
                    help="share of plain sequences made of their first half twice (a copying "
                         "curriculum)")
    ap.add_argument("--spm-rate", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=0, help="0: only at the end")
    ap.add_argument("--eval-tokens", type=int, default=65536)
    ap.add_argument("--probe-copy", type=int, default=8,
                    help="copy probe at each evaluation: N random 128-token sequences repeated "
                         "once, top-1 accuracy on the second copy (0: off)")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.pt if present")
    ap.add_argument("--stop-at", type=int, default=0, help="stop (with a checkpoint) after this step; tests")
    return ap.parse_args(argv)


def load_ckpt(path):
    """A checkpoint of save_ckpt (full pickle: PyTorch >= 2.6 defaults to weights only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:  # PyTorch without the argument
        return torch.load(path, map_location="cpu")


def save_ckpt(path, obj):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def copy_probe(model, n_vocab, n_seq, device, amp, length=128, seed=0):
    """Induction-head probe: n_seq sequences of `length` random ordinary tokens, each repeated
    once; the share of the second copy's tokens (after its first) that the model predicts
    top-1. A model that has learnt to copy scores near 1, one that has not near 0."""
    if n_seq <= 0:
        return None
    g = torch.Generator().manual_seed(seed)
    lo = min(300, n_vocab // 2)  # past the special and byte tokens
    seq = torch.randint(lo, n_vocab, (n_seq, length), generator=g)
    x = torch.cat([seq, seq], dim=1).to(device)
    model.eval()
    with amp():
        logits = model(x)
    model.train()
    pred = logits[:, length:-1].argmax(-1)
    return (pred == x[:, length + 1:]).float().mean().item()


def grow_state(state, n_layer_old, n_layer_new):
    """Depth up-scaling: layer i of the new model is layer i % n_layer_old of the old."""
    out = {}
    for k, v in state.items():
        if k.startswith("model.layers."):
            continue
        out[k] = v
    for i in range(n_layer_new):
        src = "model.layers.%d." % (i % n_layer_old)
        for k, v in state.items():
            if k.startswith(src):
                out["model.layers.%d.%s" % (i, k[len(src):])] = v.clone()
    return out


class Stop:
    """SIGTERM/SIGINT ask for a checkpoint at the end of the current step, then an exit."""

    def __init__(self):
        self.asked = None
        self.old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self.old[sig] = signal.signal(sig, self._ask)
            except ValueError:  # not the main thread (tests): no handler
                pass

    def _ask(self, sig, frame):
        self.asked = signal.Signals(sig).name

    def restore(self):
        for sig, h in self.old.items():
            signal.signal(sig, h)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    cuda = dev.type == "cuda"
    bf16_cpu = not cuda and (args.bf16 == "on" or (args.bf16 == "auto" and cpuenv.has_bf16()))
    if args.min_lr_frac is None:
        args.min_lr_frac = 0.0 if args.schedule == "wsd" else 0.1
    if args.steps <= 0 and (args.schedule != "wsd" or args.decay_steps or args.decay_frac):
        raise SystemExit("train: --steps 0 (run until stopped) needs --schedule wsd without a decay")
    if args.grow_layers and not args.init_from:
        raise SystemExit("train: --grow-layers needs --init-from")
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "ckpt.pt")
    log_path = os.path.join(args.out, "log.jsonl")

    tf = TokenFile(args.train)
    vocab = Vocab(args.vocab) if args.vocab else None
    n_vocab = max(tf.n_vocab, vocab.n_vocab if vocab else 0)
    fim_ids = tuple(vocab.id(*n) for n in FIM_NAMES) if vocab else (None, None, None)
    if None in fim_ids:
        if args.fim_rate > 0:
            print("train: no FIM tokens in the vocabulary: FIM disabled", flush=True)
        fim_ids = (None, None, None)

    ck = init = None
    if args.resume and os.path.exists(ckpt_path):
        ck = load_ckpt(ckpt_path)
        cfg = Config.from_dict(ck["config"])
        args.steps = ck["steps"]
    elif args.init_from:
        init = load_ckpt(args.init_from)
        d = dict(init["config"])
        if args.n_ctx:
            d["n_ctx"] = args.n_ctx
        if args.grow_layers:
            d["n_layer"] = args.grow_layers
        cfg = Config.from_dict(d)
    else:
        cfg = Config.preset(args.preset, n_vocab, n_ctx=args.n_ctx)
    if cfg.n_vocab < n_vocab:
        raise SystemExit("train: the model has %d tokens, the data needs %d" % (cfg.n_vocab, n_vocab))

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    model = Llama(cfg).to(dev)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt_kw = {"fused": True} if cuda and "fused" in torch.optim.AdamW.__init__.__code__.co_varnames else {}
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, **opt_kw)
    packer = Packer(tf, cfg.n_ctx, args.seed, args.fim_rate, args.spm_rate, fim_ids, args.repeat_rate)
    mixer = Packer(TokenFile(args.mix), cfg.n_ctx, args.seed + 1, 0.0) if args.mix and args.mix_rate > 0 else None
    step, tokens_seen, decay_start, warm_from = 0, 0, None, 0

    def decay_start_of(first, total):
        """Where the wsd cooldown of a run over steps [first, total) begins (None: never)."""
        if args.schedule != "wsd" or total <= 0:
            return None
        if args.decay_steps:
            return max(first, total - args.decay_steps)
        if args.decay_frac > 0:
            return max(first, total - int(round(args.decay_frac * (total - first))))
        return None

    decay_start = decay_start_of(0, args.steps)
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        packer.load_state(ck["data"])
        if mixer is not None and ck.get("mix_data"):
            mixer.load_state(ck["mix_data"])
        step = ck["step"]
        tokens_seen = ck.get("tokens_seen", step * args.batch * args.accum * cfg.n_ctx)
        decay_start = ck.get("decay_start", decay_start)
        warm_from = ck.get("warm_from", 0)
        torch.set_rng_state(ck["rng"]["torch"])
        random.setstate(ck["rng"]["python"])
        if cuda and ck["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ck["rng"]["cuda"])
        print("train: resumed from %s at step %d (%.1fM tokens seen)" % (ckpt_path, step, tokens_seen / 1e6),
              flush=True)
    elif init is not None:
        if args.grow_layers:
            old_l = init["config"]["n_layer"]
            model.load_state_dict(grow_state(init["model"], old_l, args.grow_layers))
            print("train: grown from %s: %d -> %d layers (fresh optimizer state)"
                  % (args.init_from, old_l, args.grow_layers), flush=True)
        else:
            model.load_state_dict(init["model"])
            opt.load_state_dict(init["optim"])
        step = init["step"]
        tokens_seen = init.get("tokens_seen", 0)
        if args.grow_layers:
            warm_from = step
        if args.steps > 0:
            args.steps += step
            decay_start = decay_start_of(step, args.steps)
        print("train: from %s at step %d (%.1fM tokens seen)%s" % (
            args.init_from, step, tokens_seen / 1e6,
            "; decay over steps %d-%d" % (decay_start, args.steps) if decay_start is not None else ""),
            flush=True)
    # keep the log consistent with the checkpoint: drop entries of steps not in it
    old = []
    if ck is not None and os.path.exists(log_path):
        with open(log_path) as f:
            old = [l for l in f if json.loads(l).get("step", -1) < step]
    with open(log_path, "w") as f:
        f.writelines(old)

    fwd = model
    use_compile = args.compile == "on" or (args.compile == "auto" and cuda)
    if use_compile and hasattr(torch, "compile"):
        fwd = torch.compile(model)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def amp():
        if cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_cpu)

    vals = []
    for v in args.val:
        name, _, path = v.partition("=")
        vals.append((name, TokenFile(path)))
    byte_len = vocab.byte_len if vocab is not None else None
    tok_per_step = args.batch * args.accum * cfg.n_ctx
    fpt = model.flops_per_token()
    peak = peak_flops(dev)
    print("train: %s  %.2fM parameters (%.2fM without embeddings)  n_ctx %d  vocab %d  %d tokens/step  "
          "device %s  threads %d  compile %s  %s  schedule %s  openblas %s" % (
              args.preset, model.n_params() / 1e6, model.n_params(False) / 1e6, cfg.n_ctx, cfg.n_vocab,
              tok_per_step, dev, torch.get_num_threads(), fwd is not model,
              "bf16" if (cuda or bf16_cpu) else "fp32", args.schedule,
              os.environ.get("OPENBLAS_CORETYPE", "-")), flush=True)

    def checkpoint():
        save_ckpt(ckpt_path, {"model": model.state_dict(), "optim": opt.state_dict(), "step": step,
                              "steps": args.steps, "config": cfg.to_dict(), "data": packer.state(),
                              "mix_data": mixer.state() if mixer is not None else None,
                              "preset": args.preset, "args": vars(args), "tokens_seen": tokens_seen,
                              "decay_start": decay_start, "warm_from": warm_from,
                              "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                                      "cuda": torch.cuda.get_rng_state() if cuda else None}})

    def run_eval():
        res = {}
        for name, vtf in vals:
            nt, bpb, n = evaluate(fwd, vtf, cfg.n_ctx, args.eval_tokens, args.batch, dev, byte_len, amp)
            res[name] = {"nats_per_token": nt, "bits_per_byte": bpb, "tokens": n}
            print("eval %-8s step %d  %.4f nats/token  %s bits/byte  (%d tokens)"
                  % (name, step, nt, "%.4f" % bpb if bpb is not None else "-", n), flush=True)
        acc = copy_probe(fwd, cfg.n_vocab, args.probe_copy, dev, amp)
        if acc is not None:
            res["copy_probe"] = acc
            print("eval copy     step %d  top-1 %.3f on the second copy" % (step, acc), flush=True)
        return res

    t0 = time.time()
    step0 = step
    t_last, tok_last = t0, 0
    tokens_done = 0
    model.train()
    logf = open(log_path, "a")
    calib = None
    stop = Stop()
    endless = args.steps <= 0
    why = None
    while endless or step < args.steps:
        lr = lr_at(step, args.steps, args.lr, args.warmup, args.min_lr_frac, args.schedule, decay_start,
                   warm_from)
        for g in opt.param_groups:
            g["lr"] = lr
        tot = 0.0
        for k in range(args.accum):
            src = packer
            if mixer is not None and np.random.default_rng([args.seed, 2, step, k]).random() < args.mix_rate:
                src = mixer
            x, y, *w = src.next_batch(args.batch)
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            w = w[0].to(dev, non_blocking=True) if w else None
            with amp():
                loss, _ = fwd(x, y, weights=w)
            (loss / args.accum).backward()
            tot += loss.item()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip).item() if args.clip > 0 else 0.0
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        tokens_done += tok_per_step
        tokens_seen += tok_per_step
        loss_v = tot / args.accum
        logf.write(json.dumps({"step": step - 1, "loss": loss_v, "lr": lr, "gnorm": gnorm,
                               "tokens": tokens_seen, "time": round(time.time(), 1)}) + "\n")
        # time budget: measure steps 2..6 (the first may compile), then shorten the schedule
        if args.time_budget and not endless and calib is None and ck is None and step - step0 == 2:
            calib = [time.time(), None]
        if args.time_budget and calib is not None and calib[1] is None and step - step0 == 7:
            per = (time.time() - calib[0]) / 5
            budget_steps = max(step0 + args.warmup + 1,
                               int((args.time_budget - (time.time() - t0)) / per) + step)
            if budget_steps < args.steps:
                print("train: %.2f s/step; --time-budget %.0f s: steps %d -> %d"
                      % (per, args.time_budget, args.steps, budget_steps), flush=True)
                args.steps = budget_steps
                decay_start = decay_start_of(step0, args.steps)
            calib[1] = per
        if step % args.log_every == 0 or step == args.steps:
            now = time.time()
            tps = (tokens_done - tok_last) / max(now - t_last, 1e-9)
            t_last, tok_last = now, tokens_done
            mfu = " | mfu %.1f%%" % (100 * tps * fpt / peak) if peak else ""
            eta = "-" if endless else fmt_time((args.steps - step) * tok_per_step / max(tps, 1e-9))
            print("step %d/%s | loss %.4f | lr %.2e | %.0f tok/s%s | %.1fM tokens | elapsed %s | eta %s"
                  % (step, "-" if endless else args.steps, loss_v, lr, tps, mfu, tokens_seen / 1e6,
                     fmt_time(now - t0), eta), flush=True)
        if args.eval_every and step % args.eval_every == 0 and (endless or step < args.steps):
            logf.write(json.dumps({"step": step - 1, "tokens": tokens_seen, "eval": run_eval()}) + "\n")
        if stop.asked:
            why = "signal " + stop.asked
        elif args.time_limit and time.time() - t0 >= args.time_limit:
            why = "--time-limit %.0f s" % args.time_limit
        elif step == args.stop_at:
            why = "--stop-at"
        if step % args.ckpt_every == 0 or step == args.steps or why:
            logf.flush()
            checkpoint()
        if why:
            print("train: stopped at step %d (%s); checkpoint %s; --resume continues"
                  % (step, why, ckpt_path), flush=True)
            logf.close()
            stop.restore()
            return 0
    stop.restore()
    res = run_eval() if vals or args.probe_copy else {}
    logf.write(json.dumps({"step": step - 1, "tokens": tokens_seen, "eval": res, "final": True}) + "\n")
    logf.close()
    with open(os.path.join(args.out, "final.json"), "w") as f:
        json.dump({"preset": args.preset, "config": cfg.to_dict(), "steps": step,
                   "params": model.n_params(), "tokens": tokens_seen, "eval": res,
                   "seconds_this_run": time.time() - t0}, f, indent=1)
        f.write("\n")
    print("train: done, %d steps" % step, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
