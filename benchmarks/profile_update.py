"""Where one update's time goes: torch.profiler's self CPU time of our CQL / IQL update, grouped
into matrix products, elementwise and reductions, the optimizer, and the rest.

`bench_update.py` says how far an update is from the machine's matmul rate; this says why. On
a CPU, the products run near the matmul rate (bench_update's "chunk" rows), so an update's
share of the matmul is bounded by the share of its time spent in products. The bound for
several seeds in one process (`--seeds_per_process`) follows too: stacking removes per-op
overhead, not the work that grows with the rows, so N stacked seeds gain at most
N · t(256 rows) / t(N · 256 rows): `--stacking N` measures it.

    python benchmarks/profile_update.py --threads 2 --algos CQL IQL --json profile.json
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_update import BATCH, Product, make_ours, synthetic_batches
from common import Timing, load_average, machine_info, time_block, write_json

# aten ops by group (names without "aten::" and a trailing "_" of in-place variants); anything
# else is elementwise work or a reduction, and non-aten events are autograd and Python
PRODUCT_OPS = {"mm", "bmm", "addmm", "baddbmm", "addbmm", "addmv", "mv", "matmul", "linear"}
# fmt: off
MEMORY_OPS = {
    "view", "reshape", "expand", "t", "transpose", "permute", "unsqueeze", "squeeze", "select",
    "slice", "as_strided", "empty", "empty_like", "empty_strided", "detach", "alias",
    "_unsafe_view", "resize", "contiguous", "clone", "copy", "cat", "stack", "zeros",
    "zeros_like", "ones_like", "fill", "zero",
}
# fmt: on


def group_of(op: str) -> str:
    if op.startswith("Optimizer") or op.startswith("aten::_foreach") or "adam" in op:
        return "optimizer"
    if not op.startswith("aten::"):
        return "other (autograd, python)"
    base = op.removeprefix("aten::").rstrip("_")
    if base in PRODUCT_OPS:
        return "matrix products"
    if base in MEMORY_OPS:
        return "copies, views, allocation"
    return "elementwise and reductions"


def product_dims(op: str, shapes: list[list[int]]) -> tuple[int, int, int, int] | None:
    """(batch, rows, inner, columns) of one call of a product op from its recorded input
    shapes, or None if it is not a product."""
    base = op.removeprefix("aten::").rstrip("_")
    operands = {
        "mm": (0, 1),
        "bmm": (0, 1),
        "addmm": (1, 2),
        "baddbmm": (1, 2),
        "addmv": (1, 2),
        "mv": (0, 1),
    }.get(base)
    if operands is None:
        return None
    a, b = (shapes[i] for i in operands)
    batch = a[0] if len(a) == 3 else 1
    return batch, a[-2], a[-1], b[-1] if len(b) >= 2 else 1


def standalone_rate(dims: tuple[int, int, int, int], blocks: int = 3) -> float:
    """GFLOP/s of the same product on fresh contiguous operands, alone in a loop."""
    product = Product(*dims, "float32", seconds=0.1)
    for _ in range(blocks):
        time_block(product.work, product.timing)
    return product.rate()


def profile(name: str, updates: int) -> dict[str, Any]:
    import time

    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    agent, gflop = make_ours(name)
    batches = synthetic_batches(16)
    for i in range(20):  # warm-up: first calls allocate and pick kernels
        agent.update(batches[i % len(batches)])
    start = time.perf_counter()
    for i in range(updates):
        agent.update(batches[i % len(batches)])
    unprofiled = (time.perf_counter() - start) / updates
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for i in range(updates):
            agent.update(batches[i % len(batches)])
    by_group: dict[str, float] = defaultdict(float)
    by_op: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        by_group[group_of(event.key)] += event.self_cpu_time_total
        by_op[event.key] += event.self_cpu_time_total
    total = sum(by_group.values())
    # each product shape's own rate: FLOP of its calls over their self time (under profiling)
    shapes = []
    for event in prof.key_averages(group_by_input_shape=True):
        dims = product_dims(event.key, event.input_shapes)
        if dims and event.self_cpu_time_total > 0:
            flop = 2 * dims[0] * dims[1] * dims[2] * dims[3]
            shapes.append(
                {
                    "op": event.key,
                    "shapes": str(event.input_shapes),
                    "dims": dims,
                    "share": round(event.self_cpu_time_total / total, 3),
                    "gflop_per_s": round(flop * event.count / event.self_cpu_time_total / 1e3, 1),
                }
            )
    shapes = sorted(shapes, key=lambda row: -row["share"])[:8]
    for row in shapes:
        row["standalone_gflop_per_s"] = round(standalone_rate(row["dims"]), 1)
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:12]
    product_seconds = unprofiled * by_group["matrix products"] / total
    return {
        "name": name,
        "product_gflop_per_s": round(gflop / product_seconds, 1),
        "ms_per_update_unprofiled": round(1e3 * unprofiled, 2),
        "gflop_per_update": round(gflop, 3),
        "shares": {
            g: round(t / total, 3) for g, t in sorted(by_group.items(), key=lambda kv: -kv[1])
        },
        "top_ops": {op: round(t / total, 3) for op, t in top},
        "product_shapes": shapes,
    }


def stacking_ceiling(name: str, seeds: int, rounds: int = 7, updates: int = 10) -> dict[str, Any]:
    """Time one update on a batch of 256 rows and on `seeds` × 256 rows, interleaved.

    N seeds stacked in one process do at least the work of one network on N batches: the same
    products and elementwise passes on N times the rows, with the per-op overhead paid once.
    So N · t(256) / t(N · 256) bounds what `--seeds_per_process N` can gain over separate runs.
    """
    agent, _ = make_ours(name)
    sizes = (BATCH, seeds * BATCH)
    batches = {rows: synthetic_batches(4, rows) for rows in sizes}
    timings = {rows: Timing(updates) for rows in sizes}

    def block(rows: int) -> Callable[[], None]:
        def work() -> None:
            for i in range(updates):
                agent.update(batches[rows][i % 4])

        return work

    for rows in sizes:  # warm-up: first calls allocate and pick kernels
        block(rows)()
    for _ in range(rounds):
        for rows in sizes:
            time_block(block(rows), timings[rows])
    single, stacked = (1 / timings[rows].rate() for rows in sizes)
    return {
        "name": name,
        "seeds": seeds,
        "ms_per_update_256": round(1e3 * single, 2),
        f"ms_per_update_{seeds * BATCH}": round(1e3 * stacked, 2),
        "ceiling": round(seeds * single / stacked, 3),
    }


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--algos", nargs="+", default=["CQL", "IQL"])
    parser.add_argument("--updates", type=int, default=50)
    parser.add_argument(
        "--stacking", type=int, default=3, help="seeds for the stacking bound (0: skip)"
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "machine": machine_info(),
        "threads": args.threads,
        "load_before": load_average(),
        "rows": [],
    }
    result["matmul_gflop_per_s"] = round(standalone_rate((1, 2048, 2048, 2048), blocks=5), 1)
    print(f"matmul 2048x2048: {result['matmul_gflop_per_s']} GFLOP/s")
    for name in args.algos:
        row = profile(name, args.updates)
        result["rows"].append(row)
        products = row["shares"].get("matrix products", 0.0)
        print(
            f"{name}: {row['ms_per_update_unprofiled']} ms/update "
            f"({row['gflop_per_update']} GFLOP of products); products {products:.0%} of its "
            f"time, so at most {1 / max(products, 1e-9):.2f}x from removing everything else; "
            f"the products themselves at {row['product_gflop_per_s']} GFLOP/s"
        )
        for group, share in row["shares"].items():
            print(f"  {group:<30}{share:>6.0%}")
        print(
            "  top ops: " + ", ".join(f"{op} {share:.0%}" for op, share in row["top_ops"].items())
        )
        for product in row["product_shapes"]:
            print(
                f"  {product['share']:>5.0%} {product['gflop_per_s']:>7.1f} GFLOP/s "
                f"(alone {product['standalone_gflop_per_s']:>6.1f})  "
                f"{product['op']} {product['shapes']}"
            )
    if args.stacking:
        result["stacking"] = [stacking_ceiling(name, args.stacking) for name in args.algos]
        for row in result["stacking"]:
            print(
                f"{row['name']}: {row['ms_per_update_256']} ms on 256 rows, "
                f"{row[f'ms_per_update_{args.stacking * BATCH}']} ms on {args.stacking * BATCH}: "
                f"{args.stacking} stacked seeds gain at most {row['ceiling']:.2f}x"
            )
    result["load_after"] = load_average()
    if args.json:
        write_json(Path(args.json), result)


if __name__ == "__main__":
    main()
