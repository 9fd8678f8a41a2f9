"""Benchmark: what one EAP-IG-inputs pass costs against the plain model (issue 3's cost target).

    python tests/benchmarks/eap_cost.py [--layers 4,8] [--lengths 32,64,128] [--mlp-groups 1,16]
        [--batch 4] [--steps 5] [--repeats 3] [--out runs/eap-cost]

For each shape, a random Llama (d_model 256, 8 query / 4 KV heads, 688 MLP units, the organism's
width) scores every edge of one batch with EAP-IG-inputs (m steps), and the same batch goes through
m + 1 plain forward+backward passes. The plain passes take gradients at the input embeddings only,
as attribution does (no parameter gradients): the stricter baseline. The target: attribution costs
at most 1.5 x the plain passes. Each measurement runs in its own process; its memory figure is the
peak resident memory above what the process held before the first call (model and data).
Prints a table and writes eap_cost.json. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from transformers import AutoModelForCausalLM, LlamaConfig

from cdelta.atomic import atomic_write_text
from cdelta.eap.attribute import attribute
from cdelta.eap.metrics import refusal_logit_diff
from cdelta.eap.pairs import PairBatch
from cdelta.graph.adapters import adapter_for
from cdelta.provenance import library_versions

VOCAB = 3072
TARGET = 1.5


def _model(layers: int) -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=256, intermediate_size=688, num_hidden_layers=layers,
                         num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=256)
    return AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()


def _measure(kind: str, layers: int, length: int, groups: int, batch: int, steps: int, repeats: int) -> dict:
    """Median seconds of `kind` ('attribution' or 'plain') over repeats, and this process's peak RSS."""
    torch.set_num_threads(1)
    model = _model(layers)
    generator = torch.Generator().manual_seed(1)
    pair = PairBatch(torch.randint(3, VOCAB, (batch, length), generator=generator),
                     torch.randint(3, VOCAB, (batch, length), generator=generator))
    metric = refusal_logit_diff([3, 4], [5, 6])
    for p in model.parameters():
        p.requires_grad_(False)

    adapter = adapter_for(model, groups)

    def attribution() -> None:
        attribute(adapter, [pair], metric, steps=steps, progress=False)

    def plain() -> None:
        for _ in range(steps + 1):
            embeds = model.get_input_embeddings()(pair.clean).detach().requires_grad_(True)
            logits = model(inputs_embeds=embeds, use_cache=False, logits_to_keep=1).logits[:, -1]
            metric(logits, logits.detach()).sum().backward()

    run = attribution if kind == "attribution" else plain
    before = _rss_mb()
    run()  # warm-up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": statistics.median(times), "extra_peak_mb": peak - before}


def _rss_mb() -> float:
    """This process's resident memory now (Linux), so a run's peak can be told from what the model itself holds."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status: this benchmark's memory figure needs Linux")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", default="4,8")
    parser.add_argument("--lengths", default="32,64,128")
    parser.add_argument("--mlp-groups", default="1,16")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="runs/eap-cost")
    args = parser.parse_args()
    rows = []
    context = multiprocessing.get_context("spawn")
    shapes = [(layers, length, groups) for groups in map(int, args.mlp_groups.split(","))
              for layers in map(int, args.layers.split(",")) for length in map(int, args.lengths.split(","))]
    for layers, length, groups in shapes:
        measured = {}
        for kind in ("attribution", "plain"):
            with context.Pool(1) as pool:  # a fresh process: its peak RSS is this measurement's alone
                measured[kind] = pool.apply(_measure, (kind, layers, length, groups, args.batch, args.steps,
                                                       args.repeats))
        ratio = measured["attribution"]["seconds"] / measured["plain"]["seconds"]
        rows.append({"layers": layers, "length": length, "mlp_groups": groups, "ratio": round(ratio, 3),
                     "attribution_s_per_example": round(measured["attribution"]["seconds"] / args.batch, 4),
                     "plain_s_per_example": round(measured["plain"]["seconds"] / args.batch, 4),
                     "attribution_extra_peak_mb": round(measured["attribution"]["extra_peak_mb"]),
                     "plain_extra_peak_mb": round(measured["plain"]["extra_peak_mb"]), "met": ratio <= TARGET})
        print(rows[-1], flush=True)
    table = Table(title=f"EAP-IG-inputs (m = {args.steps}) against m + 1 plain forward+backward passes, batch "
                        f"{args.batch}, 1 thread; target <= {TARGET}")
    for col in ("layers", "seq len", "MLP groups", "ratio", "s / example", "peak MB above the model (attr / plain)", "met"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["layers"]), str(r["length"]), str(r["mlp_groups"]), f"{r['ratio']:.2f}",
                      f"{r['attribution_s_per_example']:.3f}",
                      f"{r['attribution_extra_peak_mb']} / {r['plain_extra_peak_mb']}", "yes" if r["met"] else "NO")
    Console().print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"batch": args.batch, "steps": args.steps, "repeats": args.repeats, "threads": 1, "target": TARGET,
              "versions": library_versions(), "rows": rows}
    atomic_write_text(out / "eap_cost.json", json.dumps(result, indent=1) + "\n")
    print(f"wrote {out / 'eap_cost.json'}")


if __name__ == "__main__":
    main()
