"""Python's ssl module and the h2 package against a ferricorn server with
TLS (client certificates optional) and a plain listener, for
tests/e2e/tls.rs:

    python clients.py TLS_PORT PLAIN_PORT CA CLIENT_CERT CLIENT_KEY

Prints one line per check; exits 1 on the first that fails.
"""

import os

import json
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events

TLS_PORT, PLAIN_PORT = int(sys.argv[1]), int(sys.argv[2])
CA, CERT, KEY = sys.argv[3:6]


def check(what, ok, detail=""):
    print(f"{'ok' if ok else 'FAILED'}: {what} {detail}")
    if not ok:
        sys.exit(1)


def context(alpn, maximum=None, client=False):
    ctx = ssl.create_default_context(cafile=CA)
    ctx.set_alpn_protocols(alpn)
    if maximum:
        ctx.maximum_version = maximum
    if client:
        ctx.load_cert_chain(CERT, KEY)
    return ctx


def tls(ctx):
    raw = socket.create_connection(("127.0.0.1", TLS_PORT), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def h2_get(sock, path, authority):
    """One GET over the h2 package; the status and the body."""
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    stream = conn.get_next_available_stream_id()
    scheme = "https" if isinstance(sock, ssl.SSLSocket) else "http"
    conn.send_headers(stream, [(":method", "GET"), (":path", path), (":scheme", scheme),
                               (":authority", authority)], end_stream=True)
    sock.sendall(conn.data_to_send())
    status, body = None, b""
    while True:
        data = sock.recv(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers)[b":status"].decode()
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, stream)
            elif isinstance(event, h2.events.StreamEnded):
                conn.close_connection()
                sock.sendall(conn.data_to_send())
                return status, body
        sock.sendall(conn.data_to_send())
    return status, body


with tls(context(["h2", "http/1.1"])) as s:
    check("TLS 1.3 and ALPN h2 by default", s.version() == "TLSv1.3"
          and s.selected_alpn_protocol() == "h2", f"{s.version()} {s.selected_alpn_protocol()}")
    status, body = h2_get(s, "/whoami", f"localhost:{TLS_PORT}")
    seen = json.loads(body)
    check("h2 over TLS with the h2 package", status == "200" and seen["scheme"] == "https", body)

with tls(context(["http/1.1"], maximum=ssl.TLSVersion.TLSv1_2)) as s:
    cipher = s.cipher()[0]
    check("TLS 1.2 with an ECDHE AEAD suite", s.version() == "TLSv1.2"
          and cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher), cipher)

with tls(context(["http/1.1"], client=True)) as s:
    s.sendall(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    answer = b""
    while chunk := s.recv(65536):
        answer += chunk
    seen = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    check("a client certificate's subject over HTTP/1.1", seen["client_subject"] == "CN=python,O=Example",
          seen["client_subject"])

with socket.create_connection(("127.0.0.1", PLAIN_PORT), timeout=5) as s:
    status, body = h2_get(s, "/", f"127.0.0.1:{PLAIN_PORT}")
    check("h2c by prior knowledge with the h2 package", status == "200" and body == b"Hello, World!", body)


def websocket_over_h2(sock, authority):
    """RFC 8441: a WebSocket on an HTTP/2 stream, then a text message and
    its echo. The echoed frame's bytes."""
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    while not conn.remote_settings.enable_connect_protocol:
        data = sock.recv(65536)
        if not data:
            return None
        conn.receive_data(data)
        sock.sendall(conn.data_to_send())
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, [(":method", "CONNECT"), (":protocol", "websocket"),
                               (":scheme", "https"), (":path", "/ws/echo"),
                               (":authority", authority), ("sec-websocket-version", "13")])
    sock.sendall(conn.data_to_send())
    # Past the server's keep-alive time (1 s in the test): a connection
    # with a WebSocket stream open is not idle.
    time.sleep(1.5)
    mask = os.urandom(4)
    payload = b"hello over h2"
    frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    status, echoed = None, b""
    while len(echoed) < 2 + len(payload):
        data = sock.recv(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers)[b":status"].decode()
                if status == "200":
                    conn.send_data(stream, frame)
            elif isinstance(event, h2.events.DataReceived):
                echoed += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, stream)
        sock.sendall(conn.data_to_send())
    return status, echoed


with tls(context(["h2"])) as s:
    status, echoed = websocket_over_h2(s, f"localhost:{TLS_PORT}")
    check("a WebSocket over HTTP/2 (RFC 8441) echoes", status == "200"
          and echoed == bytes([0x81, 13]) + b"hello over h2", f"{status} {echoed!r}")
