"""Generation throughput of the policy on this machine: fp32 (reference) vs bf16, same prompts.

Decoding a 0.5B model on CPU is bound by streaming the weights each step (DESIGN §4), so halving
their width should nearly halve the time. Prints tokens/s per dtype and the bf16/fp32 speed ratio.

    python bench/generation.py [--model embedded] [--batch 8] [--tokens 48] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from traitdose.models import load_causal_lm, resolve_model
from traitdose.scenarios import load_bank


def tokens_per_second(model, tokenizer, prompts: list[str], max_new_tokens: int, repeats: int) -> float:
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False)
        best = min(best, time.perf_counter() - start)
    generated = (out.shape[1] - enc.input_ids.shape[1]) * out.shape[0]
    return generated / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    path = resolve_model(args.model)
    scenarios = load_bank().heldout[: args.batch]
    results = {}
    for dtype in ("float32", "bfloat16"):
        model, tokenizer = load_causal_lm(path, dtype=dtype)
        tokenizer.padding_side = "left"
        prompts = [
            tokenizer.apply_chat_template([m.model_dump() for m in s.messages], tokenize=False, add_generation_prompt=True)
            for s in scenarios
        ]
        results[dtype] = tokens_per_second(model, tokenizer, prompts, args.tokens, args.repeats)
        print(f"{dtype:>9}: {results[dtype]:7.1f} generated tokens/s (batch {args.batch}, {args.tokens} new tokens)")
        del model
    print(f"bf16 / fp32 speed ratio: {results['bfloat16'] / results['float32']:.2f}x  (threads: {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
