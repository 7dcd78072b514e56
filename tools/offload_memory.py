"""Peak CPU memory of sparsify on a model loaded normally vs with its decoder layers offloaded to
disk (docs/offload.md): each scenario runs in a fresh process; a thread samples its resident set
size (/proc/self/statm) every 5 ms, reported above what the process held once everything was
imported and the model class built on `meta` (~220 MiB of code and import-time state, which
would otherwise count as "weights").

A random Llama (default ~400 MB of fp32 weights, 8 layers) is saved once with save_pretrained;
offline methods calibrate on random token windows, µ-MoE prefills one prompt and decodes a few
tokens. Memory, not time, is measured, so a busy machine does not change the figures much.

    python tools/offload_memory.py [--hidden 1024] [--layers 8] [--windows 16] [--seqlen 128]
        [--folder /tmp/mumoe-offload-memory] [--out docs/results/offload_memory.md]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SCENARIOS = {  # name -> (placement, method, sparsify options)
    "resident, wanda": ("resident", "wanda", {}),
    "resident, wanda, originals to files": ("resident", "wanda", {"keep_originals": "FOLDER"}),
    "layers on disk, wanda": ("disk", "wanda", {}),
    "layers on disk, sparsegpt": ("disk", "sparsegpt", {}),
    "resident, mumoe generate": ("resident", "mumoe", {}),
    "layers on disk, mumoe generate": ("disk", "mumoe", {}),
}


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS(threading.Thread):
    """The largest RSS seen since start() (or since the last reset())."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.done = _rss_mib(), threading.Event()

    def run(self):
        while not self.done.wait(0.005):
            self.peak = max(self.peak, _rss_mib())

    def reset(self) -> float:
        now = _rss_mib()
        self.peak = now
        return now


def build(folder: str, hidden: int, layers: int) -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    path = os.path.join(folder, f"llama-{hidden}x{layers}")
    if not os.path.isdir(path):
        torch.manual_seed(0)
        config = LlamaConfig(vocab_size=4096, hidden_size=hidden, intermediate_size=hidden * 11 // 4,
                             num_hidden_layers=layers, num_attention_heads=16, num_key_value_heads=4,
                             max_position_embeddings=1024, tie_word_embeddings=False)
        LlamaForCausalLM(config).save_pretrained(path)
    return path


def child(args) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    sys.path.insert(0, ROOT)
    from mumoe_ext.models import restore, sparsify
    torch.set_num_threads(1)
    config = AutoConfig.from_pretrained(args.path)
    with torch.device("meta"):  # import and build everything once: the baseline holds no weights
        AutoModelForCausalLM.from_config(config)
    sampler = PeakRSS()
    sampler.start()
    base = sampler.reset()
    placement, method, opts = SCENARIOS[args.scenario]
    kw = {}
    if placement == "disk":
        n = config.num_hidden_layers
        kw = dict(device_map={"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.norm": "cpu",
                              "lm_head": "cpu", **{f"model.layers.{i}": "disk" for i in range(n)}},
                  offload_folder=tempfile.mkdtemp(dir=args.folder))
    model = AutoModelForCausalLM.from_pretrained(args.path, **kw).eval()
    loaded, load_peak = _rss_mib(), sampler.peak
    sampler.reset()
    opts = {k: (tempfile.mkdtemp(dir=args.folder) if v == "FOLDER" else v) for k, v in opts.items()}
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        if method == "mumoe":
            sparsify(model, "mumoe", 0.5)
            ids = torch.randint(0, 4096, (1, args.seqlen), generator=g)
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
        else:
            calib = torch.randint(0, 4096, (args.windows, args.seqlen), generator=g)
            sparsify(model, method, 0.5, calib=calib, progress=False, **opts)
        peak = max(sampler.peak, _rss_mib())
        restore(model)
    sampler.done.set()
    weights = sum(p.numel() * p.element_size() for p in model.parameters() if not p.is_meta)
    return {"scenario": args.scenario, "resident_weights_mib": weights / 2**20,
            "load_peak_mib": load_peak - base, "after_load_mib": loaded - base,
            "peak_mib": peak - base}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--seqlen", type=int, default=128)
    ap.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "mumoe-offload-memory"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--scenario", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scenario:
        print(json.dumps(child(args)))
        return
    os.makedirs(args.folder, exist_ok=True)
    path = build(args.folder, args.hidden, args.layers)
    from tqdm.auto import tqdm
    rows = []
    for name in tqdm(SCENARIOS, desc="scenarios"):
        cmd = [sys.executable, __file__, "--scenario", name, "--path", path, "--folder", args.folder,
               "--windows", str(args.windows), "--seqlen", str(args.seqlen)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) / 2**20
    lines = [f"Random Llama, hidden {args.hidden}, {args.layers} layers, checkpoint {size:.0f} MiB (fp32); "
             f"offline methods: {args.windows} windows of {args.seqlen} tokens; µ-MoE: one prompt of "
             f"{args.seqlen} tokens + 8 generated, density 0.5, 1 thread. "
             f"`python tools/offload_memory.py --hidden {args.hidden} --layers {args.layers}`", "",
             "| scenario | weights resident on the modules (MiB) | RSS after load | peak while loading "
             "| peak during sparsify (+ generate) |", "|---|---|---|---|---|"]
    lines += [f"| {r['scenario']} | {r['resident_weights_mib']:.0f} | {r['after_load_mib']:.0f} | "
              f"{r['load_peak_mib']:.0f} | {r['peak_mib']:.0f} |" for r in rows]
    lines += ["", "RSS in MiB above the process after its imports and a model built on `meta`. "
              "Resident weights are memory-mapped from the checkpoint: they count once touched."]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
