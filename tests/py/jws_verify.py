"""Verifies a signed incident record with Python `cryptography` alone, the
way an outside party would: the JWS (RFC 7515 compact, ES256) signature over
header.payload with the key of x5c[0], x5c[0] issued by x5c[1], x5c[1] by
the trusted root, and x5c[0] a delegated OCSP signer. Prints JSON.

usage: jws_verify.py RECORD.json ROOT.pem
"""
import base64
import json
import sys

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID


def b64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def main() -> None:
    text = open(sys.argv[1]).read().strip()
    jws = json.loads(text)["signed"] if text.startswith("{") else text
    root = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
    header_b64, payload_b64, sig_b64 = jws.split(".")
    header = json.loads(b64url(header_b64))
    out = {"alg": header.get("alg"), "valid": False}
    chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in header["x5c"]]
    signer, issuer = chain[0], chain[1]
    try:
        signer.verify_directly_issued_by(issuer)
        issuer.verify_directly_issued_by(root)
        out["chain_valid"] = True
    except (InvalidSignature, ValueError, TypeError):
        out["chain_valid"] = False
    eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    out["ocsp_signer"] = ExtendedKeyUsageOID.OCSP_SIGNING in eku
    raw = b64url(sig_b64)
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    try:
        signer.public_key().verify(
            encode_dss_signature(r, s), f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256())
        )
        out["signature_valid"] = True
    except InvalidSignature:
        out["signature_valid"] = False
    out["valid"] = out["chain_valid"] and out["ocsp_signer"] and out["signature_valid"] and header["alg"] == "ES256"
    out["payload"] = json.loads(b64url(payload_b64))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
