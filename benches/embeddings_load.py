"""Closed-loop load on examples/embeddings_server: C clients, each sending one request after the
other for S seconds; prints embeddings per second and p50/p95 request latency per concurrency.

    python3 benches/embeddings_load.py http://127.0.0.1:8001 10 1 4 16

Each request embeds one sentence (about 12 tokens). Standard library only; the client threads
share the machine's cores with the server, which is stated beside the figures.
"""

import json
import statistics
import sys
import threading
import time
import urllib.request

SENTENCES = [
    "A man is playing a guitar on the stage tonight",
    "The new movie is awesome and everyone liked it",
    "The cat sits outside waiting for the rain to stop",
    "A woman watches TV in the living room after work",
]


def run(url, seconds, clients):
    latencies, lock = [], threading.Lock()
    stop = time.monotonic() + seconds

    def client(i):
        n = 0
        while time.monotonic() < stop:
            body = json.dumps({"model": "all-MiniLM-L6-v2",
                               "input": SENTENCES[(i + n) % len(SENTENCES)]}).encode()
            started = time.monotonic()
            req = urllib.request.Request(url + "/v1/embeddings", body,
                                         {"Content-Type": "application/json"})
            urllib.request.urlopen(req).read()
            with lock:
                latencies.append(time.monotonic() - started)
            n += 1

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    q = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, q[49] * 1e3, q[94] * 1e3, len(latencies)


def main():
    url, seconds = sys.argv[1], float(sys.argv[2])
    print("| clients | embeddings/s | p50 ms | p95 ms | requests |")
    print("|---:|---:|---:|---:|---:|")
    for c in [int(a) for a in sys.argv[3:]] or [1, 4, 16]:
        rate, p50, p95, n = run(url, seconds, c)
        print(f"| {c} | {rate:.1f} | {p50:.1f} | {p95:.1f} | {n} |")


if __name__ == "__main__":
    main()
