#!/usr/bin/env python3
"""Probes a gateway binary with made-up HTTP methods, as an attacker would.

Starts the gateway on 127.0.0.1:PORT (order-service unreachable: the
requests never get that far), sends 500 requests with distinct 1 KB
made-up methods to /nope/<i>, and prints the answers' statuses, the size and
series count of /metrics and the process's RSS, before and after. With
bounded metric labels the series count stays put; with the rate limit on,
most requests get 429.

    scripts/metrics-probe.py target/release/gateway 19100 0     # limit off
    scripts/metrics-probe.py target/release/gateway 19100 100   # 100/s
"""
import os, random, socket, string, subprocess, sys, time, urllib.request, collections

binary, port, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
env = dict(os.environ, BIND_ADDR=f"127.0.0.1:{port}", ORDER_SERVICE_URL="http://127.0.0.1:9",
           RATE_LIMIT_PER_SECOND=rate, RUST_LOG="warn")
proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def get(path):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read()
for _ in range(100):
    try:
        get("/health"); break
    except Exception:
        time.sleep(0.1)
def rss_kb():
    for line in open(f"/proc/{proc.pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
def metrics():
    page = get("/metrics").decode()
    series = sum(1 for l in page.splitlines() if l and not l.startswith("#"))
    return len(page), series
get("/metrics")
before = metrics(); rss_before = rss_kb()
statuses = collections.Counter()
for i in range(500):
    method = "X" + "".join(random.choices(string.ascii_uppercase, k=1023))
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"{method} /nope/{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answer = b""
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        answer += chunk
    s.close()
    statuses[answer.split(b" ")[1].decode() if answer else "none"] += 1
after = metrics(); rss_after = rss_kb()
print(f"{binary}: rate limit {rate}/s: statuses {dict(statuses)}")
print(f"  /metrics before: {before[0]} bytes, {before[1]} series; RSS {rss_before/1024:.1f} MB")
print(f"  /metrics after:  {after[0]} bytes, {after[1]} series; RSS {rss_after/1024:.1f} MB")
proc.terminate(); proc.wait()
