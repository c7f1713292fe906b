"""A webhook receiver and an SMTP sink for the notification tests.

usage: sinks.py LOG.jsonl WEBHOOK_SECRET
Prints "ready <http_port> <smtp_port>", then appends one JSON line per
webhook call or e-mail to LOG.jsonl until killed. The first webhook call is
answered 500 (to exercise retries), later ones 200. Webhook signatures are
checked against WEBHOOK_SECRET and the result recorded.
"""
import asyncio
import email
import email.header
import hashlib
import hmac
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


def record_mail(mailfrom, rcpttos, data):
    msg = email.message_from_bytes(data)
    subject = str(email.header.make_header(email.header.decode_header(msg["subject"])))
    payload = msg.get_payload(decode=True)
    record({"kind": "email", "from": mailfrom, "to": rcpttos, "subject": subject,
            "body": payload.decode(msg.get_content_charset() or "utf-8") if payload else ""})


def address(arg):
    """The address in `FROM:<a@b> PARAMS` or `TO:<a@b>`."""
    arg = arg.split(":", 1)[1].strip() if ":" in arg else arg
    return arg.split(">", 1)[0].lstrip("<").strip()


async def smtp_session(reader, writer):
    """Just enough SMTP (RFC 5321) for a client that delivers plain mail:
    EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT. Written
    on asyncio because the stdlib's smtpd is gone since Python 3.12."""
    def reply(line):
        writer.write(line.encode() + b"\r\n")

    reply("220 sink ESMTP")
    mailfrom, rcpttos = None, []
    while True:
        line = await reader.readline()
        if not line:
            break
        verb, _, arg = line.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
        verb = verb.upper()
        if verb == "EHLO":
            reply("250-sink")
            reply("250 8BITMIME")
        elif verb == "HELO":
            reply("250 sink")
        elif verb == "MAIL":
            mailfrom, rcpttos = address(arg), []
            reply("250 OK")
        elif verb == "RCPT":
            rcpttos.append(address(arg))
            reply("250 OK")
        elif verb == "DATA":
            reply("354 End data with <CR><LF>.<CR><LF>")
            await writer.drain()
            lines = []
            while True:
                l = await reader.readline()
                if not l or l in (b".\r\n", b".\n"):
                    break
                lines.append(l[1:] if l.startswith(b"..") else l)
            record_mail(mailfrom, rcpttos, b"".join(lines))
            mailfrom, rcpttos = None, []
            reply("250 OK: queued")
        elif verb == "RSET":
            mailfrom, rcpttos = None, []
            reply("250 OK")
        elif verb == "NOOP":
            reply("250 OK")
        elif verb == "QUIT":
            reply("221 Bye")
            await writer.drain()
            break
        else:
            reply("502 Command not implemented")
        await writer.drain()
    writer.close()


async def serve_smtp(ready):
    server = await asyncio.start_server(smtp_session, "127.0.0.1", 0)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def main():
    http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    asyncio.run(serve_smtp(lambda port: print(f"ready {http.server_address[1]} {port}", flush=True)))


if __name__ == "__main__":
    main()
