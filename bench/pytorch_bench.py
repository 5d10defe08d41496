#!/usr/bin/env python3
"""The PyTorch side of `bench/compare`: VaeKit's model and training step, written in plain PyTorch.

Same architecture as src/VaeKit (AutoEncoder.cs, Layers/*.cs; parameter counts are printed and checked by
bench/compare), same loss (per-image sum of squared errors + KL, batch mean), same optimizer (AdamW, decay on
conv/linear weights only, eps 1e-8; PyTorch's default multi-tensor implementation), same gradient clipping, same
batch assembly (uint8 images resident on the device, index_select, random flips, float conversion) and the same
timing: median step time over windows, where a window is one step on the CPU and 20 steps on a GPU (the host
reads the losses back once per window, as `vae train` and `vae bench` do).

--precision bf16 is PyTorch's best eager mode: bf16 autocast plus channels_last.
Prints one JSON object with the field names `vae bench --json` uses.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    # name: (image size, widths, blocks per stage, latent)
    "tiny": (32, [16, 24, 32, 32], 1, 32),
    "small": (32, [32, 64, 96, 128], 1, 64),
    "base": (64, [32, 64, 128, 128], 2, 128),
    "large": (64, [32, 64, 128, 256, 256], 2, 256),
    "bench-s": (32, [16, 32, 64], 1, 32),
    "bench-m": (64, [32, 64, 128, 256], 1, 128),
}
WINDOW_GPU = 20


class ResidualBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm1, self.conv1 = nn.BatchNorm2d(c), nn.Conv2d(c, c, 3, padding=1)
        self.norm2, self.conv2 = nn.BatchNorm2d(c), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class VAE(nn.Module):
    def __init__(self, size, widths, blocks, latent, channels=3):
        super().__init__()
        c, self.latent = widths, latent
        side = size >> (len(c) - 1)
        self.bottleneck = (c[-1], side, side)
        enc = [nn.Conv2d(channels, c[0], 3, padding=1)]
        for i in range(len(c)):
            enc += [ResidualBlock(c[i]) for _ in range(blocks)]
            if i + 1 < len(c):
                enc.append(nn.Conv2d(c[i], c[i + 1], 4, stride=2, padding=1))
        enc += [nn.BatchNorm2d(c[-1]), nn.SiLU(), nn.Flatten()]
        self.encoder = nn.Sequential(*enc)
        flat = c[-1] * side * side
        self.project_latent = nn.Linear(flat, 2 * latent)
        self.project = nn.Linear(latent, flat)
        dec = []
        for i in reversed(range(len(c))):
            dec += [ResidualBlock(c[i]) for _ in range(blocks)]
            if i > 0:
                dec.append(nn.ConvTranspose2d(c[i], c[i - 1], 4, stride=2, padding=1))
        dec += [nn.BatchNorm2d(c[0]), nn.SiLU(), nn.Conv2d(c[0], channels, 3, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    def decode(self, z):
        return self.decoder(self.project(z).view(-1, *self.bottleneck))

    def forward(self, x):
        mu, logvar = self.project_latent(self.encoder(x)).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decode(z), mu, logvar


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="bench-s", choices=sorted(PRESETS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--no-tf32", action="store_true")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True (autotuned convolutions)")
    ap.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms(True), cudnn.benchmark off")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if gpu:  # the same switch as `vae --no-tf32` (on by default there: matmuls and convolutions)
        torch.backends.cuda.matmul.allow_tf32 = not args.no_tf32
        torch.backends.cudnn.allow_tf32 = not args.no_tf32
    if args.cudnn_benchmark and not args.deterministic:
        torch.backends.cudnn.benchmark = True
    if args.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    size, widths, blocks, latent = PRESETS[args.preset]
    torch.manual_seed(0)
    model = VAE(size, widths, blocks, latent).to(device)
    bf16 = args.precision == "bf16"
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    params = list(model.parameters())
    decay = [p for p in params if p.dim() > 1]
    no_decay = [p for p in params if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.999), eps=1e-8)

    count = max(4 * args.batch, 256)
    images = torch.randint(0, 256, (count, size, size, 3), dtype=torch.uint8, device=device)
    gen = torch.Generator().manual_seed(1)
    state = {"order": None, "flip": None, "next": 0}

    def next_batch():
        per_epoch = count // args.batch
        if state["order"] is None or state["next"] == per_epoch:
            state["order"] = torch.randperm(count, generator=gen).to(device)
            state["flip"] = (torch.rand(count, generator=gen) < 0.5).to(device)
            state["next"] = 0
        idx = state["order"].narrow(0, state["next"] * args.batch, args.batch)
        state["next"] += 1
        x = images.index_select(0, idx).permute(0, 3, 1, 2).float().div_(255).contiguous()
        mirror = state["flip"].index_select(0, idx).view(-1, 1, 1, 1)
        x = torch.where(mirror, x.flip(3), x)
        return x.contiguous(memory_format=torch.channels_last) if bf16 else x

    def step():
        x = next_batch()
        model.train()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            recon, mu, logvar = model(x)
        recon, mu, logvar = recon.float(), mu.float(), logvar.float()
        rec = (recon - x).square().flatten(1).sum(1)
        kl = (-0.5 * (1 + logvar - mu.square() - logvar.exp())).sum(1)
        loss = (rec + kl).mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, 1000.0)
        opt.step()
        return torch.stack([loss.detach(), norm.float()])

    window = WINDOW_GPU if gpu else 1
    windows = max(1, -(-args.steps // window))
    warmup = max(args.warmup, 2 * window) if gpu else args.warmup
    for _ in range(warmup):
        step().cpu()
    sync(device)
    times, last = [], float("nan")
    for _ in range(windows):
        t0 = time.perf_counter()
        rows = [step() for _ in range(window)]
        last = torch.stack(rows).cpu()[-1, 0].item()   # one read-back per window
        times.append((time.perf_counter() - t0) / window)
    step_s = statistics.median(times)

    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        x = torch.rand(args.batch, 3, size, size, device=device)
        z = torch.randn(args.batch, latent, device=device)

        def rate(fn):
            ts = []
            for i in range(12):
                sync(device)
                t0 = time.perf_counter()
                fn()
                sync(device)
                if i >= 2:
                    ts.append(time.perf_counter() - t0)
            return args.batch / statistics.median(ts)

        inference, sampling = rate(lambda: model(x)), rate(lambda: model.decode(z))

    print(json.dumps({
        "preset": args.preset, "device": str(device), "precision": args.precision, "batch": args.batch,
        "threads": torch.get_num_threads(), "parameters": sum(p.numel() for p in params),
        "timed_steps": windows * window, "step_ms": step_s * 1000, "train_images_per_second": args.batch / step_s,
        "inference_images_per_second": inference, "sampling_images_per_second": sampling, "final_loss": last,
        "gpu_max_allocated_bytes": torch.cuda.max_memory_allocated(device) if gpu else None,
        "gpu_max_reserved_bytes": torch.cuda.max_memory_reserved(device) if gpu else None,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "versions": {"torch": torch.__version__},
    }))


if __name__ == "__main__":
    main()
