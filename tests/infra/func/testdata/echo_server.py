"""Tiny HTTP server that records every request it receives (for `func invoke`).

Usage: python echo_server.py [--port 0] [--reply event|json|empty]

Prints ``LISTENING <port>`` once ready, then one JSON line per request:
{"method", "path", "headers": {lower-case name: value}, "body"}.
Replies 200: with ``--reply event`` a binary-mode CloudEvent echoing the body
when the request carried ``ce-id``, otherwise (and with ``json``) a JSON echo;
``empty`` answers 202 and ``error`` 500, both without body. Loopback only; stops on SIGTERM/SIGINT.
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--reply", choices=["event", "json", "empty", "error"], default="event")
    args = ap.parse_args()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            record = {
                "method": self.command,
                "path": self.path,
                "headers": headers,
                "body": body.decode("utf-8", "replace"),
            }
            print(json.dumps(record), flush=True)
            if args.reply in ("empty", "error"):
                self.send_response(202 if args.reply == "empty" else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if args.reply == "event" and "ce-id" in headers:
                out = body or b"{}"
                self.send_response(200)
                self.send_header("ce-specversion", "1.0")
                self.send_header("ce-id", "reply-" + headers["ce-id"])
                self.send_header("ce-type", "dev.streamforge.echo")
                self.send_header("ce-source", "/echo")
                self.send_header("Content-Type", headers.get("content-type", "application/json"))
            else:
                out = json.dumps({"echo": record}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = _handle

        def log_message(self, *a) -> None:  # keep stdout for records only
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"LISTENING {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
