#!/usr/bin/env python3
"""Loads a `vae export` safetensors file into PyTorch's twin of the model and compares reconstructions.

    python3 bench/check_export.py WEIGHTS.safetensors BATCH.safetensors [--tolerance 1e-5]

WEIGHTS is what `vae export --run DIR --format safetensors` wrote. BATCH is a safetensors file with the input batch
`x` (B, C, s, s) in [0, 1] and VaeKit's evaluation-mode outputs for it: `reconstruction` (B, C, s, s) and `mu` (B, z)
(the test in tests/VaeKit.Tests/Export writes one). The file format is parsed here with struct + json +
torch.frombuffer, without the safetensors package (Debian 12's python3-torch 1.13 has none), which also checks that
VaeKit writes the format as specified. The twin is bench/pytorch_bench.py's VAE; its state_dict must match the file
exactly (load_state_dict(strict=True)). Evaluation mode on both sides: running BatchNorm statistics, z = mu.

Prints one JSON object with the largest absolute differences; exits 1 when one exceeds the tolerance.

    python3 bench/check_export.py --from-pytorch PRESET WEIGHTS.safetensors BATCH.safetensors

goes the other way for `vae import`: writes a freshly initialised twin of PRESET (its BatchNorm statistics moved by
three training-mode passes) as WEIGHTS, names sorted as the safetensors package writes them and without metadata,
and a random batch with the twin's evaluation-mode outputs as BATCH.
"""
import argparse
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_bench import PRESETS, VAE  # noqa: E402  (the twin; importing it runs no benchmark)

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


def read_safetensors(path):
    """(tensors by name, metadata) of a safetensors file: u64 LE header length, JSON header, raw LE data."""
    with open(path, "rb") as f:
        blob = bytearray(f.read())
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + length].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data_start = 8 + length
    tensors, end = {}, 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, stop = info["data_offsets"]
        assert begin == end, f"{name}: data_offsets leave a gap or overlap"
        dtype, shape = DTYPES[info["dtype"]], info["shape"]
        count = 1
        for d in shape:
            count *= d
        assert stop - begin == count * torch.empty((), dtype=dtype).element_size(), f"{name}: byte count does not fit its shape"
        if count == 0:
            t = torch.empty(shape, dtype=dtype)
        else:
            t = torch.frombuffer(blob, dtype=dtype, count=count, offset=data_start + begin).reshape(shape).clone()
        tensors[name] = t
        end = stop
    assert data_start + end == len(blob), "trailing or missing bytes after the last tensor"
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None):
    """The inverse of read_safetensors: tensors in name order, header padded with spaces to a multiple of 8."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    names = {t: n for n, t in DTYPES.items()}
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        data = t.flatten().view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in chunks:
            f.write(data)


def from_pytorch(preset, weights_path, batch_path):
    size, widths, blocks, latent = PRESETS[preset]
    torch.manual_seed(3)
    twin = VAE(size, widths, blocks, latent)
    twin.train()
    with torch.no_grad():
        for i in range(3):
            twin(torch.rand(8, 3, size, size) * (1 + i))
    twin.eval()
    x = torch.rand(16, 3, size, size)
    with torch.no_grad():
        reconstruction, mu, _ = twin(x)
    write_safetensors(weights_path, twin.state_dict())
    write_safetensors(batch_path, {"x": x, "reconstruction": reconstruction, "mu": mu})
    print(json.dumps({"preset": preset, "tensors": len(twin.state_dict()), "torch": torch.__version__}))


def twin_from_metadata(metadata):
    """bench/pytorch_bench.py's VAE with the architecture VaeKit stored in the file's metadata."""
    model = json.loads(metadata["config"])["model"]
    if model.get("kind", "vae") != "vae" or model.get("norm", "batch") != "batch":
        sys.exit("the PyTorch twin is the VAE with BatchNorm; this file holds a different model")
    return VAE(model["image_size"], model["widths"], model["blocks"], model["latent"], channels=model["in_channels"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("batch")
    ap.add_argument("--tolerance", type=float, default=1e-5)
    ap.add_argument("--from-pytorch", metavar="PRESET", choices=sorted(PRESETS),
                    help="write a PyTorch twin and its outputs instead of checking")
    args = ap.parse_args()
    if args.from_pytorch:
        return from_pytorch(args.from_pytorch, args.weights, args.batch)

    weights, metadata = read_safetensors(args.weights)
    twin = twin_from_metadata(metadata)
    twin.load_state_dict(weights, strict=True)   # names, shapes and the BatchNorm buffers must all match
    twin.eval()
    batch, _ = read_safetensors(args.batch)
    with torch.no_grad():
        reconstruction, mu, _ = twin(batch["x"])
    diffs = {
        "reconstruction": (reconstruction - batch["reconstruction"]).abs().max().item(),
        "mu": (mu - batch["mu"]).abs().max().item(),
    }
    print(json.dumps({
        "tensors": len(weights), "parameters": sum(p.numel() for p in twin.parameters()),
        "max_abs_diff_reconstruction": diffs["reconstruction"], "max_abs_diff_mu": diffs["mu"],
        "tolerance": args.tolerance, "torch": torch.__version__,
    }))
    worst = max(diffs.values())
    if not worst <= args.tolerance:
        sys.exit(f"PyTorch's outputs differ from VaeKit's by {worst:.3g} (> {args.tolerance:g})")


if __name__ == "__main__":
    main()
