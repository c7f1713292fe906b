"""Reads a certificate with Python `cryptography` (a second, independent X.509
implementation) and prints the facts the end-to-end tests assert on, as JSON.

usage: x509_facts.py LEAF.pem ISSUER.pem
"""
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID


def main() -> None:
    leaf = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
    issuer = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
    # Raises if the signature or the issuer/subject chaining is wrong.
    leaf.verify_directly_issued_by(issuer)

    ext = leaf.extensions
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    cdp = ext.get_extension_for_class(x509.CRLDistributionPoints).value
    aia = ext.get_extension_for_class(x509.AuthorityInformationAccess).value
    ku = ext.get_extension_for_class(x509.KeyUsage)
    bc = ext.get_extension_for_class(x509.BasicConstraints).value if any(
        isinstance(e.value, x509.BasicConstraints) for e in ext) else None
    facts = {
        "signature_verified_by_issuer": True,
        "serial": leaf.serial_number,
        "serial_bits": leaf.serial_number.bit_length(),
        # JSON numbers this large lose precision in most readers: say it outright.
        "serial_positive": leaf.serial_number > 0,
        "eku": [o.dotted_string for o in eku],
        "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH in eku,
        "server_auth": ExtendedKeyUsageOID.SERVER_AUTH in eku,
        "san_uris": san.get_values_for_type(x509.UniformResourceIdentifier),
        "cdp_uris": [n.value for dp in cdp for n in (dp.full_name or [])],
        "ocsp_uris": [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP],
        "ca_issuers_uris": [d.access_location.value for d in aia
                            if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS],
        "key_usage_critical": ku.critical,
        "digital_signature": ku.value.digital_signature,
        "is_ca": bool(bc and bc.ca),
        "subject": leaf.subject.rfc4514_string(),
        "not_before": leaf.not_valid_before_utc.isoformat(),
        "not_after": leaf.not_valid_after_utc.isoformat(),
        "public_key": "ec" if isinstance(leaf.public_key(), ec.EllipticCurvePublicKey) else "rsa" if isinstance(leaf.public_key(), rsa.RSAPublicKey) else "other",
    }
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
