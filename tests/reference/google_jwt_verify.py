#!/usr/bin/python3
"""Verifies service-account JWT assertions with google-auth, the reference the unit tests use.

    python3 google_jwt_verify.py SERVICE_ACCOUNT.json SCOPE ASSERTIONS.txt > VERDICTS.jsonl

The public key is derived from the key file's private key by `cryptography` (not by the code
under test). Each line of ASSERTIONS.txt is one assertion; each output line says whether
google.auth.jwt.decode accepted it (signature, audience = token_uri, iat and exp near now) and
which of the service-account rules it breaks: {"ok": bool, "problems": [...], "header": {...},
"claims": {...}}. Exit status 3: google-auth or cryptography is not there.
"""
import json
import sys

try:
    from cryptography.hazmat.primitives import serialization
    from google.auth import jwt
except ImportError as e:
    print(f"google-auth or cryptography is not importable by {sys.executable}: {e} "
          "(Debian: apt-get install python3-google-auth python3-cryptography)", file=sys.stderr)
    sys.exit(3)


def verdict(assertion, account, public_pem, scope):
    problems = []
    try:
        claims = jwt.decode(assertion, certs=public_pem, verify=True, audience=account["token_uri"])
    except Exception as e:  # google-auth raises ValueError (and subclasses) for every refusal
        return {"ok": False, "problems": [f"google.auth.jwt.decode: {e}"], "header": {}, "claims": {}}
    header = jwt.decode_header(assertion)
    if header.get("alg") != "RS256":
        problems.append(f"alg {header.get('alg')!r}, not 'RS256'")
    if header.get("typ") != "JWT":
        problems.append(f"typ {header.get('typ')!r}, not 'JWT'")
    if header.get("kid") != account["private_key_id"]:
        problems.append(f"kid {header.get('kid')!r}, not the key file's private_key_id")
    if claims.get("iss") != account["client_email"]:
        problems.append(f"iss {claims.get('iss')!r}, not the key file's client_email")
    if claims.get("scope") != scope:
        problems.append(f"scope {claims.get('scope')!r}, not {scope!r}")
    if claims.get("aud") != account["token_uri"]:
        problems.append(f"aud {claims.get('aud')!r}, not the key file's token_uri")
    if not isinstance(claims.get("iat"), int) or not isinstance(claims.get("exp"), int) \
            or claims["exp"] - claims["iat"] != 3600:
        problems.append(f"iat {claims.get('iat')!r} and exp {claims.get('exp')!r} are not one hour apart")
    return {"ok": not problems, "problems": problems, "header": header, "claims": claims}


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        account = json.load(f)
    key = serialization.load_pem_private_key(account["private_key"].encode(), password=None)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    with open(sys.argv[3], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                print(json.dumps(verdict(line.strip(), account, public_pem, sys.argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
