"""A webhook receiver and an SMTP sink for the notification tests.

usage: sinks.py LOG.jsonl WEBHOOK_SECRET
Prints "ready <http_port> <smtp_port>", then appends one JSON line per
webhook call or e-mail to LOG.jsonl until killed. The first webhook call is
answered 500 (to exercise retries), later ones 200. Webhook signatures are
checked against WEBHOOK_SECRET and the result recorded.
"""
import asyncore
import email
import email.header
import hashlib
import hmac
import json
import sys
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

warnings.filterwarnings("ignore", category=DeprecationWarning)
import smtpd  # noqa: E402  (stdlib up to Python 3.11)

LOG, SECRET = sys.argv[1], sys.argv[2]
lock = threading.Lock()
calls = {"webhook": 0}


def record(entry):
    with lock:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        ts = self.headers.get("x-connect-pki-timestamp", "")
        want = "sha256=" + hmac.new(SECRET.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
        with lock:
            calls["webhook"] += 1
            n = calls["webhook"]
        status = 500 if n == 1 else 200
        record({"kind": "webhook", "n": n, "answered": status, "event": self.headers.get("x-connect-pki-event"),
                "signature_valid": hmac.compare_digest(want, self.headers.get("x-connect-pki-signature", "")),
                "body": json.loads(body)})
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Sink(smtpd.SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        msg = email.message_from_bytes(data if isinstance(data, bytes) else data.encode())
        subject = str(email.header.make_header(email.header.decode_header(msg["subject"])))
        payload = msg.get_payload(decode=True)
        record({"kind": "email", "from": mailfrom, "to": rcpttos, "subject": subject,
                "body": payload.decode(msg.get_content_charset() or "utf-8") if payload else ""})


def main():
    http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    sink = Sink(("127.0.0.1", 0), None, decode_data=False)
    print(f"ready {http.server_address[1]} {sink.socket.getsockname()[1]}", flush=True)
    asyncore.loop(timeout=0.2)


if __name__ == "__main__":
    main()
