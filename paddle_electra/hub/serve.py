"""Serve installed paddle-electra PaddleHub modules over HTTP, on loopback by default.

    python -m modules.serve -m chinese-electra-small [--host 127.0.0.1] [--port 8866] [--max-batch 32]
                            [--max-body-bytes 1MB] [--config serving.json] [--hub-home DIR]

Same protocol as `hub serving start -m NAME` (POST /predict/NAME with {"data": [[text], [text_a, text_b], ...]},
answer {"status": "000", "msg": "", "results": [...]}), but unlike hub's server (hard-wired to 0.0.0.0) it binds
127.0.0.1 unless --host says otherwise, and it holds up to bad clients:
- a body over --max-body-bytes gets 413 before it is read; no Content-Length gets 411;
- malformed JSON, a wrong shape, unknown fields or more than --max-batch examples get 400;
- an unknown module gets 404 (status "111", as hub); other paths 404, other methods 405;
- more than --max-pending queued requests get 503; a client that stops sending gets 408 after --timeout seconds;
- a failing request never takes the server down (errors are answered, logged, and the server goes on).
Requests for one module are batched: one worker thread runs the model on everything queued meanwhile (up to
--max-batch examples per forward, padded to the longest), which is what makes concurrent clients cheap.
--config takes hub's serving config ({"modules_info": {NAME: {"init_args": {...}, "predict_args": {...}}}}), e.g.
init_args {"task": "seq-cls", "label_map": {"0": "negative", "1": "positive"}, "load_checkpoint": "best.pdparams"}.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import re
import signal
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from paddle_electra.errors import ConfigError, ElectraError, command
from paddle_electra.fileio import read_json_file
from paddle_electra.runconfig import ArgumentParser, add_fields, apply, field_flags

logger = logging.getLogger("modules.serve")

ALLOWED_FIELDS = {"data", "max_seq_len", "return_prob"}
_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgG]?)(i?[bB])?\s*$")


def parse_size(text) -> int:
    """Bytes of "1MB", "512KB", "2048" (KB/MB/GB are powers of 1024)."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"not a size: {text!r} (e.g. 1MB, 512KB, 65536)")
    return int(match.group(1)) * 1024 ** " KMG".index((match.group(2) or " ").upper())


class RequestError(Exception):
    """A request the server answers with an HTTP error (status code, hub-style status string, message)."""

    def __init__(self, http_status, message, status=None):
        super().__init__(message)
        self.http_status, self.status = int(http_status), status or str(int(http_status))


class _Job:
    __slots__ = ("data", "options", "done", "result", "error")

    def __init__(self, data, options):
        self.data, self.options = data, options
        self.done, self.result, self.error = threading.Event(), None, None


class Batcher:
    """One worker thread per module: runs every queued request with the same options in one predict call."""

    def __init__(self, name, module, max_batch, max_pending=1024, predict_args=None):
        self.name, self.module, self.max_batch, self.max_pending = name, module, max_batch, max_pending
        self.predict_args = dict(predict_args or {})
        self._cv = threading.Condition()
        self._pending = collections.deque()
        self._stopped = False
        self.batches = self.examples = 0  # counters for the load report
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, data, options, timeout):
        job = _Job(data, options)
        with self._cv:
            if len(self._pending) >= self.max_pending:
                raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE, "server busy: too many queued requests")
            self._pending.append(job)
            self._cv.notify()
        if not job.done.wait(timeout):
            raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE, f"no answer within {timeout} s")
        if job.error is not None:
            raise job.error
        return job.result

    def stop(self):
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        self._thread.join(timeout=10)

    def _take(self):
        """The oldest job plus every queued job with the same options that still fits in max_batch examples."""
        with self._cv:
            while not self._pending and not self._stopped:
                self._cv.wait()
            if self._stopped:
                return None
            first = self._pending.popleft()
            group, size, rest = [first], len(first.data), collections.deque()
            while self._pending:
                job = self._pending.popleft()
                if job.options == first.options and size + len(job.data) <= self.max_batch:
                    group.append(job)
                    size += len(job.data)
                else:
                    rest.append(job)
            self._pending.extendleft(reversed(rest))
            return group

    def _loop(self):
        while True:
            group = self._take()
            if group is None:
                return
            try:
                self._run(group)
            except BaseException as err:  # never let the worker die: answer everyone in the group
                for job in group:
                    if not job.done.is_set():
                        job.error = RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {err}", "101")
                        job.done.set()

    def _predict(self, data, options):
        args = dict(self.predict_args, **options)
        max_seq_len = args.get("max_seq_len", 128)
        if self.module.task is None:
            return self.module.get_embedding(data, max_seq_len=max_seq_len, batch_size=self.max_batch), None
        if args.get("return_prob", False):
            return self.module.predict(data, max_seq_len=max_seq_len, batch_size=self.max_batch, return_prob=True)
        return self.module.predict(data, max_seq_len=max_seq_len, batch_size=self.max_batch), None

    def _run(self, group):
        combined = [example for job in group for example in job.data]
        try:
            results, probs = self._predict(combined, group[0].options)
        except Exception:
            if len(group) > 1:  # isolate the request that failed: run each one alone
                for job in group:
                    self._run([job])
                return
            err = sys.exc_info()[1]
            if isinstance(err, ElectraError):
                group[0].error = RequestError(HTTPStatus.BAD_REQUEST, str(err), "101")
            else:
                logger.error("predict failed on %s:\n%s", self.name, traceback.format_exc())
                group[0].error = RequestError(HTTPStatus.INTERNAL_SERVER_ERROR,
                                              f"prediction failed: {type(err).__name__}", "101")
            group[0].done.set()
            return
        self.batches += 1
        self.examples += len(combined)
        start = 0
        for job in group:
            end = start + len(job.data)
            job.result = results[start:end] if probs is None else [results[start:end], probs[start:end]]
            start = end
            job.done.set()


