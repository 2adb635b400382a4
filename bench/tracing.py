"""What X-Ray patching costs a call: a botocore call (answered by botocore's Stubber, so only the
client's own work is measured) and an httpx request to a loopback server, each inside a sampled
segment, before and after ``aws_xray_sdk`` patches the library. Segments go over UDP to
127.0.0.1:2000 as they would to Lambda's daemon (nothing listens here; UDP does not care).

The baseline is the same call unpatched in the same process, measured first (patching cannot be
undone). Prints one JSON object: microseconds per call, best of ``repeat`` batches.
Usage: ``python -m bench.tracing [calls]``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

os.environ.setdefault("AWS_XRAY_CONTEXT_MISSING", "IGNORE_ERROR")
os.environ.setdefault("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1:2000")

import boto3
import httpx
from botocore.stub import Stubber


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: Any) -> None:
        pass


def _per_call(call: Callable[[], Any], calls: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - began) / calls)
    return best * 1e6


def main(calls: int = 500, repeat: int = 5) -> dict[str, float]:
    from aws_xray_sdk.core import patch, xray_recorder

    xray_recorder.configure(sampling=False, context_missing="IGNORE_ERROR")
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(s3)
    stubber.activate()

    def head() -> None:
        stubber.add_response("head_object", {"ContentLength": 1}, {"Bucket": "b", "Key": "k"})
        s3.head_object(Bucket="b", Key="k")

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    def measure() -> tuple[float, float]:
        # A new client each time: the httpx patch instruments clients made after it only.
        with httpx.Client() as http:
            xray_recorder.begin_segment("bench", sampling=1)
            try:
                return _per_call(head, calls, repeat), _per_call(
                    lambda: http.get(url).raise_for_status(), calls, repeat
                )
            finally:
                xray_recorder.end_segment()

    boto_plain, http_plain = measure()
    patch(["botocore", "httpx"])
    boto_traced, http_traced = measure()
    server.shutdown()
    return {
        "botocore_us": boto_traced,
        "botocore_baseline_us": boto_plain,
        "botocore_ratio": boto_traced / boto_plain,
        "httpx_us": http_traced,
        "httpx_baseline_us": http_plain,
        "httpx_ratio": http_traced / http_plain,
    }


if __name__ == "__main__":
    print(json.dumps(main(*(int(a) for a in sys.argv[1:2]))))
