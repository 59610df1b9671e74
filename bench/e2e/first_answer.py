#!/usr/bin/env python3
"""Time from the end of the TLS handshake to the first HTTP answer, for a
client that keeps Nagle's algorithm on (Python's default, like Java's and
most socket libraries'): GET / on a running hub, N times.

    bench/e2e/first_answer.py HOST:PORT [N]

Prints min / median / max in ms. A hub that sends nothing after TLS 1.3's
handshake and lets the kernel delay its ACK of the client's Finished
holds the client's request for the delayed-ACK time (~40 ms).
"""
import socket
import ssl
import sys
import time


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # timing only: the certificate is not the point
    times = []
    for _ in range(n):
        with socket.create_connection((host, int(port))) as raw:
            with ctx.wrap_socket(raw) as tls:
                t0 = time.perf_counter()
                tls.sendall(b"GET / HTTP/1.1\r\nHost: hub\r\n\r\n")
                if not tls.recv(64).startswith(b"HTTP/1.1 200"):
                    sys.exit("not a 200 from the hub")
                times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    print(f"first answer after the handshake, {n} connections: "
          f"min {times[0]:.2f} ms, median {times[n // 2]:.2f} ms, max {times[-1]:.2f} ms")


if __name__ == "__main__":
    main()
