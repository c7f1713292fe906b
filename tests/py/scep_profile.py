"""Reads an Apple configuration profile with Python's own plistlib and
prints, as JSON, its type, each payload's type, and the SCEP payload's URL,
challenge, key type and size, and subject, as a device would read them.

Usage: scep_profile.py PROFILE
"""
import json
import plistlib
import sys

with open(sys.argv[1], "rb") as f:
    top = plistlib.load(f)
scep = next((p for p in top["PayloadContent"] if p["PayloadType"] == "com.apple.security.scep"), {})
content = scep.get("PayloadContent", {})
print(json.dumps({
    "type": top["PayloadType"],
    "payloads": [p["PayloadType"] for p in top["PayloadContent"]],
    "url": content.get("URL"),
    "challenge": content.get("Challenge"),
    "key_type": content.get("KeyType"),
    "key_size": content.get("Keysize"),
    "subject": content.get("Subject"),
    "root_sha256": next((__import__("hashlib").sha256(p["PayloadContent"]).hexdigest()
                         for p in top["PayloadContent"] if p["PayloadType"] == "com.apple.security.root"), None),
}))
