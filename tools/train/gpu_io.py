#!/usr/bin/python3
"""tools/train/gpu_io.py — what travels to and from the one-shot GPU run (gpu-run.sh).

The device machine returns at most 8 files of at most 16 MiB per command, so trained
models come back as slim checkpoints (weights in bf16, config, step, tokens seen, the run's
final.json) split into parts, each listed with its sha256 in a manifest.

  gpu_io.py slim CKPT OUT_PREFIX [--final final.json]
      write OUT_PREFIX.part-00, -01, ... (<= 16 MiB each) and OUT_PREFIX.json (the parts'
      sha256 and sizes, the whole file's sha256)
  gpu_io.py join MANIFEST.json RUN_DIR [--parts DIR]
      check every part (in DIR, default the manifest's folder), reassemble, write RUN_DIR/ckpt.pt (model weights back in fp32, the
      checkpoint keys export.py reads) and RUN_DIR/final.json
  gpu_io.py concat OUT.tok A.tok B.tok ...
      one token file holding the documents of all inputs (same vocabulary and separator)
"""
import argparse
import hashlib
import io
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpuenv  # noqa: E402,F401

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tokfile import HEADER, MAGIC, TokenFile  # noqa: E402

PART = 16 * 1024 * 1024


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def load(f):
    """A full pickle (PyTorch >= 2.6 loads weights only by default)."""
    try:
        return torch.load(f, map_location="cpu", weights_only=False)
    except TypeError:  # PyTorch without the argument
        return torch.load(f, map_location="cpu")


def slim(ckpt, prefix, final=None):
    ck = load(ckpt)
    obj = {"model": {k: v.to(torch.bfloat16) for k, v in ck["model"].items()},
           "config": ck["config"], "step": ck["step"], "tokens_seen": ck.get("tokens_seen"),
           "preset": ck.get("preset"), "final": None}
    if final and os.path.exists(final):
        with open(final) as f:
            obj["final"] = json.load(f)
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    parts = []
    for i in range(0, len(data), PART):
        name = "%s.part-%02d" % (os.path.basename(prefix), i // PART)
        chunk = data[i:i + PART]
        with open(os.path.join(os.path.dirname(prefix) or ".", name), "wb") as f:
            f.write(chunk)
        parts.append({"name": name, "bytes": len(chunk), "sha256": sha256(chunk)})
    man = {"parts": parts, "bytes": len(data), "sha256": sha256(data)}
    with open(prefix + ".json", "w") as f:
        json.dump(man, f, indent=1)
    print("gpu_io: %s: %d parts, %.1f MB" % (prefix, len(parts), len(data) / 1e6))
    return man


def join(manifest, run_dir, parts_dir=None):
    with open(manifest) as f:
        man = json.load(f)
    d = parts_dir or os.path.dirname(manifest) or "."
    data = b""
    for p in man["parts"]:
        with open(os.path.join(d, p["name"]), "rb") as f:
            chunk = f.read()
        if len(chunk) != p["bytes"] or sha256(chunk) != p["sha256"]:
            raise SystemExit("gpu_io: %s: size or sha256 differs from the manifest" % p["name"])
        data += chunk
    if sha256(data) != man["sha256"]:
        raise SystemExit("gpu_io: %s: the joined file's sha256 differs" % manifest)
    obj = load(io.BytesIO(data))
    os.makedirs(run_dir, exist_ok=True)
    ck = {"model": {k: v.float() for k, v in obj["model"].items()}, "config": obj["config"],
          "step": obj["step"], "steps": obj["step"], "tokens_seen": obj.get("tokens_seen"),
          "preset": obj.get("preset")}
    tmp = os.path.join(run_dir, "ckpt.pt.tmp")
    torch.save(ck, tmp)
    os.replace(tmp, os.path.join(run_dir, "ckpt.pt"))
    if obj.get("final"):
        with open(os.path.join(run_dir, "final.json"), "w") as f:
            json.dump(obj["final"], f, indent=1)
            f.write("\n")
    print("gpu_io: %s -> %s/ckpt.pt (step %d, %.1fM tokens)"
          % (manifest, run_dir, obj["step"], (obj.get("tokens_seen") or 0) / 1e6))


def concat(out, inputs):
    tfs = [TokenFile(p) for p in inputs]
    sep, n_vocab = tfs[0].sep, max(t.n_vocab for t in tfs)
    if any(t.sep != sep for t in tfs):
        raise SystemExit("gpu_io: the token files have different separators")
    bpt = 2 if n_vocab <= 65536 else 4
    dt = np.dtype("<u2") if bpt == 2 else np.dtype("<u4")
    n = sum(t.n for t in tfs)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<IIQII", 1, bpt, n, sep, n_vocab))
        for t in tfs:
            for i in range(0, t.n, 1 << 24):
                f.write(np.asarray(t.tokens[i:i + (1 << 24)]).astype(dt).tobytes())
    assert os.path.getsize(tmp) == HEADER + n * bpt
    os.replace(tmp, out)
    print("gpu_io: %s: %d tokens from %d files" % (out, n, len(tfs)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("slim")
    p.add_argument("ckpt")
    p.add_argument("prefix")
    p.add_argument("--final")
    p = sub.add_parser("join")
    p.add_argument("manifest")
    p.add_argument("run_dir")
    p.add_argument("--parts")
    p = sub.add_parser("concat")
    p.add_argument("out")
    p.add_argument("inputs", nargs="+")
    a = ap.parse_args(argv)
    if a.cmd == "slim":
        slim(a.ckpt, a.prefix, a.final)
    elif a.cmd == "join":
        join(a.manifest, a.run_dir, a.parts)
    else:
        concat(a.out, a.inputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
