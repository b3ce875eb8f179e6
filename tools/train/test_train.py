"""tools/train/test_train.py — tests of the model factory's Python side.

  /usr/bin/python3 -m unittest tools/train/test_train.py       (from the repository root)
  /usr/bin/python3 tools/train/test_train.py Resume             (one class)

Everything runs on tiny inputs made here (a toy byte vocabulary, synthetic files) in a few
seconds per test on one core. tests/test_train.c runs these from `make test`.
Environment: MC_SHARED (default ../shared) for bench/exclude.sha256; MC_CORPUS, a built
corpus directory to check for benchmark leaks (default build/models/corpus if present).
"""
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import sys
import tempfile
import unittest

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus  # noqa: E402
import export  # noqa: E402
import tokfile  # noqa: E402
import train  # noqa: E402
from model import PRESETS, Config, Llama  # noqa: E402

torch.set_num_threads(1)


def quiet(fn, *a, **k):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a, **k)


def synthetic_source(rng, n_lines):
    names = ["alpha", "beta", "gamma", "delta", "value", "count", "items", "result"]
    out = []
    for i in range(n_lines):
        a, b = rng.choice(names), rng.choice(names)
        out.append("    %s_%d = %s + %d  # step %d" % (a, rng.randrange(100), b, rng.randrange(1000), i))
    return "def f():\n" + "\n".join(out) + "\n    return 0\n"


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mc-train-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def byte_data(self, n_docs=12, lines=40, seed=0):
        """A token file and tokenizer.json of synthetic Python in the toy byte vocabulary."""
        rng = random.Random(seed)
        paths = []
        for i in range(n_docs):
            p = os.path.join(self.tmp, "src%d.py" % i)
            with open(p, "w") as f:
                f.write(synthetic_source(rng, rng.randrange(lines // 2, lines)))
            paths.append(p)
        tok = os.path.join(self.tmp, "train.tok")
        tokfile.byte_tokenize(paths, tok)
        vocab = tokfile.write_byte_vocab(os.path.join(self.tmp, "vocab"))
        return tok, vocab


# ---------------------------------------------------------------- token files
class TokenFiles(Base):
    def test_round_trip_and_documents(self):
        p = os.path.join(self.tmp, "t.tok")
        docs = [[5, 6, 7], [], [9] * 10]
        n = tokfile.write_token_file(p, docs, sep=1, n_vocab=300)
        self.assertEqual(n, 3 + 1 + 0 + 1 + 10 + 1)
        t = tokfile.TokenFile(p)
        self.assertEqual((t.n, t.sep, t.n_vocab, t.tokens.dtype.itemsize), (n, 1, 300, 2))
        s, e = t.doc_bounds()
        self.assertEqual([list(t.tokens[a:b]) for a, b in zip(s, e)], docs)
        with open(p, "rb") as f:
            raw = f.read()
        self.assertEqual(raw[:8], b"MCTOKENS")
        self.assertEqual(len(raw), 32 + 2 * n)
        tokfile.write_token_file(p, docs, sep=1, n_vocab=70000)
        self.assertEqual(tokfile.TokenFile(p).tokens.dtype.itemsize, 4)
        with open(p, "r+b") as f:
            f.write(b"MCTOKENX")
        with self.assertRaises(ValueError):
            tokfile.TokenFile(p)

    def test_byte_vocab_lengths_and_specials(self):
        v = tokfile.Vocab(tokfile.write_byte_vocab(self.tmp))
        self.assertEqual(v.n_vocab, tokfile.BYTE_VOCAB_SIZE)
        self.assertEqual(v.id("<|endoftext|>"), 0)
        self.assertEqual(v.id("<fim_prefix>", "<|fim_prefix|>"), 1)
        self.assertEqual(int(v.byte_len[:tokfile.BYTE0].sum()), 0)
        self.assertTrue((v.byte_len[tokfile.BYTE0:] == 1).all())
        text = "é = 'x'\n".encode()
        self.assertEqual(v.decode([b + tokfile.BYTE0 for b in text]), text)


# ---------------------------------------------------------------- FIM and packing
class Fim(unittest.TestCase):
    PRE, MID, SUF = 1, 2, 3

    def test_psm_spm_invariants(self):
        rng = np.random.default_rng(0)
        kinds = {"psm": 0, "spm": 0, "plain": 0}
        for trial in range(400):
            toks = rng.integers(10, 100, size=rng.integers(2, 60))
            out = train.fim_transform(toks, rng, 0.5, 0.5, self.PRE, self.MID, self.SUF)
            if len(out) == len(toks):
                self.assertTrue((out == toks).all())
                kinds["plain"] += 1
                continue
            self.assertEqual(len(out), len(toks) + 3)
            for s in (self.PRE, self.MID, self.SUF):
                self.assertEqual(int((out == s).sum()), 1)
            self.assertEqual(out[0], self.PRE)
            i_suf, i_mid = int(np.flatnonzero(out == self.SUF)[0]), int(np.flatnonzero(out == self.MID)[0])
            if i_suf == 1:  # SPM: <pre> <suf> suffix <mid> prefix middle
                kinds["spm"] += 1
                suffix, pm = out[2:i_mid], out[i_mid + 1:]
                # prefix+middle is a prefix of the document, suffix the rest
                self.assertTrue((np.concatenate([pm, suffix]) == toks).all())
            else:  # PSM: <pre> prefix <suf> suffix <mid> middle
                kinds["psm"] += 1
                prefix, suffix, middle = out[1:i_suf], out[i_suf + 1:i_mid], out[i_mid + 1:]
                self.assertTrue((np.concatenate([prefix, middle, suffix]) == toks).all())
        for k in kinds:  # each form around its expected share (plain 1/2, psm 1/4, spm 1/4)
            self.assertGreater(kinds[k], 60, kinds)

    def test_rate_zero_and_no_ids_is_identity(self):
        rng = np.random.default_rng(1)
        toks = np.arange(10, 40)
        self.assertTrue((train.fim_transform(toks, rng, 0.0, 0.5, 1, 2, 3) == toks).all())
        self.assertTrue((train.fim_transform(toks, rng, 1.0, 0.5, None, None, None) == toks).all())


class Packing(Base):
    def test_sequences_overlap_by_one_and_cover_an_epoch(self):
        p = os.path.join(self.tmp, "t.tok")
        rng = np.random.default_rng(2)
        docs = [rng.integers(10, 200, size=rng.integers(1, 50)) for _ in range(30)]
        tokfile.write_token_file(p, docs, sep=0, n_vocab=256)
        tf = tokfile.TokenFile(p)
        pk = train.Packer(tf, n_ctx=16, seed=3, fim_rate=0.0)
        total = sum(len(d) + 1 for d in docs)
        got, last = [], None
        while len(got) < total:
            x, y = pk.next_batch(2)
            self.assertTrue((x[:, 1:] == y[:, :-1]).all())
            if last is not None:
                self.assertEqual(int(x[0, 0]), last)  # the last target is the next first input
            self.assertEqual(int(x[1, 0]), int(y[0, -1]))
            last = int(y[-1, -1])
            got += x.reshape(-1).tolist()
        # the first epoch's tokens are exactly the corpus's (pieces permuted)
        want = np.concatenate([np.concatenate([d, [0]]) for d in docs])
        self.assertTrue((np.bincount(want, minlength=256) == np.bincount(got[:total], minlength=256)).all())

    def test_long_documents_fim_per_piece(self):
        p = os.path.join(self.tmp, "t.tok")
        tokfile.write_token_file(p, [np.arange(10, 110)], sep=0, n_vocab=256)
        pk = train.Packer(tokfile.TokenFile(p), n_ctx=16, seed=0, fim_rate=0.0)
        self.assertTrue((pk._doc() == np.concatenate([np.arange(10, 110), [0]])).all())
        pk = train.Packer(tokfile.TokenFile(p), n_ctx=16, seed=0, fim_rate=1.0, fim_ids=(1, 2, 3))
        d = pk._doc()
        self.assertEqual(int((d == 1).sum()), 8)  # ceil(100 / 13) pieces, each one FIM example
        self.assertEqual(int((d == 0).sum()), 8)
        self.assertEqual(len(d), 100 + 8 * 4)

    def test_repeat_curriculum(self):
        p = os.path.join(self.tmp, "t.tok")
        rng = np.random.default_rng(5)
        tokfile.write_token_file(p, [rng.integers(10, 200, size=300) for _ in range(20)], sep=0, n_vocab=256)
        pk = train.Packer(tokfile.TokenFile(p), n_ctx=16, seed=3, fim_rate=0.0, repeat_rate=0.5)
        rep = 0
        for _ in range(20):
            x, y = pk.next_batch(4)
            seq = torch.cat([x, y[:, -1:]], 1)
            for r in seq:
                if torch.equal(r[8:16], r[:8]):  # the first half, again
                    rep += 1
        self.assertGreater(rep, 20)  # about half of 80 sequences
        self.assertLess(rep, 60)
        self.assertEqual(pk.state()["batches"], 20)

    def test_deterministic_for_a_seed(self):
        tok, vocab = self.byte_data()
        v = tokfile.Vocab(vocab)
        ids = tuple(v.id(*n) for n in train.FIM_NAMES)
        a = train.Packer(tokfile.TokenFile(tok), 32, 7, 0.5, 0.5, ids)
        b = train.Packer(tokfile.TokenFile(tok), 32, 7, 0.5, 0.5, ids)
        c = train.Packer(tokfile.TokenFile(tok), 32, 8, 0.5, 0.5, ids)
        xa, xb, xc = [torch.cat([p.next_batch(4)[0] for _ in range(20)]) for p in (a, b, c)]
        self.assertTrue(torch.equal(xa, xb))
        self.assertFalse(torch.equal(xa, xc))
        self.assertTrue(bool((xa == ids[0]).any()))  # FIM happened


# ---------------------------------------------------------------- training
def read_losses(out):
    with open(os.path.join(out, "log.jsonl")) as f:
        return [(r["step"], r["loss"]) for r in map(json.loads, f) if "loss" in r]


class Resume(Base):
    def test_resume_continues_the_loss_curve_exactly(self):
        tok, vocab = self.byte_data()
        common = ["--preset", "tiny-test", "--train", tok, "--vocab", vocab, "--steps", "12",
                  "--batch", "2", "--accum", "2", "--warmup", "3", "--log-every", "100",
                  "--ckpt-every", "100", "--seed", "5", "--threads", "1"]
        a, b = os.path.join(self.tmp, "a"), os.path.join(self.tmp, "b")
        quiet(train.main, common + ["--out", a])
        quiet(train.main, common + ["--out", b, "--stop-at", "6"])
        self.assertEqual(len(read_losses(b)), 6)
        quiet(train.main, common + ["--out", b, "--resume"])
        la, lb = read_losses(a), read_losses(b)
        self.assertEqual(len(la), 12)
        self.assertEqual(la, lb)  # bit-identical floats
        self.assertLess(la[-1][1], la[0][1])
        wa = train.load_ckpt(os.path.join(a, "ckpt.pt"))["model"]
        wb = train.load_ckpt(os.path.join(b, "ckpt.pt"))["model"]
        for k in wa:
            self.assertTrue(torch.equal(wa[k], wb[k]), k)

    def test_validation_numbers(self):
        tok, vocab = self.byte_data()
        out = os.path.join(self.tmp, "r")
        quiet(train.main, ["--preset", "tiny-test", "--train", tok, "--vocab", vocab, "--steps", "3",
                           "--batch", "2", "--warmup", "1", "--out", out, "--val", "v=" + tok,
                           "--eval-tokens", "500"])
        with open(os.path.join(out, "final.json")) as f:
            ev = json.load(f)["eval"]["v"]
        # byte vocabulary: every target is one byte except separators (0 bytes), so
        # bits/byte = nats/token / ln 2 * tokens / (tokens - separators)
        self.assertGreater(ev["tokens"], 400)
        self.assertGreater(ev["bits_per_byte"] * np.log(2), ev["nats_per_token"] * 0.99)
        self.assertLess(ev["nats_per_token"], np.log(tokfile.BYTE_VOCAB_SIZE) + 1)

    def test_lr_schedule(self):
        lrs = [train.lr_at(s, 100, 1.0, 10, 0.1) for s in range(100)]
        self.assertAlmostEqual(lrs[9], 1.0)
        self.assertAlmostEqual(lrs[0], 0.1)
        self.assertTrue(all(x >= y for x, y in zip(lrs[10:], lrs[11:])))
        self.assertGreaterEqual(min(lrs), 0.1 - 1e-9)


class Wsd(Base):
    """Models v2's schedule and run handling: warmup-stable-decay, open-ended runs that stop
    on a signal or a time limit with a checkpoint, release branches (--init-from), depth
    growth, retrieval-formatted examples with loss weights."""

    def common(self, tok, vocab):
        return ["--preset", "tiny-test", "--train", tok, "--vocab", vocab, "--batch", "2",
                "--warmup", "2", "--log-every", "100", "--ckpt-every", "100", "--seed", "5",
                "--threads", "1", "--schedule", "wsd", "--probe-copy", "0", "--lr", "3e-3"]

    def test_wsd_schedule(self):
        lrs = [train.lr_at(s, 100, 1.0, 10, 0.0, "wsd", 80) for s in range(100)]
        self.assertAlmostEqual(lrs[0], 0.1)
        self.assertTrue(all(x == 1.0 for x in lrs[9:80]))
        self.assertTrue(all(x > y for x, y in zip(lrs[79:], lrs[80:])))
        self.assertAlmostEqual(lrs[99], 0.0)
        # no decay start: constant for ever
        self.assertEqual(train.lr_at(10 ** 7, 0, 1.0, 10, 0.0, "wsd", None), 1.0)

    def test_endless_run_stops_resumes_and_branches(self):
        tok, vocab = self.byte_data()
        main = os.path.join(self.tmp, "main")
        quiet(train.main, self.common(tok, vocab) + ["--out", main, "--steps", "0", "--stop-at", "4"])
        ck = train.load_ckpt(os.path.join(main, "ckpt.pt"))
        self.assertEqual(ck["step"], 4)
        self.assertEqual(ck["tokens_seen"], 4 * 2 * 64)
        self.assertFalse(os.path.exists(os.path.join(main, "final.json")))
        # resumed, it goes on where it stopped, at the constant learning rate
        quiet(train.main, self.common(tok, vocab) + ["--out", main, "--steps", "0", "--resume",
                                                      "--stop-at", "7"])
        ls = read_losses(main)
        self.assertEqual([s for s, _ in ls], list(range(7)))
        with open(os.path.join(main, "log.jsonl")) as f:
            lrs = [json.loads(l)["lr"] for l in f if "lr" in l]
        self.assertEqual(lrs[2:], [3e-3] * 5)
        # a release branch decays to 0 over 5 more steps, at another context, main untouched
        rel = os.path.join(self.tmp, "rel")
        quiet(train.main, self.common(tok, vocab) + [
            "--out", rel, "--init-from", os.path.join(main, "ckpt.pt"), "--steps", "5",
            "--decay-steps", "5", "--n-ctx", "32"])
        with open(os.path.join(rel, "log.jsonl")) as f:
            rows = [json.loads(l) for l in f if '"lr"' in l]
        self.assertEqual([r["step"] for r in rows], [7, 8, 9, 10, 11])
        self.assertTrue(all(a["lr"] > b["lr"] for a, b in zip(rows, rows[1:])))
        self.assertEqual(rows[-1]["lr"], 0.0)
        with open(os.path.join(rel, "final.json")) as f:
            fin = json.load(f)
        self.assertEqual(fin["config"]["n_ctx"], 32)
        self.assertEqual(fin["tokens"], 7 * 128 + 5 * 64)
        self.assertEqual(train.load_ckpt(os.path.join(main, "ckpt.pt"))["step"], 7)

    def test_time_limit_checkpoints(self):
        tok, vocab = self.byte_data()
        out = os.path.join(self.tmp, "t")
        quiet(train.main, self.common(tok, vocab) + ["--out", out, "--steps", "0", "--time-limit", "0.001"])
        self.assertEqual(train.load_ckpt(os.path.join(out, "ckpt.pt"))["step"], 1)

    def test_grow_layers_stacks_depth(self):
        tok, vocab = self.byte_data()
        a = os.path.join(self.tmp, "a")
        quiet(train.main, self.common(tok, vocab) + ["--out", a, "--steps", "0", "--stop-at", "2"])
        b = os.path.join(self.tmp, "b")
        quiet(train.main, self.common(tok, vocab) + ["--out", b, "--init-from", os.path.join(a, "ckpt.pt"),
                                                      "--grow-layers", "4", "--steps", "1"])
        wa = train.load_ckpt(os.path.join(a, "ckpt.pt"))
        wb = train.load_ckpt(os.path.join(b, "ckpt.pt"))
        self.assertEqual(wb["config"]["n_layer"], 4)
        g = train.grow_state(wa["model"], 2, 4)
        for i in range(4):
            k = "model.layers.%d.mlp.up_proj.weight" % i
            self.assertTrue(torch.equal(g[k], wa["model"]["model.layers.%d.mlp.up_proj.weight" % (i % 2)]))
            self.assertIn(k, wb["model"])

    def test_weighted_examples(self):
        p = os.path.join(self.tmp, "ex.tok")
        docs = [np.arange(10, 10 + n) for n in (5, 40, 12)]
        tokfile.write_token_file(p, docs, sep=0, n_vocab=256)
        w = np.concatenate([np.concatenate([np.full(len(d), k + 1), [0]]) for k, d in enumerate(docs)])
        tokfile.write_weight_file(p + ".w", w)
        tf = tokfile.TokenFile(p)
        pk = train.Packer(tf, n_ctx=16, seed=1, fim_rate=1.0, fim_ids=(1, 2, 3))
        seen = set()
        for _ in range(3):
            x, y, wt = pk.next_batch(1)
            self.assertEqual(tuple(x.shape), (1, 16))
            self.assertTrue((x[0, 1:] == y[0, :-1]).all())
            self.assertEqual(int(x[0, 0]), 10)  # one example per sequence, never FIM-transformed
            seq = torch.cat([x[0], y[0, -1:]])
            zeros = (seq == 0).nonzero()
            n = int(zeros[0]) if zeros.numel() else 17  # the example's tokens in the sequence
            k = {5: 0, 17: 1, 12: 2}[n]
            seen.add(k)
            self.assertTrue((wt[0, :n - 1] == k + 1).all())  # the example's own targets
            self.assertTrue((wt[0, n - 1:] == 0).all())  # padding and separators weigh 0
        self.assertEqual(seen, {0, 1, 2})
        # the weighted loss is the weighted mean of the per-token losses
        torch.manual_seed(0)
        m = Llama(Config.preset("tiny-test", 256))
        x, y, wt = train.Packer(tf, n_ctx=16, seed=1).next_batch(2)
        loss, _ = m(x, y, weights=wt)
        ce = torch.nn.functional.cross_entropy(m(x).view(-1, 256), y.reshape(-1), reduction="none")
        self.assertAlmostEqual(loss.item(), ((ce * wt.reshape(-1)).sum() / wt.sum()).item(), places=5)

    def test_mix_draws_from_both_and_resumes_exactly(self):
        tok, vocab = self.byte_data()
        ex = os.path.join(self.tmp, "ex.tok")
        docs = [np.arange(10, 40) for _ in range(20)]
        tokfile.write_token_file(ex, docs, sep=0, n_vocab=tokfile.BYTE_VOCAB_SIZE)
        tokfile.write_weight_file(ex + ".w", np.concatenate([np.concatenate([np.ones(30), [0]]) for _ in docs]))
        args = self.common(tok, vocab) + ["--mix", ex, "--mix-rate", "0.5", "--accum", "4", "--steps", "0"]
        a, b = os.path.join(self.tmp, "a"), os.path.join(self.tmp, "b")
        quiet(train.main, args + ["--out", a, "--stop-at", "8"])
        quiet(train.main, args + ["--out", b, "--stop-at", "4"])
        quiet(train.main, args + ["--out", b, "--resume", "--stop-at", "8"])
        self.assertEqual(read_losses(a), read_losses(b))
        ck = train.load_ckpt(os.path.join(a, "ckpt.pt"))
        self.assertGreater(ck["mix_data"]["pos"] + 20 * ck["mix_data"]["epoch"], 0)  # examples were drawn
        self.assertGreater(ck["data"]["pos"] + 12 * ck["data"]["epoch"], 0)  # and plain sequences

    def test_gguf_vocab_equals_the_trainers_json(self):
        import subprocess
        mccom = os.environ.get("MC_BIN") or os.path.join(HERE, "..", "..", "build", "release", "mccom")
        if not os.path.exists(mccom):
            self.skipTest("no mccom binary (make)")
        src = os.path.join(self.tmp, "src")
        os.makedirs(src)
        for k in range(6):
            with open(os.path.join(src, "m%d.py" % k), "w") as f:
                f.write(synthetic_source(random.Random(k), 80))
        r = subprocess.run([mccom, "tokenizer", "train", "--vocab", "400", "--out",
                            os.path.join(self.tmp, "v.gguf"), "--hf", os.path.join(self.tmp, "t.json"), src],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.tmp, "t.json"), encoding="utf-8") as f:
            want = json.load(f)
        self.assertEqual(tokfile.gguf_vocab_json(os.path.join(self.tmp, "v.gguf")), want)


class Model(unittest.TestCase):
    def test_induction_shares_match_the_model(self):
        # the attention the probe reads is the model's own (recomputed output equals the layer's),
        # and a model whose layer-1 head is forced to look one token back shows it
        import induction
        cfg = Config.preset("tiny-test", 300)
        torch.manual_seed(0)
        m = Llama(cfg).eval()
        x = torch.randint(10, 300, (2, 16))
        x = torch.cat([x, x], 1)
        shares, logits = induction.attention_shares(m, x, 16, check=True)
        self.assertEqual(len(shares), cfg.n_layer)
        self.assertEqual(tuple(logits.shape), (2, 32, 300))
        for ind, prev in shares:
            self.assertEqual(tuple(ind.shape), (cfg.n_head,))
            self.assertTrue(bool(((ind >= 0) & (ind + prev <= 1 + 1e-5)).all()))
        # a layer whose queries are zero attends uniformly: t + 1 keys at position t, so both
        # shares are the mean of 1 / (t + 1) over the second copy's positions
        with torch.no_grad():
            m.model.layers[0].self_attn.q_proj.weight.zero_()
        shares2, _ = induction.attention_shares(m, x, 16, check=True)
        want = sum(1.0 / (t + 1) for t in range(17, 32)) / 15
        for v in list(shares2[0][0]) + list(shares2[0][1]):
            self.assertAlmostEqual(float(v), want, places=5)

    def test_presets_build_and_pair_ratio(self):
        for name, p in PRESETS.items():
            c = Config.preset(name, 16384)
            self.assertEqual(c.n_embd % c.n_head, 0)
            self.assertEqual(c.head_dim % 2, 0)
        n = {k: Llama(Config.preset(k, 16384)).n_params() for k in ("gpu-slm", "gpu-llm")}
        self.assertTrue(25e6 <= n["gpu-slm"] <= 60e6, n)
        self.assertTrue(120e6 <= n["gpu-llm"] <= 250e6, n)
        self.assertGreaterEqual(n["gpu-llm"], 4 * n["gpu-slm"])

    def test_rope_permutation_contract(self):
        """The q/k row permutation of docs/training.md turns our (HF rotate-half) RoPE into
        llama.cpp's adjacent-pair RoPE: attention scores are identical."""
        from model import apply_rope, rope_cache
        torch.manual_seed(0)
        n_head, hd, n_embd, T = 2, 8, 16, 5
        wq, wk = torch.randn(n_head * hd, n_embd), torch.randn(n_head * hd, n_embd)
        x = torch.randn(T, n_embd)

        def perm(w):
            return w.reshape(n_head, 2, hd // 2, n_embd).transpose(1, 2).reshape(w.shape)

        def heads(y):
            return y.view(T, n_head, hd).transpose(0, 1)  # (H, T, D)

        cos, sin = rope_cache(hd, T, 10000.0, "cpu")
        qa, ka = apply_rope(heads(x @ wq.T), cos, sin), apply_rope(heads(x @ wk.T), cos, sin)

        def rope_adjacent(y):  # llama.cpp LLAMA rope: pairs (2i, 2i+1), frequency i
            inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
            ang = torch.arange(T).float()[:, None] * inv[None, :]
            c, s_ = ang.cos(), ang.sin()
            y0, y1 = y[..., 0::2], y[..., 1::2]
            return torch.stack([y0 * c - y1 * s_, y0 * s_ + y1 * c], dim=-1).flatten(-2)

        qb, kb = rope_adjacent(heads(x @ perm(wq).T)), rope_adjacent(heads(x @ perm(wk).T))
        self.assertTrue(torch.allclose(qa @ ka.transpose(1, 2), qb @ kb.transpose(1, 2), atol=1e-4))
        self.assertFalse(torch.allclose(qa @ ka.transpose(1, 2),
                                        rope_adjacent(heads(x @ wq.T)) @ rope_adjacent(heads(x @ wk.T)).transpose(1, 2),
                                        atol=1e-4))

    def test_causal(self):
        torch.manual_seed(0)
        m = Llama(Config.preset("tiny-test", 50)).eval()
        x = torch.randint(0, 50, (1, 12))
        y = x.clone()
        y[0, 8:] = (y[0, 8:] + 1) % 50
        with torch.no_grad():
            a, b = m(x), m(y)
        self.assertTrue(torch.allclose(a[0, :8], b[0, :8]))
        self.assertFalse(torch.allclose(a[0, 8:], b[0, 8:]))


# ---------------------------------------------------------------- export
class Export(Base):
    def trained_ckpt(self, tied):
        tok, vocab = self.byte_data(n_docs=4)
        out = os.path.join(self.tmp, "run")
        quiet(train.main, ["--preset", "tiny-test", "--train", tok, "--vocab", vocab, "--steps", "2",
                           "--batch", "1", "--warmup", "1", "--out", out])
        ck = os.path.join(out, "ckpt.pt")
        if tied:  # the tiny preset is untied; make a tied checkpoint by hand
            d = train.load_ckpt(ck)
            d["config"]["tied"] = True
            d["model"]["lm_head.weight"] = d["model"]["model.embed_tokens.weight"]
            torch.save(d, ck)
        return ck, vocab

    def check_export(self, tied):
        ck, vocab = self.trained_ckpt(tied)
        hf = os.path.join(self.tmp, "hf")
        export.export(ck, vocab, hf)
        for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                  "generation_config.json", "special_tokens_map.json"):
            self.assertTrue(os.path.exists(os.path.join(hf, f)), f)
        with open(os.path.join(hf, "config.json")) as f:
            cj = json.load(f)
        d = train.load_ckpt(ck)
        cfg = Config.from_dict(d["config"])
        self.assertEqual(cj["architectures"], ["LlamaForCausalLM"])
        self.assertEqual(export.config_from_hf(cj).to_dict(), cfg.to_dict())
        self.assertEqual(cj["num_key_value_heads"], cfg.n_head_kv)
        self.assertEqual(cj["rope_theta"], cfg.rope_theta)
        self.assertEqual(cj["rms_norm_eps"], cfg.norm_eps)
        self.assertEqual(cj["tie_word_embeddings"], tied)
        self.assertEqual(cj["eos_token_id"], 0)
        st = export.load_safetensors(os.path.join(hf, "model.safetensors"))
        self.assertEqual("lm_head.weight" in st, not tied)
        with open(os.path.join(hf, "model.safetensors"), "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            self.assertEqual(n % 8, 0)
        m = Llama(cfg).eval()
        m.load_state_dict(d["model"])
        x = torch.tensor([[0, 1, 40, 41, 42, 3, 50, 2, 60, 61]])
        with torch.no_grad():
            ref = m(x)
            got = export.load_hf_dir(hf)(x)
        self.assertTrue(torch.equal(ref, got))
        # dump_logits writes the same numbers
        import dump_logits
        outb = os.path.join(self.tmp, "l.bin")
        quiet(dump_logits.main, [hf, "--tokens", ",".join(map(str, x[0].tolist())), "--out", outb])
        lg = np.fromfile(outb, dtype="<f4").reshape(x.shape[1], cfg.n_vocab)
        self.assertTrue(np.array_equal(lg, ref[0].numpy()))
        try:
            import transformers  # noqa: F401
        except ImportError:
            return
        with torch.no_grad():  # where transformers is installed: it loads and agrees
            tl = dump_logits.logits(hf, x[0].tolist(), use_transformers=True)
        self.assertLess(float(np.abs(tl - ref[0].numpy()).max()), 1e-4)

    def test_export_untied(self):
        self.check_export(False)

    def test_export_tied(self):
        self.check_export(True)

    def test_safetensors_round_trip(self):
        p = os.path.join(self.tmp, "x.safetensors")
        t = {"a": torch.randn(3, 5), "b": torch.randn(7).half(), "c": torch.randn(2, 2).bfloat16()}
        export.save_safetensors(p, t)
        r = export.load_safetensors(p)
        for k in t:
            self.assertEqual(r[k].dtype, t[k].dtype)
            self.assertTrue(torch.equal(r[k], t[k]), k)


# ---------------------------------------------------------------- corpus
class Corpus(Base):
    def write(self, rel, text):
        p = os.path.join(self.tmp, "tree", rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        return p

    def build(self, exclude_lines):
        ex = os.path.join(self.tmp, "exclude.sha256")
        with open(ex, "w") as f:
            f.writelines(sorted(exclude_lines))
        out = os.path.join(self.tmp, "out")
        quiet(corpus.main, ["build", "--packages", "", "--extra-dir", os.path.join(self.tmp, "tree"),
                            "--out", out, "--exclude", ex, "--repos", "", "--val-frac", "0.3"])
        with open(os.path.join(out, "dropped.tsv")) as f:
            dropped = {l.split("\t")[0].split("/", 1)[1]: l.split("\t")[1] for l in list(f)[1:]}
        with open(os.path.join(out, "manifest.jsonl")) as f:
            kept = [json.loads(l) for l in f]
        return out, ex, dropped, kept

    def test_filters(self):
        rng = random.Random(0)
        base = synthetic_source(rng, 120)
        lines = base.split("\n")
        near = "\n".join(lines[:60] + ["    extra_line = 1"] + lines[60:])  # one line added
        raw_planted = synthetic_source(rng, 30)
        norm_planted = synthetic_source(rng, 30)
        norm_variant = norm_planted.replace("\n", "   \n", 5) + "\n\n"  # differs only in whitespace
        files = {
            "pkg/a.py": base,
            "pkg/b_near.py": near,
            "pkg/c_copy.py": base,
            "pkg/d_raw.py": raw_planted,
            "pkg/e_norm.py": norm_variant,
            "pkg/f_min.py": "x = [" + ",".join(str(i) for i in range(3000)) + "]\n" * 3,
            "pkg/g_gen.py": "# -*- coding: utf-8 -*-\n# Auto-generated by gen.py. DO NOT EDIT.\n" + synthetic_source(rng, 30),
            "pkg/h_short.py": "import os\n",
            "pkg/i_long.py": synthetic_source(rng, 5000),
            "pkg/ok.py": synthetic_source(random.Random(99), 50),
        }
        for k in range(20):  # files that differ enough to be kept
            files["pkg/keep%d.py" % k] = synthetic_source(random.Random(1000 + k), 40)
        for rel, text in files.items():
            self.write(rel, text)
        with open(os.path.join(self.tmp, "tree", "pkg", "j_bin.py"), "wb") as f:
            f.write(b"x = '\xff\xfe'\n" * 5)
        exl = ["%s %s\n" % (hashlib.sha256(raw_planted.encode()).hexdigest(), "0" * 64),
               "%s %s\n" % ("1" * 64, hashlib.sha256(corpus.normalize(norm_planted).encode()).hexdigest())]
        out, ex, dropped, kept = self.build(exl)
        want = {"pkg/b_near.py": "near-dup", "pkg/c_copy.py": "exact-dup", "pkg/d_raw.py": "bench-exclude",
                "pkg/e_norm.py": "bench-exclude", "pkg/f_min.py": "minified", "pkg/g_gen.py": "generated",
                "pkg/h_short.py": "too-short", "pkg/i_long.py": "too-long", "pkg/j_bin.py": "not-utf8"}
        self.assertEqual(dropped, want)
        self.assertEqual(len(kept), 22)
        self.assertEqual({r["split"] for r in kept}, {"train", "val"})
        for r in kept:  # split by file hash, files copied as they are
            self.assertEqual(r["split"] == "val", int(r["sha256"][:8], 16) % 10000 < 3000)
            with open(os.path.join(out, r["path"]), "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), r["sha256"])
        with open(os.path.join(out, "stats.json")) as f:
            st = json.load(f)
        self.assertEqual(st["dropped"]["bench-exclude"]["files"], 2)
        self.assertEqual(st["kept_files"], 22)
        # deterministic
        with open(os.path.join(out, "manifest.jsonl"), "rb") as f:
            m1 = f.read()
        out2, _, _, _ = self.build(exl)
        with open(os.path.join(out2, "manifest.jsonl"), "rb") as f:
            self.assertEqual(m1, f.read())
        # check: clean now; a planted leak is caught by its normalized hash
        self.assertEqual(quiet(corpus.main, ["check", "--out", out, "--exclude", ex]), 0)
        victim = os.path.join(out, kept[0]["path"])
        with open(victim) as f:
            leaked = f.read()
        with open(ex, "a") as f:
            f.write("%s %s\n" % ("2" * 64, hashlib.sha256(corpus.normalize(leaked).encode()).hexdigest()))
        self.assertEqual(quiet(corpus.main, ["check", "--out", out, "--exclude", ex]), 1)

    def test_benchmark_and_held_out_packages_left_out_whole(self):
        rng = random.Random(5)
        sp = "usr/lib/python3/dist-packages/"
        ex = []
        for k in range(5):  # a "held-out" package: 3 of its 5 files are in the list
            t = synthetic_source(random.Random(200 + k), 30)
            self.write(sp + "heldout/m%d.py" % k, t)
            if k < 3:
                ex.append("%s %s\n" % (hashlib.sha256(t.encode()).hexdigest(), "0" * 64))
        self.write(sp + "sphinx/ext.py", synthetic_source(rng, 30))    # a benchmark package by name
        self.write(sp + "fine/mod.py", synthetic_source(rng, 30))
        out = os.path.join(self.tmp, "out")
        exf = os.path.join(self.tmp, "ex")
        with open(exf, "w") as f:
            f.writelines(ex)
        quiet(corpus.main, ["build", "--packages", "", "--extra-dir", os.path.join(self.tmp, "tree"),
                            "--out", out, "--exclude", exf])  # default --repos: the real repos.tsv
        with open(os.path.join(out, "manifest.jsonl")) as f:
            kept = [json.loads(l)["path"] for l in f]
        self.assertEqual(len(kept), 1)
        self.assertTrue(kept[0].endswith("fine/mod.py"))

    def test_package_list_has_no_benchmark_package(self):
        repos = os.path.join(corpus.DEFAULT_SHARED, "bench", "repos.tsv")
        if not os.path.exists(repos):
            self.skipTest("no ../shared/bench/repos.tsv")
        with open(repos) as f:
            bench = {l.split("\t")[1] for l in list(f)[1:] if l.strip()}
        pkgs = {p for p, v, a in corpus.read_packages(os.path.join(HERE, "packages.txt"))}
        self.assertEqual(len(bench), 8)
        self.assertFalse(bench & pkgs)
        self.assertFalse({p for p in pkgs if any(b in p for b in ("sphinx", "sqlalchemy", "dask", "distributed"))})
        self.assertGreater(len(pkgs), 50)


class Factory(Base):
    """factory.sh, steps corpus .. export, with the Python byte vocabulary (no C needed)."""

    def test_steps_run_and_resume_by_stamps(self):
        import subprocess
        tree = os.path.join(self.tmp, "tree")
        for k in range(12):
            p = os.path.join(tree, "pkg", "m%d.py" % k)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(synthetic_source(random.Random(k), 60))
        models = os.path.join(self.tmp, "models")
        env = dict(os.environ, MODELS=models, PACKAGES="", BYTE_VOCAB="1", NO_BENCH="1",
                   SHARED=corpus.DEFAULT_SHARED, PY=sys.executable, OMP_NUM_THREADS="1",
                   CORPUS_ARGS="--extra-dir %s --val-frac 0.2" % tree,
                   TRAIN_ARGS="--steps 3 --batch 1 --warmup 1 --threads 1 --eval-tokens 256")
        root = os.path.join(HERE, "..", "..")

        def run(*a):
            r = subprocess.run([os.path.join(HERE, "factory.sh")] + list(a), cwd=root, env=env,
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
            return r.stdout + r.stderr

        for step in ("corpus", "vocab", "tokenize"):
            run(step)
        run("train", "tiny-test")
        run("export", "tiny-test")
        self.assertIn("train tiny-test: done", run("train", "tiny-test"))
        self.assertEqual(run("status").split(),
                         ["corpus", "export-tiny-test", "tokenize", "train-tiny-test", "vocab"])
        hf = os.path.join(models, "hf", "tiny-test")
        for f in ("config.json", "model.safetensors", "tokenizer.json"):
            self.assertTrue(os.path.exists(os.path.join(hf, f)), f)
        with open(os.path.join(models, "runs", "tiny-test", "final.json")) as f:
            self.assertIn("val", json.load(f)["eval"])


class NoLeak(unittest.TestCase):
    """No benchmark file in the built corpus: recomputes both hashes of every corpus file."""

    def test_built_corpus_has_no_benchmark_file(self):
        d = os.environ.get("MC_CORPUS") or os.path.join(HERE, "..", "..", "build", "models", "corpus")
        ex = corpus.DEFAULT_EXCLUDE
        if not os.path.exists(os.path.join(d, "manifest.jsonl")) or not os.path.exists(ex):
            self.skipTest("no built corpus (tools/train/factory.sh corpus) or no exclude list")
        self.assertEqual(quiet(corpus.main, ["check", "--out", d, "--exclude", ex]), 0)


if __name__ == "__main__":
    unittest.main()