def validate_payload(payload, max_batch, max_seq_len_limit):
    """(data, options) of a request body, or RequestError(400) naming what is wrong."""
    if not isinstance(payload, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, 'body must be a JSON object such as {"data": [["text"]]}')
    unknown = sorted(set(payload) - ALLOWED_FIELDS)
    if unknown:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"unknown field(s) {unknown}; allowed: {sorted(ALLOWED_FIELDS)}")
    data = payload.get("data")
    if not isinstance(data, list) or not data:
        raise RequestError(HTTPStatus.BAD_REQUEST, 'field "data" must be a non-empty list of examples')
    if len(data) > max_batch:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{len(data)} examples in one request; at most {max_batch}")
    for i, example in enumerate(data):
        if not isinstance(example, list) or not 1 <= len(example) <= 2 or \
                not all(isinstance(text, str) for text in example):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"data[{i}] must be a list of 1 or 2 strings")
    options = {}
    if "max_seq_len" in payload:
        value = payload["max_seq_len"]
        if isinstance(value, bool) or not isinstance(value, int) or not 4 <= value <= max_seq_len_limit:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"max_seq_len must be an int in [4, {max_seq_len_limit}]")
        options["max_seq_len"] = value
    if "return_prob" in payload:
        if not isinstance(payload["return_prob"], bool):
            raise RequestError(HTTPStatus.BAD_REQUEST, "return_prob must be true or false")
        options["return_prob"] = payload["return_prob"]
    return data, options


