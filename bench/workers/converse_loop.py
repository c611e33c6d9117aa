"""A bare loop of boto3 Converse calls: the CPU floor any Python client pays per call.

``python -m bench.workers.converse_loop --endpoint URL --calls N`` makes the
same kind of request a generator makes for the benchmark's one-step template
(the same model, a prompt rendered from the same seeds, the same inference
settings and request metadata keys, values of the same length), with the
generator's own client factory, one after another on one thread. It prints
the process CPU time per call.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from palette.common import seeds
from palette.common.templates import render, step_context
from palette.generator.bedrock import bedrock_client
from palette.generator.settings import GeneratorSettings

WARMUP_CALLS = 50
HOLDER = "0" * 32
"""Stands for the claim holder token a generator puts in each call's metadata."""


def requests(template: dict[str, Any], seed_path: str, count: int) -> list[dict[str, Any]]:
    """``count`` Converse requests of the template's first step, one seed each in turn."""
    step = template["steps"][0]
    with open(seed_path, "rb") as stream:
        records = list(seeds.read_records(stream, seeds.format_from_name(seed_path)))
    built = []
    for index in range(count):
        context = step_context(records[index % len(records)], {})
        request: dict[str, Any] = {
            "modelId": step["model"],
            "messages": [{"role": "user", "content": [{"text": render(step["prompt"], context)}]}],
            "inferenceConfig": {
                "maxTokens": step["max_tokens"],
                "temperature": step.get("temperature", 1.0),
            },
            "requestMetadata": {
                "job_id": "bench-bare-loop",
                "partition": str(index // 100),
                "attempt": "1",
                "lease_id": "bench-bare-loop-lease",
                "record": str(index),
                "step": step["id"],
                "call_attempt": "1",
                "call_id": f"{HOLDER}-{index}",
                "holder": HOLDER,
            },
        }
        if step.get("system"):
            request["system"] = [{"text": render(step["system"], context)}]
        built.append(request)
    return built


def main(argv: list[str] | None = None) -> int:
    """Run the loop; print ``{"calls", "cpu_s", "wall_s"}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the emulator's URL")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--template", required=True, help="the template as JSON")
    parser.add_argument("--seeds", required=True, help="the seed file")
    args = parser.parse_args(argv)
    client = bedrock_client(GeneratorSettings(bedrock_endpoint_url=args.endpoint, concurrency=1))
    batch = requests(json.loads(args.template), args.seeds, args.calls)
    for request in batch[:WARMUP_CALLS]:
        client.converse(**request)
    cpu, wall = time.process_time(), time.perf_counter()
    for request in batch:
        client.converse(**request)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    json.dump({"calls": len(batch), "cpu_s": cpu, "wall_s": wall}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
