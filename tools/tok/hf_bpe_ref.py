#!/usr/bin/env python3
"""tools/tok/hf_bpe_ref.py — an independent reference for a byte-level BPE
tokenizer.json (the subset `mccom tokenizer train` writes), standard library
only, to check that our tokenizer.json means what our C tokenizer does.

It reads tokenizer.json the way Hugging Face `tokenizers` interprets it:
added tokens split out first, then the Split pre-tokenizer (its regex run by
Python's `re`, with \\p{L}, \\p{N} and \\s spelled out as explicit classes
built from `unicodedata`, since `re` has no \\p{..}), ByteLevel mapping, and
BPE merges by rank. It shares no code with mccom.

usage: hf_bpe_ref.py tokenizer.json FILE...   prints one line of ids per FILE
"""
import json
import re
import sys
import unicodedata

WHITE_SPACE = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680] + \
    list(range(0x2000, 0x200B)) + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]


def ranges_of(pred):
    out, start = [], None
    for cp in range(0x110000):
        ok = pred(cp)
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, 0x10FFFF))
    return out


def cls(ranges):
    def esc(cp):
        return "\\U%08x" % cp
    return "".join(esc(a) if a == b else esc(a) + "-" + esc(b) for a, b in ranges)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def translate(pattern):
    """Rewrite \\p{L}, \\p{N}, \\s, \\S and (?i:...) into Python re syntax."""
    cat = [unicodedata.category(chr(cp))[0] if not 0xD800 <= cp <= 0xDFFF else "C"
           for cp in range(0x110000)]
    L = cls(ranges_of(lambda cp: cat[cp] == "L"))
    N = cls(ranges_of(lambda cp: cat[cp] == "N"))
    S = cls([(c, c) for c in WHITE_SPACE])
    # inside a class: drop the brackets of the replacement
    p = pattern
    p = p.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)",
                  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])")
    out, i, inside = [], 0, False
    while i < len(p):
        c = p[i]
        if c == "\\" and p.startswith("\\p{L}", i):
            out.append(L if inside else "[" + L + "]"); i += 5; continue
        if c == "\\" and p.startswith("\\p{N}", i):
            out.append(N if inside else "[" + N + "]"); i += 5; continue
        if c == "\\" and p.startswith("\\s", i):
            out.append(S if inside else "[" + S + "]"); i += 2; continue
        if c == "\\" and p.startswith("\\S", i):
            assert not inside
            out.append("[^" + S + "]"); i += 2; continue
        if c == "\\":
            out.append(p[i:i + 2]); i += 2; continue
        if c == "[":
            inside = True
        elif c == "]":
            inside = False
        out.append(c)
        i += 1
    return re.compile("".join(out))


class Tokenizer:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        m = j["model"]
        assert m["type"] == "BPE" and not m.get("byte_fallback")
        self.vocab = m["vocab"]
        self.ranks = {}
        for r, mg in enumerate(m["merges"]):
            a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
            self.ranks.setdefault((a, b), r)
        self.added = sorted(((t["content"], t["id"]) for t in j["added_tokens"]),
                            key=lambda x: -len(x[0]))
        pre = j["pre_tokenizer"]
        pts = pre["pretokenizers"] if pre["type"] == "Sequence" else [pre]
        split = [p for p in pts if p["type"] == "Split"]
        assert len(split) == 1 and split[0]["behavior"] == "Isolated"
        self.regex = translate(split[0]["pattern"]["Regex"])
        self.b2u = bytes_to_unicode()
        self.cache = {}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best, bi = None, -1
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if best is None:
                break
            parts[bi:bi + 2] = [parts[bi] + parts[bi + 1]]
        ids = [self.vocab[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode_plain(self, text):
        ids, pos = [], 0
        for m in self.regex.finditer(text):
            for piece in ((text[pos:m.start()],) if m.start() > pos else ()) + (m.group(0),):
                mapped = "".join(self.b2u[b] for b in piece.encode("utf-8"))
                ids.extend(self.bpe(mapped))
            pos = m.end()
        if pos < len(text):
            mapped = "".join(self.b2u[b] for b in text[pos:].encode("utf-8"))
            ids.extend(self.bpe(mapped))
        return ids

    def encode(self, text):
        frags = [(text, None)]
        for content, tid in self.added:
            nxt = []
            for s, t in frags:
                if t is not None:
                    nxt.append((s, t))
                    continue
                parts = s.split(content)
                for k, p in enumerate(parts):
                    if k:
                        nxt.append((content, tid))
                    if p:
                        nxt.append((p, None))
            frags = nxt
        ids = []
        for s, t in frags:
            ids.extend([t] if t is not None else self.encode_plain(s))
        return ids


def main():
    tok = Tokenizer(sys.argv[1])
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        print(" ".join(map(str, tok.encode(text))))


if __name__ == "__main__":
    main()
