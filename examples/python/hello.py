#!/usr/bin/env python3
"""A Kennel (or Mongrel2) handler in plain Python: pyzmq and the standard
library, no Mongrel2 library.

It serves the example site's /py/ route, whose handler row uses
protocol 'json'. Run it with:

    pip install pyzmq
    python3 examples/python/hello.py

The server binds both sockets; this handler connects to them, so start it
before or after the server, and run as many copies as you like: requests
are shared out among them.
"""

import argparse
import json
import sys

import zmq


def netstring(data):
    """Split b'5:hello,rest' into (b'hello', b',', b'rest').

    A netstring is LENGTH ":" BYTES TAG. Mongrel2's messages use the tag
    ',' for plain bytes; tnetstrings use other tags ('}' for a dict).
    """
    length, colon, rest = data.partition(b":")
    if not colon or not length.isdigit():
        raise ValueError("bad netstring length %r" % length[:20])
    n = int(length)
    if len(rest) < n + 1:
        raise ValueError("netstring cut short")
    return rest[:n], rest[n:n + 1], rest[n + 1:]


def parse_request(message):
    """Decode one request message: SENDER ID PATH HEADERS BODY.

    HEADERS is a netstring holding a JSON object; BODY is a netstring.
    There is no space between the two.
    """
    sender, conn_id, path, rest = message.split(b" ", 3)
    headers, tag, rest = netstring(rest)
    if tag != b",":
        raise ValueError("headers are not JSON: set this handler's protocol to 'json'")
    body, tag, rest = netstring(rest)
    if tag != b"," or rest:
        raise ValueError("bad body netstring")
    return sender, conn_id, path, json.loads(headers), body


def reply(socket, sender, conn_id, data):
    """Send bytes to one connection: UUID SP LEN:IDS, SP BODY.

    The server writes DATA to the client verbatim, so it must be a whole
    HTTP response (or the next part of one). Empty DATA closes the
    connection.
    """
    socket.send(b"%s %d:%s, %s" % (sender, len(conn_id), conn_id, data))


def http_response(status, headers, body):
    """An HTTP/1.1 response with a Content-Length."""
    lines = ["HTTP/1.1 %s" % status]
    lines += ["%s: %s" % (name, value) for name, value in headers]
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def greeting(headers):
    """The page: a greeting and the request's headers as the server sent
    them (upper-case keys are the server's, lower-case ones the client's)."""
    lines = [
        "Hello from a Python handler!",
        "Built with nothing but pyzmq and the standard library.",
        "",
        "Your request, as the server described it:",
    ]
    for name, value in headers.items():
        if isinstance(value, list):  # a header sent several times
            value = ", ".join(value)
        lines.append("  %s: %s" % (name, value))
    return ("\n".join(lines) + "\n").encode()


def should_close(headers):
    """HTTP/1.0 or 'Connection: close': the handler must close the
    connection itself (the server never does) by sending an empty reply."""
    return (headers.get("VERSION") == "HTTP/1.0"
            or headers.get("connection", "").lower() == "close")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--send-spec", default="tcp://127.0.0.1:9995",
                        help="where the server PUSHes requests")
    parser.add_argument("--recv-spec", default="tcp://127.0.0.1:9994",
                        help="where the server SUBscribes to replies")
    args = parser.parse_args()

    ctx = zmq.Context()
    requests = ctx.socket(zmq.PULL)
    requests.connect(args.send_spec)
    replies = ctx.socket(zmq.PUB)
    replies.connect(args.recv_spec)
    print("hello.py: requests from %s, replies to %s"
          % (args.send_spec, args.recv_spec), file=sys.stderr)

    try:
        while True:
            try:
                sender, conn_id, path, headers, body = parse_request(requests.recv())
            except ValueError as e:
                print("hello.py: ignored a bad message: %s" % e, file=sys.stderr)
                continue

            # Notices about a connection have METHOD "JSON" and path "@*".
            # A disconnect means the client went away: forget it, answer nothing.
            if headers.get("METHOD") == "JSON":
                continue

            page = greeting(headers)
            response = http_response(
                "200 OK", [("Content-Type", "text/plain; charset=utf-8")], page)
            if headers.get("METHOD") == "HEAD":  # the head only, no body
                response = response[:len(response) - len(page)]
            reply(replies, sender, conn_id, response)
            if should_close(headers):
                reply(replies, sender, conn_id, b"")
            print("hello.py: conn %s %s %s -> 200" % (
                conn_id.decode(), headers.get("METHOD"), path.decode(errors="replace")),
                file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        # Give replies still queued a moment to leave, then stop.
        requests.close(linger=0)
        replies.close(linger=1000)
        ctx.term()


if __name__ == "__main__":
    main()
