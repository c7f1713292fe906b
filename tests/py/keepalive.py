"""Holds one TLS connection (client certificate, HTTP/1.1 keep-alive) open
to the mTLS listener and reports when the server closes it.

usage: keepalive.py HOST PORT CLIENT_PEM CA_PEM
Prints "ready <status>" after the first response on the connection, then, once
the server closes it (or 10 s pass), one JSON line:
{"closed": bool, "closed_at": unix seconds (float), "second_request": status or null}
"""
import json
import socket
import ssl
import sys
import time


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return status, body


def main():
    host, port, pem, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(pem)
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection((host, port))
    sock = ctx.wrap_socket(raw, server_hostname=host)
    request = f"GET /api/v1/whoami HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n".encode()
    sock.sendall(request)
    status, _ = read_response(sock)
    print(f"ready {status}", flush=True)
    sock.settimeout(10)
    closed, closed_at = False, None
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                closed, closed_at = True, time.time()
                break
    except (ConnectionResetError, ssl.SSLError, OSError):
        closed, closed_at = True, time.time()
    except socket.timeout:
        pass
    second = None
    if not closed:
        # Still open after 10 s: show what a request on it would get.
        sock.sendall(request)
        second, _ = read_response(sock)
    print(json.dumps({"closed": closed, "closed_at": closed_at, "second_request": second}), flush=True)


if __name__ == "__main__":
    main()