class ElectraServer(ThreadingHTTPServer):
    """ThreadingHTTPServer holding the batchers and the limits; `handler` does the HTTP part."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, batchers, max_batch=32, max_body_bytes=1 << 20, timeout=30.0,
                 max_connections=64):
        self.batchers, self.max_batch, self.max_body_bytes = batchers, max_batch, max_body_bytes
        self.request_timeout = timeout
        self.connections = threading.BoundedSemaphore(max_connections)
        self.counts = collections.Counter()
        super().__init__(address, _Handler)

    def shutdown_all(self):
        self.shutdown()
        self.server_close()
        for batcher in self.batchers.values():
            batcher.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection
    server_version = "paddle-electra-serve"

    def setup(self):
        super().setup()
        self.connection.settimeout(self.server.request_timeout)  # a silent client cannot hold a thread forever

    def handle(self):
        if not self.server.connections.acquire(blocking=False):
            try:
                self.raw_requestline = self.rfile.readline(65537)
                if self.parse_request():
                    self.close_connection = True
                    self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "503", "msg": "too many connections",
                                                                 "results": ""})
            except OSError:
                pass
            return
        try:
            super().handle()
        except OSError:  # client went away or timed out mid-request
            pass
        finally:
            self.server.connections.release()

    def log_message(self, fmt, *args):
        logger.debug("%s - %s", self.address_string(), fmt % args)

    def _reply(self, http_status, body):
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(int(http_status))
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.server.counts[int(http_status)] += 1

    def _error(self, err: RequestError):
        self._reply(err.http_status, {"status": err.status, "msg": str(err), "results": ""})

    def do_GET(self):
        if self.path in ("/", "/health"):
            self._reply(HTTPStatus.OK, {"status": "000", "msg": "", "results": sorted(self.server.batchers)})
        else:
            self._error(RequestError(HTTPStatus.NOT_FOUND, f"no such path {self.path!r}; POST /predict/<module>"))

    def _not_allowed(self):
        self.close_connection = True
        self._error(RequestError(HTTPStatus.METHOD_NOT_ALLOWED, "use POST /predict/<module> or GET /health"))

    do_PUT = do_DELETE = do_PATCH = _not_allowed

    def do_POST(self):
        try:
            self._reply(HTTPStatus.OK, {"status": "000", "msg": "", "results": self._predict()})
        except RequestError as err:
            self._error(err)
        except Exception:
            logger.error("request failed:\n%s", traceback.format_exc())
            self.close_connection = True
            self._error(RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", "101"))

    def _predict(self):
        match = re.fullmatch(r"/predict/([^/?#]+)", self.path)
        if not match:
            self._discard_body()
            raise RequestError(HTTPStatus.NOT_FOUND, f"no such path {self.path!r}; POST /predict/<module>")
        name = match.group(1)
        body = self._read_body()
        batcher = self.server.batchers.get(name)
        if batcher is None:
            raise RequestError(HTTPStatus.NOT_FOUND, f"Module {name} is not available.", "111")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {err}") from None
        limit = batcher.module.model.config.max_position_embeddings
        data, options = validate_payload(payload, self.server.max_batch, limit)
        return batcher.submit(data, options, self.server.request_timeout)

    def _read_body(self):
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted: send Content-Length")
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
        length = int(length)
        if length > self.server.max_body_bytes:
            self.close_connection = True  # the body is never read: the connection cannot be reused
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"body of {length} bytes; the limit is {self.server.max_body_bytes}")
        try:
            body = self.rfile.read(length)
        except OSError:  # includes the socket timeout of a client that stops sending
            self.close_connection = True
            raise RequestError(HTTPStatus.REQUEST_TIMEOUT, "request body not received in time") from None
        if len(body) != length:
            self.close_connection = True
            raise RequestError(HTTPStatus.BAD_REQUEST, "body shorter than Content-Length")
        return body

    def _discard_body(self):
        length = self.headers.get("Content-Length", "0")
        if length.isdigit() and int(length) <= self.server.max_body_bytes:
            self.rfile.read(int(length))
        else:
            self.close_connection = True


def load_modules(modules_info):
    """{name: (module, predict_args)} for hub-style modules_info; modules must be installed paddle-electra ones."""
    from paddle_electra.errors import ConfigError
    from paddle_electra.hub.module import ElectraHubModule
    from paddlehub.module.manager import LocalModuleManager
    import paddlehub as hub
    loaded = {}
    for name, info in modules_info.items():
        info = info or {}
        init_args = dict(info.get("init_args") or {})
        init_args.pop("version", None)
        if "directory" not in init_args and LocalModuleManager().search(name) is None:
            raise ConfigError(f"module {name!r} is not installed in this HUB_HOME: install it first with "
                              f"`python -m modules.install <archive>`")
        module = hub.Module(**init_args) if "directory" in init_args else hub.Module(name=name, **init_args)
        if not isinstance(module, ElectraHubModule):
            raise ConfigError(f"module {name!r} is not a paddle-electra module; serve it with `hub serving`")
        predict_args = dict(info.get("predict_args") or {})
        if not predict_args.get("use_gpu"):
            module.prepare_fast_path()  # batches of concurrent requests rarely reach predict()'s export threshold
        loaded[name] = (module, predict_args)
    return loaded


def make_server(modules, host="127.0.0.1", port=8866, max_batch=32, max_body_bytes=1 << 20, timeout=30.0,
                max_pending=1024, max_connections=64):
    """An ElectraServer for {name: module or (module, predict_args)}; call .serve_forever() (e.g. in a thread)."""
    batchers = {}
    for name, value in modules.items():
        module, predict_args = value if isinstance(value, tuple) else (value, {})
        batchers[name] = Batcher(name, module, max_batch, max_pending, predict_args)
    return ElectraServer((host, port), batchers, max_batch, max_body_bytes, timeout, max_connections)


@dataclasses.dataclass
class ServeOptions:
    """The server's settings: defaults -> the --config file's top-level keys (hub serving's config has "port") ->
    flags, through paddle_electra.runconfig."""

    host: str = "127.0.0.1"  # this machine only
    port: int = 8866  # 0: any free port
    max_batch: int = 32  # most examples per request and per forward pass
    max_body_bytes: int = 1 << 20  # a flag may say 1MB, 512KB
    max_pending: int = 1024  # queued requests before 503
    max_connections: int = 64  # open connections before 503
    timeout: float = 30.0  # seconds per request read / prediction

    def validate(self):
        for name in ("max_batch", "max_body_bytes", "max_pending", "max_connections"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.timeout <= 0:
            raise ConfigError(f"--timeout must be > 0, got {self.timeout}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be in [0, 65535], got {self.port}")
        return self


SERVE_HELP = {"host": "address to bind (127.0.0.1: this machine only)", "port": "port (0: any free port)",
              "max_batch": "most examples per request and per forward pass",
              "max_body_bytes": "request body limit (also 1MB, 512KB)", "max_pending": "queued requests before 503",
              "max_connections": "open connections before 503", "timeout": "seconds per request read / prediction"}


def read_serving_config(path) -> tuple:
    """({module name: info}, {ServeOptions field: value}) of a hub serving config json: its "modules_info" and the
    top-level keys that are ServeOptions fields (hub serving's other keys, e.g. use_multiprocess, are ignored)."""
    config = read_json_file(path, "--config file")
    if not isinstance(config.get("modules_info"), dict):
        raise ConfigError(f"{path}: --config file needs a \"modules_info\" object (hub serving's format)")
    known = {f.name for f in dataclasses.fields(ServeOptions)}
    return config["modules_info"], {k: v for k, v in config.items() if k in known}


@command
def main(argv=None):
    parser = ArgumentParser(prog="python -m modules.serve", description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--modules", nargs="+", default=[], help="installed module names")
    parser.add_argument("-c", "--config", help="hub serving config json (modules_info with init_args/predict_args; "
                                               "top-level port etc. as the flags below, which override it)")
    parser.add_argument("--hub-home", help="PaddleHub home (default: $HUB_HOME, else ./.paddlehub)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    add_fields(parser, ServeOptions, helps=SERVE_HELP, title="server (ServeOptions)")
    args = parser.parse_args(argv)
    modules_info, config_values = read_serving_config(args.config) if args.config else ({}, {})
    flags = field_flags(args)
    if "max_body_bytes" in flags:
        try:
            flags["max_body_bytes"] = parse_size(flags["max_body_bytes"])
        except ValueError as err:
            parser.error(f"--max-body-bytes: {err}")
    options = apply(apply(ServeOptions(), config_values, args.config or "--config"), flags, "command line",
                    read_strings=True).validate()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")

    from paddle_electra.hub.home import prepare_hub_home
    try:
        home = prepare_hub_home(args.hub_home)
    except ElectraError as err:
        parser.error(f"--hub-home: {err}")
    modules_info = {**{name: {} for name in args.modules}, **modules_info}
    if not modules_info:
        parser.error("name at least one module with -m or --config")
    for name, info in modules_info.items():  # checked before paddlehub's import, which alone takes seconds
        if not (isinstance(info, dict) and "directory" in (info.get("init_args") or {})) and \
                not os.path.isdir(os.path.join(home, "modules", name.replace("-", "_"))):
            parser.error(f"-m {name}: module not installed in {home}: install it first with "
                         f"`python -m modules.install <archive>`")
    modules = load_modules(modules_info)  # a project error or OSError: one line and exit 2 (errors.command)
    server = make_server(modules, options.host, options.port, options.max_batch, options.max_body_bytes,
                         options.timeout, options.max_pending, options.max_connections)
    host, port = server.server_address[:2]
    if options.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {options.host}: reachable from other machines", file=sys.stderr)
    print(f"serving {', '.join(sorted(modules))} on http://{host}:{port}/predict/<module>", flush=True)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
