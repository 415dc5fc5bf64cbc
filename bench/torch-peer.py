"""The bench shape's forward in PyTorch, as the peer of the lab's (bench/forward.bench.ts).

A random Llama (hidden 512, 8 layers, FFN 1376, 8 heads, vocab 32000; RMSNorm, rotate-half RoPE,
causal attention, SiLU-gated MLP), a batch of 32 x 16 tokens, float32, last-position logits, on
the CPU with every core torch sees. Prints one JSON line; exits 3 when torch is not installed.
    python3 bench/torch-peer.py [--reps 5]
"""
import json
import sys
import time

try:
    import torch
except ImportError:
    print(json.dumps({"available": False, "pythonVersion": sys.version.split()[0], "reason": "PyTorch is not installed for %s" % sys.executable}))
    sys.exit(3)

H, L, F, NH, V, B, T = 512, 8, 1376, 8, 32000, 32, 16
HD = H // NH
reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 5
g = torch.Generator().manual_seed(7)


def w(*shape):
    return (torch.rand(*shape, generator=g) - 0.5) * 0.04


layers = [dict(q=w(H, H), k=w(H, H), v=w(H, H), o=w(H, H), gate=w(F, H), up=w(F, H), down=w(H, F)) for _ in range(L)]
embed, head = w(V, H), w(V, H)
inv = 1.0 / (10000 ** (torch.arange(0, HD, 2).float() / HD))
ang = torch.outer(torch.arange(T).float(), inv)
cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)


def rms(x):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)


def rope(x):
    x1, x2 = x[..., : HD // 2], x[..., HD // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def forward(ids):
    x = embed[ids]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for p in layers:
        h = rms(x)
        q = rope((h @ p["q"].T).view(B, T, NH, HD).transpose(1, 2))
        k = rope((h @ p["k"].T).view(B, T, NH, HD).transpose(1, 2))
        v = (h @ p["v"].T).view(B, T, NH, HD).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / HD**0.5 + mask, -1) @ v
        x = x + a.transpose(1, 2).reshape(B, T, H) @ p["o"].T
        h = rms(x)
        x = x + (torch.nn.functional.silu(h @ p["gate"].T) * (h @ p["up"].T)) @ p["down"].T
    return rms(x)[:, -1] @ head.T


ids = torch.randint(2, V, (B, T), generator=g)
with torch.inference_mode():
    forward(ids)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        forward(ids)
        best = min(best, time.perf_counter() - t0)
print(json.dumps({"available": True, "pythonVersion": sys.version.split()[0], "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": [B, T], "forwardTokensPerS": B * T / best}))
