#!/usr/bin/env python3
"""A minimal HTTP scoring server for a linear model, Python standard library only.

plumbline runs it with its generic runtime (see ../deployment.yml):

    python3 {code_dir}/score_server.py --port {port}

Routes
    GET  /live   200 {"status": "alive"} while the process serves
    GET  /ready  200 {"status": "ready"} once the model is loaded, 503 before
    POST /score  {"data": [[x1, x2, x3], ...]} -> {"predictions": [y, ...]}
                 400 {"error": "..."} on bad input

Settings
    port   --port N, else the PORT environment variable, else 5001
    host   --host H, else the HOST environment variable, else 127.0.0.1
           (use 0.0.0.0 inside a container)
    model  $AZUREML_MODEL_DIR/model/weights.json: {"weights": [...], "bias": b}
           (--model-file overrides the path)

The model loads in the background after the socket is open, so /live answers
at once and /ready turns 200 when the weights are in memory; if they cannot be
loaded the server logs why and exits with status 1. SIGTERM or SIGINT stops
the server cleanly: no new connections, requests being handled get up to 10 s
to finish, then exit status 0.
"""

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_BYTES = 10 * 1024 * 1024


def log(message):
    """Write one line to stdout and flush it (stdout may be a pipe or a file)."""
    sys.stdout.write(time.strftime("%Y-%m-%dT%H:%M:%S") + " " + message + "\n")
    sys.stdout.flush()


class LinearModel:
    """y = bias + sum(w_i * x_i)."""

    def __init__(self, weights, bias):
        self.weights = weights
        self.bias = bias

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        weights = doc.get("weights") if isinstance(doc, dict) else None
        bias = doc.get("bias", 0.0) if isinstance(doc, dict) else None
        if not isinstance(weights, list) or not weights or not all(is_number(w) for w in weights):
            raise ValueError(f"{path}: 'weights' must be a non-empty list of numbers")
        if not is_number(bias):
            raise ValueError(f"{path}: 'bias' must be a number")
        return cls([float(w) for w in weights], float(bias))

    def predict(self, rows):
        return [self.bias + sum(w * x for w, x in zip(self.weights, row)) for row in rows]


def is_number(v):
    # bool is an int subclass in Python; true/false are not features.
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class BadRequest(Exception):
    pass


def parse_rows(body, n_features):
    """Returns the rows of a score request, or raises BadRequest."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(f"request body is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or "data" not in doc:
        raise BadRequest('request body must be a JSON object with a "data" field')
    rows = doc["data"]
    if not isinstance(rows, list) or not rows:
        raise BadRequest('"data" must be a non-empty array of rows')
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != n_features:
            raise BadRequest(f'"data"[{i}] must be an array of {n_features} numbers')
        for j, v in enumerate(row):
            if not is_number(v):
                raise BadRequest(f'"data"[{i}][{j}] must be a number, got {json.dumps(v)}')
    return rows


class Handler(BaseHTTPRequestHandler):
    server_version = "score_server/1.0"
    protocol_version = "HTTP/1.1"  # keep-alive; every response has a Content-Length

    # set by main()
    state = None

    def send_json(self, status, obj):
        data = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with self.state.track():
            self._get()

    def do_POST(self):
        with self.state.track():
            self._post()

    def _get(self):
        self.started = time.monotonic()
        path = self.path.split("?", 1)[0]
        if path == "/live":
            self.send_json(200, {"status": "alive"})
        elif path == "/ready":
            if self.state.model is not None:
                self.send_json(200, {"status": "ready"})
            else:
                self.send_json(503, {"status": "loading"})
        elif path == "/score":
            self.send_json(405, {"error": "use POST /score"})
        else:
            self.send_json(404, {"error": f"no route {path}"})

    def _post(self):
        self.started = time.monotonic()
        path = self.path.split("?", 1)[0]
        if path != "/score":
            # The body is not read: close the connection instead of reusing it.
            self.close_connection = True
            self.send_json(404, {"error": f"no route {path}"})
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self.send_json(411, {"error": "Content-Length required"})
            return
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self.send_json(413, {"error": f"request body larger than {MAX_BODY_BYTES} bytes"})
            return
        body = self.rfile.read(int(length))
        model = self.state.model
        if model is None:
            self.send_json(503, {"error": "model not loaded yet"})
            return
        try:
            rows = parse_rows(body, len(model.weights))
        except BadRequest as e:
            self.send_json(400, {"error": str(e)})
            return
        self.send_json(200, {"predictions": model.predict(rows)})

    def log_request(self, code="-", size="-"):
        # One line per request, to stdout.
        ms = (time.monotonic() - getattr(self, "started", time.monotonic())) * 1000
        log(f'{self.client_address[0]} "{self.command} {self.path}" {code} {ms:.1f}ms')

    def log_message(self, format, *args):
        # Anything else http.server reports (malformed requests, ...).
        log(f"{self.client_address[0]} {format % args}")


class State:
    """The loaded model and the number of requests being handled."""

    def __init__(self):
        self.model = None
        self.inflight = 0
        self.cond = threading.Condition()

    @contextlib.contextmanager
    def track(self):
        with self.cond:
            self.inflight += 1
        try:
            yield
        finally:
            with self.cond:
                self.inflight -= 1
                self.cond.notify_all()

    def drain(self, timeout):
        """Waits up to timeout seconds for in-flight requests; returns how many are left."""
        with self.cond:
            self.cond.wait_for(lambda: self.inflight == 0, timeout)
            return self.inflight


def main(argv=None):
    p = argparse.ArgumentParser(description="Linear-model scoring server (stdlib only).")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5001")),
                   help="port to listen on (default: $PORT, else 5001)")
    p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"),
                   help="address to bind (default: $HOST, else 127.0.0.1)")
    p.add_argument("--model-file", default=None,
                   help="weights file (default: $AZUREML_MODEL_DIR/model/weights.json)")
    args = p.parse_args(argv)

    model_file = args.model_file or os.path.join(
        os.environ.get("AZUREML_MODEL_DIR", "."), "model", "weights.json")

    state = State()
    Handler.state = state
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    exit_code = [0]

    def stop(code):
        exit_code[0] = code
        # shutdown() waits for serve_forever() to return, so it must not run
        # on the thread that is serving (the main thread, where signal
        # handlers run too).
        threading.Thread(target=server.shutdown, daemon=True).start()

    def on_signal(signum, frame):
        log(f"received {signal.Signals(signum).name}, shutting down")
        stop(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def load():
        try:
            model = LinearModel.load(model_file)
        except Exception as e:  # noqa: BLE001 - any failure means "not servable"
            log(f"cannot load model: {e}")
            stop(1)
            return
        state.model = model
        log(f"model loaded from {model_file}: {len(model.weights)} features, ready")

    log(f"listening on http://{args.host}:{server.server_address[1]}")
    threading.Thread(target=load, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        # No new connections are accepted now. Handler threads are daemons
        # (an idle keep-alive connection must not hold up the exit), so wait
        # here for the requests already being handled.
        left = state.drain(timeout=10)
        if left:
            log(f"{left} request(s) still running after 10s, exiting anyway")
        server.server_close()
    log(f"stopped (exit status {exit_code[0]})")
    return exit_code[0]


if __name__ == "__main__":
    sys.exit(main())
