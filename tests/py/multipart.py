"""Splits a multipart/mixed HTTP answer with Python's own MIME parser (the
`email` package), as an EST client reads `serverkeygen`'s answer.

usage: multipart.py CONTENT_TYPE BODY_FILE OUT_PREFIX
Writes each part's decoded payload to OUT_PREFIX-N.der and prints one JSON
list of the parts' content types.
"""
import json
import sys
from email import message_from_bytes
from email.policy import HTTP


def main():
    content_type, body_file, prefix = sys.argv[1:4]
    with open(body_file, "rb") as f:
        raw = f.read()
    msg = message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw, policy=HTTP)
    if not msg.is_multipart():
        raise SystemExit("not multipart: " + content_type)
    kinds = []
    for n, part in enumerate(msg.iter_parts()):
        with open(f"{prefix}-{n}.der", "wb") as f:
            f.write(part.get_payload(decode=True))
        kinds.append(part.get_content_type())
    print(json.dumps(kinds))


if __name__ == "__main__":
    main()
