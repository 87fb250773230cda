"""One LoRA RAFT training step (score-only, gradient checkpointing on): the output head applied at
the score positions only, against full B x T x V logits. Same model and batch; each path runs in
its own fresh process; printed side by side with their ratios.

    python bench/train_memory.py [--model DIR] [--batch 4] [--length 512] [--steps 3]

Peak memory is the step's peak above the memory in use before it: CUDA's max_memory_allocated
on a GPU, the process's peak RSS (VmHWM, reset through /proc/self/clear_refs) on the CPU.

    python bench/train_memory.py --whole [--data MT_BENCH] [--process-steps 2] [--max-length 2048]
        [--checkpointing both|on|off] [--heap both|small|default]

measures the peak a run meets: whole `python -m raft train` processes on the LONGEST batch of the
MT Bench rows (prepared as shipped; the training set cut to its `batch` longest rows that fit
max length, so every step holds that batch) at the default settings (LoRA, batch 4, max length
2048), with and without gradient checkpointing, with the heap kept small (the default) or glibc's
adaptive heap (RAFT_GLIBC_HEAP=default): each process's peak resident memory (ru_maxrss), CPU
time, and `raft train`'s own estimate of the peak with its parts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def batch_of(tokenizer, score_tokens, batch: int, length: int) -> list[dict]:
    """`batch` score-only examples cut to exactly `length` tokens (the response is trimmed)."""
    from raft.data import build_example
    from raft.prompts import load_template
    from raft.synthetic import generate_rows
    from raft.train.trainer import tokenize

    template = load_template(None, "score_only", reference=True)
    out = []
    for row in generate_rows(batch, seed=0, filler=(8, 8), signals=8):
        example = tokenize(build_example(row, "score_only", template, (1, 5)), tokenizer, score_tokens, True)
        extra = len(example["input_ids"]) - length
        if extra < 0:
            raise SystemExit(f"example has {len(example['input_ids'])} tokens, fewer than {length}; lengthen filler")
        cut = 200  # drop tokens from inside the response, keep the rubric and the score cue
        for key in ("input_ids", "labels"):
            example[key] = example[key][:cut] + example[key][cut + extra :]
        example["score_pos"] -= extra
        out.append(example)
    return out


def child(path: str, model_dir: str, batch: int, length: int, steps: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raft.loss import make_loss
    from raft.models import fetch_default, resolve_device
    from raft.scores import find_score_tokens
    from raft.train.trainer import Collator

    device = resolve_device()
    model_dir = model_dir or str(fetch_default())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    torch.manual_seed(0)  # the same LoRA initialisation in both processes
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model.train()
    st = find_score_tokens(tokenizer)
    loss_fn = make_loss("raft", st.ids, st.values)
    data = Collator(tokenizer.pad_token_id, head_at_score=path == "head")(batch_of(tokenizer, st, batch, length))
    data = {k: v.to(device) for k, v in data.items()}
    labels, gold = data.pop("labels"), data.pop("gold", None)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        out = model(**data)
        loss = loss_fn(out, labels, gold=gold)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return out.logits.shape, loss.item()

    step()  # warm-up: optimizer state, allocator pools
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")
        base = _rss_kib("VmRSS") * 1024
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        shape, loss = step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda" else _rss_kib("VmHWM") * 1024) - base
    return {
        "path": path,
        "device": str(device),
        "logits_shape": list(shape),
        "peak_mib": peak / 2**20,
        "step_s": sorted(times)[len(times) // 2],
        "loss": loss,
        "vocab": model.config.vocab_size,
        "input_shape": list(data["input_ids"].shape),
    }


MT_BENCH = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "mt_bench_eval.json"


def whole_process(
    steps: int, max_length: int, checkpointing: bool, work: Path, heap: str = "small", loss: str = "raft"
) -> dict:
    """Peak RSS, CPU time and the last step's time of one `python -m raft train` process (default
    settings but the step count and the loss), and the estimate it printed."""
    run = work / f"run-{loss}-{'ckpt' if checkpointing else 'plain'}-{max_length}-{heap}"
    cmd = [
        sys.executable,
        "-m",
        "raft",
        "train",
        "--data",
        str(work / "ds"),
        "--output_dir",
        str(run),
        "--max_steps",
        str(steps),
        "--max_length",
        str(max_length),
        "--gradient_checkpointing",
        str(checkpointing).lower(),
        "--device",
        "cpu",
        "--save_steps",
        "100000",
        "--loss",
        loss,
    ]
    start = time.time()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "RAFT_GLIBC_HEAP": heap},
    )
    log = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(log[-3000:])
    kept = next((line for line in log.splitlines() if line.startswith("left out")), "")
    estimate = next((line for line in log.splitlines() if line.startswith("estimated peak")), "")
    records = [json.loads(line) for line in (run / "progress.jsonl").read_text().splitlines()]
    elapsed = [r["elapsed_s"] for r in records if "loss" in r and "elapsed_s" in r]
    return {
        "peak_mib": usage.ru_maxrss / 1024,
        "wall_s": time.time() - start,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "last_step_s": elapsed[-1] - elapsed[-2] if len(elapsed) > 1 else float("nan"),
        "left_out": kept,
        "estimate": estimate,
    }


def longest_rows(ds: Path, max_length: int, batch: int) -> list[int]:
    """Keep in ds/train.jsonl only its `batch` longest rows that fit max_length (as `raft train`
    tokenizes them), so every step of a run holds the longest batch; returns their lengths."""
    from transformers import AutoTokenizer

    from raft.data import read_dataset_manifest, read_jsonl
    from raft.scores import find_score_tokens
    from raft.train.trainer import tokenize

    manifest = read_dataset_manifest(ds)
    tokenizer = AutoTokenizer.from_pretrained(_default_model())
    score_tokens = find_score_tokens(tokenizer, tuple(manifest["scale"]), manifest["score_cue"])
    rows = read_jsonl(ds / "train.jsonl")
    sized = [(len(tokenize(r, tokenizer, score_tokens, True)["input_ids"]), i) for i, r in enumerate(rows)]
    chosen = sorted((s for s in sized if s[0] <= max_length), reverse=True)[:batch]
    (ds / "train.jsonl").write_text("".join(json.dumps(rows[i]) + "\n" for _, i in chosen))
    return [n for n, _ in chosen]


def whole(args: argparse.Namespace) -> None:
    import tempfile

    from raft.data import prepare_dataset
    from raft.loss import LOSSES

    work = Path(tempfile.mkdtemp(prefix="raft-mem-"))
    source, mode = args.data, "score"
    if not LOSSES[args.loss].score_only:  # CoT-RAFT and CE train on a feedback: each row's first GPT-4 feedback
        rows = json.loads(Path(args.data).read_text())
        source, mode = work / "feedback.jsonl", "feedback"
        source.write_text("".join(json.dumps({**r, "orig_feedback": r["gpt4_feedback"][0]}) + "\n" for r in rows))
    stats = prepare_dataset(source, work / "ds", mode=mode)
    lengths = longest_rows(work / "ds", args.max_length, args.batch)
    weights = sum(p.stat().st_size for p in Path(_default_model()).glob("*.safetensors")) / 2**20
    print(
        f"whole `python -m raft train` processes on the longest batch of {stats['rows_kept']} MT Bench rows "
        f"({args.batch} rows of {', '.join(map(str, lengths))} tokens): LoRA, batch {args.batch}, max length "
        f"{args.max_length}, {args.process_steps} steps, CPU; weights on disk {weights:.0f} MiB (fp32)"
    )
    print(f"{'checkpointing':<15}{'heap':<9}{'peak RSS MiB':>14}{'CPU s':>8}{'last step s':>13}")
    for checkpointing in {"both": (True, False), "on": (True,), "off": (False,)}[args.checkpointing]:
        for heap in {"both": ("small", "default"), "small": ("small",), "default": ("default",)}[args.heap]:
            r = whole_process(args.process_steps, args.max_length, checkpointing, work, heap, args.loss)
            print(
                f"{str(checkpointing):<15}{heap:<9}{r['peak_mib']:>14.0f}{r['cpu_s']:>8.0f}{r['last_step_s']:>13.1f}"
                f"\n    {r['estimate']}",
                flush=True,
            )


def _default_model() -> Path:
    from raft.models import fetch_default

    return fetch_default()


def main() -> None:
    from raft.loss import LOSSES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--whole", action="store_true", help="measure whole training processes on MT Bench rows")
    parser.add_argument("--data", default=str(MT_BENCH))
    parser.add_argument("--process-steps", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--model", default="")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", choices=["head", "full"])
    parser.add_argument("--checkpointing", choices=["both", "on", "off"], default="both")
    parser.add_argument("--heap", choices=["both", "small", "default"], default="small")
    parser.add_argument("--loss", choices=list(LOSSES), default="raft", help="with --whole")
    args = parser.parse_args()
    if args.whole:
        whole(args)
        return
    if args.child:
        print(json.dumps(child(args.child, args.model, args.batch, args.length, args.steps)))
        return
    results = {}
    for path in ("full", "head"):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            path,
            "--model",
            args.model,
            "--batch",
            str(args.batch),
            "--length",
            str(args.length),
            "--steps",
            str(args.steps),
        ]
        done = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        )
        if done.returncode != 0:
            raise SystemExit(done.stderr[-3000:])
        results[path] = json.loads(done.stdout.strip().splitlines()[-1])
    full, head = results["full"], results["head"]
    b, t = full["input_shape"]
    print(
        f"one LoRA RAFT step, score-only, gradient checkpointing, batch {b} x {t} tokens, "
        f"vocab {full['vocab']}, device {full['device']}, median of {args.steps} steps"
    )
    print(f"{'path':<22}{'logits shape':<20}{'peak MiB':>10}{'step s':>9}{'loss':>9}")
    for name, r in (("full logits", full), ("head at score", head)):
        print(f"{name:<22}{str(r['logits_shape']):<20}{r['peak_mib']:>10.1f}{r['step_s']:>9.3f}{r['loss']:>9.4f}")
    print(
        f"ratio head/full: peak memory {head['peak_mib'] / full['peak_mib']:.2f}x, "
        f"step time {head['step_s'] / full['step_s']:.2f}x (targets: <= 0.75x, <= 0.90x)"
    )
    for vocab in (full["vocab"], 128_256):
        for name, size in (("fp32", 4), ("bf16", 2)):
            print(f"logits alone at {b} x {t} x {vocab} in {name}: {b * t * vocab * size / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
