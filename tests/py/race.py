"""Sends several HTTP requests at the same moment, for the race tests.

usage: race.py SPEC.json
SPEC: {"ca": ROOT.pem, "requests": [REQUEST, ...]}
REQUEST: {"api": "127.0.0.1:PORT", "cert": PEM (certificate + key), "method": "POST",
          "path": "/api/v1/...", "body": JSON text or null, "delay_ms": 0.0,
          "after": [STEP, ...]}    (optional; run only if the request answered 200)
STEP: {"kind": "get", "public": "127.0.0.1:PORT", "path": "/crl/issuing.crl", "out": FILE}
    | {"kind": "post", "public": ..., "path": "/ocsp", "content_type": "...", "body_file": FILE, "out": FILE}
    | {"kind": "whoami", "api": ..., "cert": PEM}

Every connection (TLS with the client certificate, and plain HTTP to the
public listener for the steps after) is opened first (one that cannot be
opened is reported as that request's error); then one thread per
request waits at a barrier, sleeps its delay, sends, reads the answer, and
runs its steps at once on the connections already open — so what a step
sees is what the service serves right after the answer. A "whoami" step opens
a new TLS connection (a new handshake) with its certificate.

Prints a JSON list, one object per request: status, body (JSON when it is),
and the steps' results (status, bytes written, or the error; for whoami
"accepted" true/false and why).
"""
import http.client
import json
import ssl
import sys
import threading
import time


def tls_context(ca, cert):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def split(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def main():
    spec = json.load(open(sys.argv[1], encoding="utf-8"))
    ca = spec["ca"]
    reqs = spec["requests"]
    conns, publics, failed = [], [], []
    for r in reqs:
        p = {}
        try:
            host, port = split(r["api"])
            c = http.client.HTTPSConnection(host, port, context=tls_context(ca, r["cert"]), timeout=20)
            c.connect()
            for step in r.get("after", []):
                if "public" in step and step["public"] not in p:
                    h, pt = split(step["public"])
                    pc = http.client.HTTPConnection(h, pt, timeout=20)
                    pc.connect()
                    p[step["public"]] = pc
            failed.append(None)
        except Exception as e:  # noqa: BLE001 (an instance killed on purpose, a refused handshake)
            c = None
            failed.append(f"connecting: {type(e).__name__}: {e}")
        conns.append(c)
        publics.append(p)
    barrier = threading.Barrier(len(reqs))
    results = [None] * len(reqs)

    def work(i):
        r = reqs[i]
        out = {"after": []}
        try:
            barrier.wait()
            if failed[i]:
                raise ConnectionError(failed[i])
            if r.get("delay_ms"):
                time.sleep(r["delay_ms"] / 1000.0)
            # Every state change on the mTLS API is JSON, even without a body.
            headers = {"content-type": "application/json"}
            out["sent"] = time.time()
            body = r["body"].encode("utf-8") if r.get("body") is not None else None
            conns[i].request(r["method"], r["path"], body=body, headers=headers)
            resp = conns[i].getresponse()
            raw = resp.read()
            out["answered"] = time.time()
            out["status"] = resp.status
            try:
                out["body"] = json.loads(raw)
            except ValueError:
                out["body"] = raw.decode("utf-8", "replace")
            if resp.status == 200:
                for step in r.get("after", []):
                    out["after"].append(run_step(step, publics[i], ca))
        except Exception as e:  # noqa: BLE001 (reported to the test)
            out["status"] = 0
            out["error"] = f"{type(e).__name__}: {e}"
        results[i] = out

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(reqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(results, ensure_ascii=False))


def run_step(step, publics, ca):
    try:
        if step["kind"] == "whoami":
            host, port = split(step["api"])
            c = http.client.HTTPSConnection(host, port, context=tls_context(ca, step["cert"]), timeout=20)
            try:
                c.request("GET", "/api/v1/whoami")
                resp = c.getresponse()
                resp.read()
                return {"kind": "whoami", "status": resp.status, "accepted": resp.status == 200}
            except (ssl.SSLError, ConnectionError, OSError) as e:
                return {"kind": "whoami", "status": 0, "accepted": False, "why": f"{type(e).__name__}: {e}"}
            finally:
                c.close()
        conn = publics[step["public"]]
        if step["kind"] == "get":
            conn.request("GET", step["path"])
        else:
            body = open(step["body_file"], "rb").read()
            conn.request("POST", step["path"], body=body, headers={"content-type": step["content_type"]})
        resp = conn.getresponse()
        data = resp.read()
        with open(step["out"], "wb") as f:
            f.write(data)
        return {"kind": step["kind"], "status": resp.status, "bytes": len(data), "at": time.time()}
    except Exception as e:  # noqa: BLE001
        return {"kind": step["kind"], "status": 0, "error": f"{type(e).__name__}: {e}"}


if __name__ == "__main__":
    main()
