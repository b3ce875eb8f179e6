#!/usr/bin/python3
"""tools/train/tokfile.py — token files and vocabularies for the trainer.

Token file (written by `mccom tokenize`; read here with np.memmap), little-endian:
  offset  size  field
  0       8     magic "MCTOKENS"
  8       4     u32 version = 1
  12      4     u32 bytes per token (2 or 4)
  16      8     u64 n_tokens
  24      4     u32 separator token id (end-of-text)
  28      4     u32 vocab size
  32      ...   n_tokens tokens (u16 or u32); every document is followed by the separator

Vocabulary: a Hugging Face tokenizer.json (byte-level BPE: model.vocab maps GPT-2
byte-to-unicode strings to ids; added_tokens are the special tokens). From it the trainer
takes the byte length of every token (for bits/byte; special tokens count 0 bytes) and the
ids of the end-of-text and FIM tokens.

Also a toy byte-level vocabulary (ids 0-5 the special tokens of `mccom tokenizer train`:
<|endoftext|> <|fim_prefix|> <|fim_middle|> <|fim_suffix|> <|fim_pad|> <|file_sep|>; ids 6-261
the 256 bytes) with a matching tokenizer.json and a tokenizer that
writes token files with it: for tests, and as `--byte-vocab` fallback of the factory, so the
trainer works without the C tokenizer.

Usage:
  tokfile.py info FILE.tok
  tokfile.py byte-vocab OUT_DIR                      (writes OUT_DIR/tokenizer.json)
  tokfile.py gguf-vocab VOCAB.gguf tokenizer.json    (a trained vocabulary's tokenizer.json)
  tokfile.py byte-tokenize --list L --root R --out F.tok
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

MAGIC = b"MCTOKENS"
HEADER = 32
# The special tokens of vocabularies trained by `mccom tokenizer train` (ids 0-5, tok.h).
SPECIALS = ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
            "<|file_sep|>"]


class TokenFile:
    """A memory-mapped token file: .tokens (np.memmap), .sep, .n_vocab."""

    def __init__(self, path):
        with open(path, "rb") as f:
            hdr = f.read(HEADER)
        if len(hdr) < HEADER or hdr[:8] != MAGIC:
            raise ValueError("%s: not a token file (magic)" % path)
        version, bpt, n, sep, n_vocab = struct.unpack("<IIQII", hdr[8:32])
        if version != 1 or bpt not in (2, 4):
            raise ValueError("%s: unsupported version %d / %d bytes per token" % (path, version, bpt))
        size = os.path.getsize(path)
        if size != HEADER + n * bpt:
            raise ValueError("%s: size %d, header says %d tokens" % (path, size, n))
        self.path, self.sep, self.n_vocab, self.n = path, sep, n_vocab, n
        dt = np.dtype("<u2") if bpt == 2 else np.dtype("<u4")
        self.tokens = np.memmap(path, dtype=dt, mode="r", offset=HEADER, shape=(n,)) if n else np.zeros(0, dt)
        self.weights = read_weights(path + ".w", n) if os.path.exists(path + ".w") else None

    def doc_bounds(self):
        """(starts, ends) of the documents, separators excluded."""
        ends = np.flatnonzero(np.asarray(self.tokens) == self.sep)
        starts = np.concatenate([[0], ends[:-1] + 1]) if len(ends) else np.zeros(0, np.int64)
        return starts.astype(np.int64), ends.astype(np.int64)


WMAGIC = b"MCWEIGHT"


def read_weights(path, n):
    """A weight file (tools/mkexamples: "MCWEIGHT", u32 version 1, u32 0, u64 n, n u8): the
    loss weight of every token of the token file beside it."""
    with open(path, "rb") as f:
        hdr = f.read(24)
    if len(hdr) < 24 or hdr[:8] != WMAGIC:
        raise ValueError("%s: not a weight file (magic)" % path)
    version, _, m = struct.unpack("<IIQ", hdr[8:24])
    if version != 1 or m != n or os.path.getsize(path) != 24 + n:
        raise ValueError("%s: version %d, %d weights for %d tokens" % (path, version, m, n))
    return np.memmap(path, dtype=np.uint8, mode="r", offset=24, shape=(n,)) if n else np.zeros(0, np.uint8)


def write_weight_file(path, weights):
    arr = np.asarray(weights, dtype=np.uint8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(WMAGIC + struct.pack("<IIQ", 1, 0, len(arr)))
        f.write(arr.tobytes())
    os.replace(tmp, path)


def write_token_file(path, docs, sep, n_vocab):
    """docs: iterable of int sequences; each is written followed by sep."""
    bpt = 2 if n_vocab <= 65536 else 4
    dt = np.dtype("<u2") if bpt == 2 else np.dtype("<u4")
    parts = []
    for d in docs:
        parts.append(np.asarray(d, dtype=dt))
        parts.append(np.asarray([sep], dtype=dt))
    arr = np.concatenate(parts) if parts else np.zeros(0, dt)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<IIQII", 1, bpt, len(arr), sep, n_vocab))
        f.write(arr.tobytes())
    os.replace(tmp, path)
    return len(arr)


# ---------------------------------------------------------------- vocabularies
def bytes_to_unicode():
    """GPT-2's byte -> printable character map used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class Vocab:
    """What the trainer needs of a tokenizer.json: size, byte lengths, special ids."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            tj = json.load(f)
        self.path = path
        u2b = {c: b for b, c in bytes_to_unicode().items()}
        vocab = tj["model"]["vocab"]
        added = {a["content"]: a["id"] for a in tj.get("added_tokens", [])}
        special = {a["id"] for a in tj.get("added_tokens", []) if a.get("special", True)}
        self.n_vocab = max(list(vocab.values()) + list(added.values())) + 1
        self.byte_len = np.zeros(self.n_vocab, dtype=np.int64)
        self.pieces = [b""] * self.n_vocab
        for s, i in vocab.items():
            if i in special:
                continue
            b = bytes(u2b[c] for c in s) if all(c in u2b for c in s) else s.encode("utf-8")
            self.pieces[i] = b
            self.byte_len[i] = len(b)
        for s, i in added.items():
            if i not in special:
                self.pieces[i] = s.encode("utf-8")
                self.byte_len[i] = len(self.pieces[i])
        self.ids = added

    def id(self, *names):
        """Id of the first of names that is an added token, else None."""
        for n in names:
            if n in self.ids:
                return self.ids[n]
        return None

    def decode(self, ids):
        return b"".join(self.pieces[i] for i in ids)


BYTE0 = len(SPECIALS)
BYTE_VOCAB_SIZE = BYTE0 + 256
BYTE_EOT = 0


def byte_vocab_json():
    """A tokenizer.json for the toy byte vocabulary (loads in HF tokenizers as byte-level BPE)."""
    u = bytes_to_unicode()
    vocab = {u[b]: BYTE0 + b for b in range(256)}
    added = []
    for k, s in enumerate(SPECIALS):
        vocab[s] = k
        added.append({"id": k, "content": s, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True})
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                              "use_regex": False},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                        "use_regex": False},
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": []}}




# ---------------------------------------------------------------- GGUF vocabularies
# The qwen2 pre-tokenizer expression as Hugging Face writes it (as tok_train.c's hf_pattern).
HF_QWEN2_PATTERN = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?"
                    "[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def read_gguf_kv(path):
    """The key/value section of a GGUF v2/v3 file (tensors are not read): {key: value}."""
    import struct as st
    scal = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"GGUF":
        raise ValueError("%s: not a GGUF file" % path)
    ver, n_t, n_kv = st.unpack_from("<IQQ", data, 4)
    if ver not in (2, 3):
        raise ValueError("%s: GGUF version %d" % (path, ver))
    off = 24

    def rd_str():
        nonlocal off
        n, = st.unpack_from("<Q", data, off)
        s = data[off + 8:off + 8 + n]
        if len(s) != n:
            raise ValueError("%s: truncated" % path)
        off += 8 + n
        return s.decode("utf-8")

    def rd(t):
        nonlocal off
        if t == 8:
            return rd_str()
        if t == 9:
            et, n = st.unpack_from("<IQ", data, off)
            off += 12
            return [rd(et) for _ in range(n)]
        if t not in scal:
            raise ValueError("%s: bad value type %d" % (path, t))
        v, = st.unpack_from(scal[t], data, off)
        off += st.calcsize(scal[t])
        return v

    kv = {}
    for _ in range(n_kv):
        k = rd_str()
        t, = st.unpack_from("<I", data, off)
        off += 4
        kv[k] = rd(t)
    return kv


def gguf_vocab_json(path):
    """The tokenizer.json that `mccom tokenizer train --hf` writes, rebuilt from the vocabulary
    GGUF it wrote (tokens, merges, control tokens): byte-level BPE with the qwen2
    pre-tokenizer. Refuses other vocabularies."""
    kv = read_gguf_kv(path)
    if kv.get("tokenizer.ggml.model") != "gpt2" or kv.get("tokenizer.ggml.pre") != "qwen2":
        raise ValueError("%s: not a byte-level BPE vocabulary with the qwen2 pre-tokenizer" % path)
    toks, types = kv["tokenizer.ggml.tokens"], kv.get("tokenizer.ggml.token_type", [])
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for i, t in enumerate(toks) if i < len(types) and types[i] == 3]
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": HF_QWEN2_PATTERN}, "behavior": "Isolated",
                 "invert": False}, bl]},
            "post_processor": dict(bl), "decoder": dict(bl),
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": {t: i for i, t in enumerate(toks)},
                      "merges": list(kv.get("tokenizer.ggml.merges", []))}}


def write_json_atomic(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_byte_vocab(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    p = os.path.join(out_dir, "tokenizer.json")
    with open(p, "w", encoding="utf-8") as f:
        json.dump(byte_vocab_json(), f, ensure_ascii=False, indent=1)
    return p


def byte_tokenize(paths, out):
    docs = []
    for p in paths:
        with open(p, "rb") as f:
            docs.append(np.frombuffer(f.read(), dtype=np.uint8).astype(np.int64) + BYTE0)
    return write_token_file(out, docs, BYTE_EOT, BYTE_VOCAB_SIZE)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("info")
    p.add_argument("file")
    p = sub.add_parser("byte-vocab")
    p.add_argument("out_dir")
    p = sub.add_parser("gguf-vocab", help="tokenizer.json from a vocabulary GGUF of mccom tokenizer train")
    p.add_argument("gguf")
    p.add_argument("out")
    p = sub.add_parser("byte-tokenize")
    p.add_argument("--list", required=True, help="file of paths, one per line")
    p.add_argument("--root", default=".", help="paths in --list are relative to this")
    p.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "info":
        t = TokenFile(a.file)
        s, e = t.doc_bounds()
        print("%s: %d tokens, %d documents, separator %d, vocab %d" % (a.file, t.n, len(s), t.sep, t.n_vocab))
    elif a.cmd == "gguf-vocab":
        write_json_atomic(a.out, gguf_vocab_json(a.gguf))
        print(a.out)
    elif a.cmd == "byte-vocab":
        print(write_byte_vocab(a.out_dir))
    else:
        with open(a.list) as f:
            paths = [os.path.join(a.root, l.rstrip("\n")) for l in f if l.strip()]
        n = byte_tokenize(paths, a.out)
        print("%s: %d tokens from %d files" % (a.out, n, len(paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
