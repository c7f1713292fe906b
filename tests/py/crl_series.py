"""Reads many CRLs at once with Python `cryptography` (for the race tests,
which fetch hundreds of them while the service runs).

usage: crl_series.py DIR ISSUER.pem
Prints one JSON object: file name -> the facts of ocsp_crl_facts.crl_facts
(signature_valid, crl_number, revoked {serial hex: reason name}, ...), or
{"error": "..."} for a file that is not a CRL.
"""
import json
import os
import sys

from cryptography import x509

from ocsp_crl_facts import crl_facts


def main():
    folder, issuer_path = sys.argv[1], sys.argv[2]
    issuer = x509.load_pem_x509_certificate(open(issuer_path, "rb").read())
    out = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".der"):
            continue
        data = open(os.path.join(folder, name), "rb").read()
        try:
            out[name] = crl_facts(data, issuer)
        except Exception as e:  # noqa: BLE001 (reported, and the test fails on it)
            out[name] = {"error": f"{type(e).__name__}: {e}", "size": len(data)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
