"""The PyTorch peer of the GPU check: the same Llama forward (random weights, float32, logits of
each row's last position) at the same shape, on CUDA when torch sees a GPU, else on the CPU.
    python3 torch_peer.py '{"hidden":512,"ffn":1376,"layers":8,"heads":8,"kvHeads":8,"vocab":32000,
                            "batch":32,"tokens":16,"reps":3,"flops":...}'
Prints one JSON object on stdout: fp32 (TF32 off, PyTorch's default for matmuls) and tf32 timings.
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F


def main():
    spec = json.loads(sys.argv[1])
    h, f, L, H, KV, V = (spec[k] for k in ("hidden", "ffn", "layers", "heads", "kvHeads", "vocab"))
    B, T, reps, flops = spec["batch"], spec["tokens"], spec["reps"], spec["flops"]
    hd = h // H
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float32
    gen = torch.Generator(device="cpu").manual_seed(7)

    def w(*shape):
        return ((torch.rand(*shape, generator=gen) - 0.5) * 0.04).to(device=dev, dtype=dtype)

    ones = lambda n: torch.ones(n, device=dev, dtype=dtype)
    layers = [
        dict(wq=w(h, H * hd), wk=w(h, KV * hd), wv=w(h, KV * hd), wo=w(H * hd, h),
             wg=w(h, f), wu=w(h, f), wd=w(f, h), n1=ones(h), n2=ones(h))
        for _ in range(L)
    ]
    emb, head, norm = w(V, h), w(h, V), ones(h)
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, device=dev, dtype=torch.float32) / hd))
    ang = torch.outer(torch.arange(T, device=dev, dtype=torch.float32), inv)
    cos = torch.cat([ang.cos(), ang.cos()], -1).to(dtype)[None, None]
    sin = torch.cat([ang.sin(), ang.sin()], -1).to(dtype)[None, None]
    ids = torch.randint(2, V, (B, T), generator=gen).to(dev)
    ids[:, 0] = 1

    def rms(x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * g

    def rope(x):
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    @torch.no_grad()
    def forward():
        x = emb[ids]
        for p in layers:
            xn = rms(x, p["n1"])
            q = rope((xn @ p["wq"]).view(B, T, H, hd).transpose(1, 2))
            k = rope((xn @ p["wk"]).view(B, T, KV, hd).transpose(1, 2))
            v = (xn @ p["wv"]).view(B, T, KV, hd).transpose(1, 2)
            if KV != H:
                k = k.repeat_interleave(H // KV, 1)
                v = v.repeat_interleave(H // KV, 1)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + a.transpose(1, 2).reshape(B, T, H * hd) @ p["wo"]
            xn = rms(x, p["n2"])
            x = x + (F.silu(xn @ p["wg"]) * (xn @ p["wu"])) @ p["wd"]
        return rms(x[:, -1], norm) @ head

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def timed():
        forward()
        sync()
        best = math.inf
        for _ in range(reps):
            t0 = time.perf_counter()
            out = forward()
            sync()
            best = min(best, time.perf_counter() - t0)
        if not torch.isfinite(out).all():
            raise RuntimeError("non-finite logits")
        return {"forwardS": best, "forwardTokensPerS": B * T / best, "forwardGflopPerS": flops / best / 1e9}

    result = {
        "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
        "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "batch": B,
        "promptTokensPerRow": T,
        "reps": reps,
    }
    torch.backends.cuda.matmul.allow_tf32 = False
    result["fp32"] = timed()
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        result["tf32"] = timed()
        torch.backends.cuda.matmul.allow_tf32 = False
        result["peakMemoryGB"] = torch.cuda.max_memory_allocated() / 1e9
    print(json.dumps(result))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one JSON line either way
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
