"""Benchmark: what one EAP-IG-inputs pass costs against the plain model (issue 3's cost target).

    python tests/benchmarks/eap_cost.py [--layers 4,8] [--lengths 32,64,128] [--mlp-groups 1]
        [--batch 4] [--steps 5] [--repeats 3] [--out runs/eap-cost]

For each shape, a random Llama (d_model 256, 8 query / 4 KV heads, 688 MLP units, the organism's
width) scores every edge of one batch with EAP-IG-inputs (m steps), and the same batch goes through
m + 1 plain forward+backward passes, twice: as in training (gradients for every parameter), and with
gradients at the input embeddings only, as attribution takes them, which skips the weight gradients
and is the stricter baseline. The target: attribution costs at most 1.5 x the plain passes. Each
measurement runs in its own process; its memory figure is the peak resident memory above what the
process held before the first call (model and data).
Prints a table and writes eap_cost.json. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
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
from harness.bench.memory import peak_mb, reset_peak

VOCAB = 3072
TARGET = 1.5
KINDS = ("attribution", "training", "activations")


def _model(layers: int) -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=256, intermediate_size=688, num_hidden_layers=layers,
                         num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=256)
    return AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()


def _measure(kind: str, layers: int, length: int, groups: int, batch: int, steps: int, repeats: int) -> dict:
    """Median seconds of `kind` over repeats, and the peak memory above the model: 'attribution', or plain
    passes with parameter gradients ('training') or gradients at the input embeddings only ('activations')."""
    torch.set_num_threads(1)
    model = _model(layers)
    generator = torch.Generator().manual_seed(1)
    pair = PairBatch(torch.randint(3, VOCAB, (batch, length), generator=generator),
                     torch.randint(3, VOCAB, (batch, length), generator=generator))
    metric = refusal_logit_diff([3, 4], [5, 6])
    model.requires_grad_(kind == "training")

    adapter = adapter_for(model, groups)

    def attribution() -> None:
        attribute(adapter, [pair], metric, steps=steps, progress=False)

    def plain() -> None:
        for _ in range(steps + 1):
            model.zero_grad(set_to_none=True)
            embeds = model.get_input_embeddings()(pair.clean).detach().requires_grad_(True)
            logits = model(inputs_embeds=embeds, use_cache=False, logits_to_keep=1).logits[:, -1]
            metric(logits, logits.detach()).sum().backward()

    run = attribution if kind == "attribution" else plain
    reset_peak()  # from here the high-water mark starts at what the model and data hold
    before = peak_mb()
    run()  # warm-up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return {"seconds": statistics.median(times), "extra_peak_mb": peak_mb() - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", default="4,8")
    parser.add_argument("--lengths", default="32,64,128")
    parser.add_argument("--mlp-groups", default="1")
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
        for kind in KINDS:
            with context.Pool(1) as pool:  # a fresh process: its peak RSS is this measurement's alone
                measured[kind] = pool.apply(_measure, (kind, layers, length, groups, args.batch, args.steps,
                                                       args.repeats))
        seconds = {kind: m["seconds"] for kind, m in measured.items()}
        rows.append({"layers": layers, "length": length, "mlp_groups": groups,
                     "ratio_to_training_passes": round(seconds["attribution"] / seconds["training"], 3),
                     "ratio_to_activation_passes": round(seconds["attribution"] / seconds["activations"], 3),
                     "s_per_example": {kind: round(t / args.batch, 4) for kind, t in seconds.items()},
                     "extra_peak_mb": {kind: round(m["extra_peak_mb"]) for kind, m in measured.items()}})
        print(rows[-1], flush=True)
    table = Table(title=f"EAP-IG-inputs (m = {args.steps}) against m + 1 plain forward+backward passes, batch "
                        f"{args.batch}, 1 thread; target <= {TARGET}")
    for col in ("layers", "seq len", "MLP groups", "/ training passes", "/ activation passes", "s / example",
                "peak MB above the model (attr / train / act)"):
        table.add_column(col)
    for r in rows:
        mb = r["extra_peak_mb"]
        table.add_row(str(r["layers"]), str(r["length"]), str(r["mlp_groups"]), f"{r['ratio_to_training_passes']:.2f}",
                      f"{r['ratio_to_activation_passes']:.2f}", f"{r['s_per_example']['attribution']:.3f}",
                      f"{mb['attribution']} / {mb['training']} / {mb['activations']}")
    Console().print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"batch": args.batch, "steps": args.steps, "repeats": args.repeats, "threads": 1, "target": TARGET,
              "versions": library_versions(), "rows": rows}
    atomic_write_text(out / "eap_cost.json", json.dumps(result, indent=1) + "\n")
    print(f"wrote {out / 'eap_cost.json'}")


if __name__ == "__main__":
    main()
