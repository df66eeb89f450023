#!/usr/bin/python3
"""Decodes an AWS event stream (application/vnd.amazon.eventstream) with botocore's EventStreamBuffer,
the reference the unit tests check the mock's Bedrock InvokeModelWithResponseStream bytes against.

    python3 eventstream_botocore.py BODY.bin > MESSAGES.jsonl

The input is the raw response body. Each output line is one message: {"headers": {name: value},
"payload": the payload as text, "event": for a {"bytes": base64} payload, the JSON it holds}.
botocore checks both CRCs and every length, and raises on any error (exit status 1, the error
on stderr); bytes left over after the last whole message are an error too. Exit status 3:
botocore is not there.
"""
import base64
import json
import sys

try:
    from botocore.eventstream import EventStreamBuffer
except ImportError as e:
    print(f"botocore is not importable by {sys.executable}: {e} (Debian: apt-get install python3-botocore)",
          file=sys.stderr)
    sys.exit(3)


def main():
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    consumed = 0
    for message in buffer:
        consumed += message.prelude.total_length
        payload = message.payload.decode("utf-8")
        line = {"headers": dict(message.headers), "payload": payload}
        try:
            decoded = json.loads(payload)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) and isinstance(decoded.get("bytes"), str):
            line["event"] = json.loads(base64.b64decode(decoded["bytes"], validate=True).decode("utf-8"))
        print(json.dumps(line))
    if consumed != len(data):
        print(f"{len(data) - consumed} bytes after the last whole message", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
