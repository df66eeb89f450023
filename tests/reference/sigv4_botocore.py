#!/usr/bin/python3
"""Signs requests with botocore's SigV4Auth, the reference the unit tests compare sigv4_sign with.

    python3 sigv4_botocore.py CASES.jsonl > SIGNED.jsonl

Each input line: {"name", "method", "host", "path" (as on the wire), "query" (as on the wire,
no '?'), "headers": [[name, value], ...] (repeats allowed), "body_hex", "access_key_id",
"secret_access_key", "session_token", "region", "service", "timestamp" (YYYYMMDDTHHMMSSZ)}.
Each output line: {"name", "canonical_request", "string_to_sign", "authorization",
"x_amz_date", "x_amz_security_token"}, in input order. Exit status 3: botocore is not there.
"""
import datetime
import json
import sys
import types

try:
    import botocore
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError as e:
    print(f"botocore is not importable by {sys.executable}: {e} (Debian: apt-get install python3-botocore)",
          file=sys.stderr)
    sys.exit(3)


def sign(case):
    ts = datetime.datetime.strptime(case["timestamp"], "%Y%m%dT%H%M%SZ")

    class fixed_datetime(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return ts

    # add_auth reads the clock through get_current_datetime() (botocore 1.31 and later) or the
    # module's `datetime` name (Debian bookworm's 1.29): give it this case's time.
    if hasattr(botocore.auth, "get_current_datetime"):
        botocore.auth.get_current_datetime = lambda *args, **kwargs: ts
    else:
        botocore.auth.datetime = types.SimpleNamespace(datetime=fixed_datetime)

    url = "https://" + case["host"] + case["path"]
    if case["query"]:
        url += "?" + case["query"]
    request = AWSRequest(method=case["method"], url=url, data=bytes.fromhex(case["body_hex"]))
    for name, value in case["headers"]:
        request.headers[name] = value  # HTTPHeaders appends: a repeated name keeps every value
    creds = Credentials(case["access_key_id"], case["secret_access_key"], case["session_token"] or None)
    auth = botocore.auth.SigV4Auth(creds, case["service"], case["region"])

    seen = {}
    canonical_request, string_to_sign = auth.canonical_request, auth.string_to_sign

    def keep_canonical_request(req):
        seen["cr"] = canonical_request(req)
        return seen["cr"]

    def keep_string_to_sign(req, cr):
        seen["sts"] = string_to_sign(req, cr)
        return seen["sts"]

    auth.canonical_request = keep_canonical_request
    auth.string_to_sign = keep_string_to_sign
    auth.add_auth(request)
    return {
        "name": case["name"],
        "canonical_request": seen["cr"],
        "string_to_sign": seen["sts"],
        "authorization": request.headers["Authorization"],
        "x_amz_date": request.headers["X-Amz-Date"],
        "x_amz_security_token": request.headers.get("X-Amz-Security-Token") or "",
    }


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                print(json.dumps(sign(json.loads(line))))
    print(f"sigv4_botocore: signed with botocore {botocore.__version__}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
