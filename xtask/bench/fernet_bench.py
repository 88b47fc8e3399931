"""Throughput of Python's cryptography.fernet for the same operations as the Rust benchmark.

Prints one JSON object per line: {"op": ..., "ops_per_sec": ...}.
"""
import json
import sys
import time

from cryptography.fernet import Fernet, MultiFernet

K1 = b"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
K2 = b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
SECRET = b"sk-proj-0123456789abcdefghijklmnopqrstuv"


def report(op, n, started):
    seconds = time.perf_counter() - started
    print(json.dumps({"op": op, "n": n, "ops_per_sec": round(n / seconds)}))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    assert len(SECRET) == 40
    one = Fernet(K1)

    started = time.perf_counter()
    for _ in range(n):
        one.encrypt(SECRET)
    report("encrypt", n, started)

    token = one.encrypt(SECRET)
    started = time.perf_counter()
    for _ in range(n):
        one.decrypt(token)
    report("decrypt", n, started)

    rotated = MultiFernet([Fernet(K2), Fernet(K1)])
    started = time.perf_counter()
    for _ in range(n):
        rotated.rotate(token)
    report("rotate (reseal)", n, started)


if __name__ == "__main__":
    main()
