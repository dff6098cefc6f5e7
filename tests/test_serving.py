"""Serving: PaddleHub's own app (`hub serving start -m NAME`, run on 127.0.0.1 for the test) and `modules.serve`,
our loopback server with request/batch caps, including a bounded load test on loopback.

The load test prints errors, p50/p99 latency and throughput and saves them as JSON in the test's tmp dir; the
default variant sends 200 requests from 20 clients with the tiny test model, the `slow` one 2,000 requests with a
model of chinese-electra-small's shape (random weights: speed does not depend on the values).
"""
import importlib.util
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from paddle_electra.hub.home import prepare_hub_home

_spec = importlib.util.spec_from_file_location("_hub_test_helpers",
                                               os.path.join(os.path.dirname(__file__), "test_hub_module.py"))
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)
no_network = helpers.no_network  # the socket guard fixture
NAME, SENTENCES, REPO = helpers.NAME, helpers.SENTENCES, helpers.REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    home = prepare_hub_home(os.environ["HUB_HOME"])
    from paddle_electra.hub.package import package
    from paddle_electra.hub.install import install
    model_dir = helpers.build_model_dir(str(tmp_path_factory.mktemp("serve-model")))
    archive = package(model_dir, NAME, str(tmp_path_factory.mktemp("serve-dist")), allow_other_shape=True)
    install(archive, home)
    return home


def _post(port, path, body, headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        conn.request("POST", path, body=data, headers=headers or {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read().decode("utf-8"))
    finally:
        conn.close()


def _raw(port, request_bytes, timeout=10):
    """Send raw bytes, return the status line's code (or None if the server closed without answering)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request_bytes)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            data += chunk
        return int(data.split(b" ")[1])


def listening_addresses(port):
    """Local addresses with a LISTEN socket on `port`, from /proc/net/tcp{,6} (Linux); None elsewhere."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            return None
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.append(address)
    return found


# ---- PaddleHub's own serving app, as `hub serving start -m chinese-electra-small` builds it --------------------
def _hub_app(modules_info):
    from paddlehub.commands.serving import ServingCommand
    from paddlehub.serving.app_compat import create_app
    from werkzeug.serving import make_server
    command = ServingCommand()
    command.modules_info = modules_info
    command.preinstall_modules()  # what `hub serving start` does: hub.Module(name=...), find the @serving method
    server = make_server("127.0.0.1", 0, create_app(init_flag=False, configs=command.modules_info), threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def test_hub_serving_app_answers_on_loopback(installed, no_network):
    server, thread = _hub_app({NAME: {"init_args": {"version": None}, "predict_args": {}}})
    try:
        assert server.server_address[0] == "127.0.0.1"
        status, body = _post(server.server_port, f"/predict/{NAME}", {"data": [["今天天气很好"], ["北京", "上海"]]})
        assert status == 200 and body["status"] == "000"
        pooled, sequence = body["results"][0]
        assert len(pooled) == 128 and len(sequence) == len("今天天气很好") + 2 and sequence[0] == pooled
        assert len(body["results"][1][1]) == 7  # [CLS] 北 京 [SEP] 上 海 [SEP]
        status, body = _post(server.server_port, "/predict/no-such-module", {"data": [["x"]]})
        assert body["status"] == "111"
    finally:
        server.shutdown()
        thread.join(timeout=10)
    server, thread = _hub_app({NAME: {"init_args": {"version": None, "task": "seq-cls",
                                                    "label_map": {"0": "negative", "1": "positive"}},
                                      "predict_args": {"max_seq_len": 64}}})
    try:
        status, body = _post(server.server_port, f"/predict/{NAME}", {"data": [["今天天气很好"], ["服务态度很差"]]})
        assert status == 200 and body["status"] == "000"
        assert len(body["results"]) == 2 and set(body["results"]) <= {"negative", "positive"}
    finally:
        server.shutdown()
        thread.join(timeout=10)
    helpers.join_hub_threads()


# ---- modules.serve ---------------------------------------------------------------------------------------------
def test_servers_export_before_the_first_request(installed):
    """Batches gathered from concurrent requests are smaller than predict()'s export threshold, so both servers
    build the fast path themselves: modules.serve when it loads a module, the hub serving method at its first
    request. The answers are those of a module that predicts through the same path."""
    import paddlehub as hub
    from paddle_electra.hub.serve import load_modules
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("needs the export extra")
    (module, _), = load_modules({NAME: {"init_args": {"task": "seq-cls"}}}).values()
    assert module._predictor is not None
    served = hub.Module(name=NAME, task="seq-cls")
    served.set_state_dict(module.state_dict())
    assert served._predictor is None
    answer = served.predict_method([["今天天气很好"]])
    assert served._predictor is not None and answer == module.predict([["今天天气很好"]])


@pytest.fixture(scope="module")
def our_server(installed):
    import paddlehub as hub
    from paddle_electra.hub.serve import make_server
    modules = {
        "seq": hub.Module(name=NAME, task="seq-cls", label_map={0: "negative", 1: "positive"}),
        "match": hub.Module(name=NAME, task="text-matching"),
        NAME: hub.Module(name=NAME),
    }
    server = make_server(modules, port=0, max_batch=4, max_body_bytes=2048, timeout=2.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, modules
    server.shutdown_all()
    thread.join(timeout=10)
    helpers.join_hub_threads()


def test_our_server_binds_loopback_and_answers_like_hub(our_server):
    server, modules = our_server
    port = server.server_address[1]
    assert server.server_address[0] == "127.0.0.1"
    addresses = listening_addresses(port)
    if addresses is not None:
        assert addresses == ["0100007F"]  # 127.0.0.1 only, not 0.0.0.0 / ::
    status, body = _post(port, "/predict/seq", {"data": [["今天天气很好"], ["服务态度很差"]]})
    assert status == 200 and body["status"] == "000"
    assert body["results"] == modules["seq"].predict([["今天天气很好"], ["服务态度很差"]])
    status, body = _post(port, "/predict/seq", {"data": [["今天天气很好"]], "return_prob": True, "max_seq_len": 8})
    labels, probs = body["results"]
    assert labels == modules["seq"].predict([["今天天气很好"]], max_seq_len=8)
    np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, atol=1e-6)
    status, body = _post(port, f"/predict/{NAME}", {"data": [["北京"]]})
    np.testing.assert_allclose(body["results"][0][0], modules[NAME].get_embedding([["北京"]])[0][0], atol=1e-5)


@pytest.mark.parametrize("body, status, hub_status", [
    (b'{"data": [["unterminated', 400, "400"),
    (b"\xff\xfe not utf-8", 400, "400"),
    (b"[1, 2]", 400, "400"),
    (b'{"data": []}', 400, "400"),
    (b'{"data": [[1]]}', 400, "400"),
    (b'{"data": [["a", "b", "c"]]}', 400, "400"),
    (b'{"data": [["a"]], "use_gpu": true}', 400, "400"),
    (b'{"data": [["a"]], "max_seq_len": 100000}', 400, "400"),
    (b'{"data": [["a"]], "return_prob": "yes"}', 400, "400"),
    (json.dumps({"data": [["a"]] * 5}).encode(), 400, "400"),  # more than max_batch=4 examples
])
def test_our_server_rejects_bad_requests_with_4xx(our_server, body, status, hub_status):
    port = our_server[0].server_address[1]
    got, answer = _post(port, "/predict/seq", body)
    assert (got, answer["status"]) == (status, hub_status) and answer["msg"]


def test_our_server_limits_and_routes(our_server):
    server = our_server[0]
    port = server.server_address[1]
    assert _post(port, "/predict/nope", {"data": [["a"]]}) == (
        404, {"status": "111", "msg": "Module nope is not available.", "results": ""})
    assert _post(port, "/elsewhere", {"data": [["a"]]})[0] == 404
    # a prediction error (a text-matching request with one text) is a 400 naming the problem, status 101 as in hub
    status, body = _post(port, "/predict/match", {"data": [["只有一句"]]})
    assert (status, body["status"]) == (400, "101") and "query, title" in body["msg"]
    # too large: answered from the headers, before the body is read
    assert _raw(port, b"POST /predict/seq HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n") == 413
    assert _raw(port, b"POST /predict/seq HTTP/1.1\r\nHost: x\r\n\r\n") == 411
    assert _raw(port, b"POST /predict/seq HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 411
    assert _raw(port, b"PUT /predict/seq HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n") == 405
    assert _raw(port, b"POST /predict/seq HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n") == 431
    # a client that never finishes its request is dropped after the timeout, and others are served meanwhile
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"POST /predict/seq HTTP/1.1\r\nContent-Length: 50\r\n\r\n{")
    assert _post(port, "/predict/seq", {"data": [["今天"]]})[0] == 200
    slow.settimeout(10)
    answer = b""
    while True:  # the server answers 408 after its 2 s timeout, then closes the connection (recv gives b"")
        chunk = slow.recv(4096)
        if not chunk:
            break
        answer += chunk
    slow.close()
    assert answer.startswith(b"HTTP/1.1 408") and b'"status": "408"' in answer
    status, body = _post(port, "/predict/seq", {"data": [["今天天气很好"]]})
    assert status == 200 and body["status"] == "000"
    assert server.counts[200] >= 2 and server.counts[400] >= 1


def test_batcher_isolates_a_failing_request(our_server):
    from paddle_electra.hub.serve import Batcher, RequestError, _Job
    modules = our_server[1]
    batcher = Batcher("match", modules["match"], max_batch=8)
    try:
        good, bad = _Job([["今天天气很好", "天气很好"]], {}), _Job([["只有一句"]], {})
        batcher._run([good, bad])  # one predict call for both fails; each is retried alone
        assert good.done.is_set() and good.error is None and len(good.result) == 1
        assert bad.done.is_set() and isinstance(bad.error, RequestError) and bad.error.http_status == 400
        assert batcher.submit([["北京", "上海"], ["今天", "明天"]], {}, timeout=30) == \
            modules["match"].predict([["北京", "上海"], ["今天", "明天"]])
    finally:
        batcher.stop()


# ---- load test on loopback -------------------------------------------------------------------------------------
def run_load(port, path, total, clients, seed=0):
    """`total` POSTs from `clients` threads on keep-alive connections; errors, p50/p99 (ms) and requests/s."""
    rng = np.random.default_rng(seed)
    payloads = [json.dumps({"data": [[SENTENCES[i]]]}).encode("utf-8") for i in rng.integers(0, len(SENTENCES), total)]
    latencies, errors, lock = [], [], threading.Lock()
    counter = iter(range(total))

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=payloads[i], headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                answer = json.loads(response.read())
                ok = response.status == 200 and answer["status"] == "000" and len(answer["results"]) == 1
            except Exception as err:  # any failure counts as an error; reconnect and go on
                ok = False
                answer = repr(err)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if not ok:
                    errors.append(answer)
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"requests": total, "clients": clients, "errors": len(errors), "first_errors": [str(e) for e in errors[:3]],
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "throughput_rps": round(total / wall, 1), "wall_s": round(wall, 2)}


def _start_cli(hub_home, config_path, tmp_path):
    return _start_server([sys.executable, "-m", "modules.serve", "--config", str(config_path), "--port", "0",
                          "--hub-home", hub_home, "--max-batch", "32"], hub_home, tmp_path / "serve.log")


# PaddleHub's own app, as `hub serving start` builds it, but bound to 127.0.0.1 (hub hard-codes 0.0.0.0)
HUB_APP = """
import json, sys
from paddlehub.commands.serving import ServingCommand
from paddlehub.serving.app_compat import create_app
from werkzeug.serving import make_server
command = ServingCommand()
command.modules_info = json.loads(sys.argv[1])
command.preinstall_modules()
server = make_server("127.0.0.1", 0, create_app(init_flag=False, configs=command.modules_info), threaded=False)
print(f"serving http://127.0.0.1:{server.server_port}/", flush=True)
server.serve_forever()
"""


def _start_server(cmd, hub_home, log_path):
    """Start a server process; (process, host, port) once it prints its "serving http://host:port/" line."""
    env = dict(os.environ, HUB_HOME=hub_home, PYTHONWARNINGS="ignore", GLOG_minloglevel="2")
    with open(log_path, "w") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    line = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "serving" not in line:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
    assert "serving" in line, log_path.read_text()
    address = line.split("http://")[1].split("/")[0]
    host, port = address.rsplit(":", 1)
    return process, host, int(port)


def _stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()


INIT_ARGS = {"task": "seq-cls", "label_map": {"0": "negative", "1": "positive"}}


def _cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        return None


def _load_test(hub_home, tmp_path, total, clients, label):
    config = tmp_path / "serving.json"
    config.write_text(json.dumps({"modules_info": {NAME: {"init_args": INIT_ARGS, "predict_args": {}}}}))
    process, host, port = _start_cli(hub_home, config, tmp_path)
    try:
        assert host == "127.0.0.1"
        addresses = listening_addresses(port)
        if addresses is not None:
            assert addresses == ["0100007F"]
        report = run_load(port, f"/predict/{NAME}", total, clients)
        report["model"] = label
        report["cpu_count"] = os.cpu_count()
        print("\nload test:", json.dumps(report))
        (tmp_path / "load_test.json").write_text(json.dumps(report, indent=2))
        assert report["errors"] == 0, report
        assert _post(port, f"/predict/{NAME}", b"{oops")[0] == 400  # and it is still up after the load
        assert _post(port, f"/predict/{NAME}", {"data": [["今天"]]})[0] == 200
    finally:
        _stop(process)
    assert process.returncode == 0
    path = (tmp_path / "serve.log").read_text()
    report["predict_path"] = next((line.split("predict(): ", 1)[1] for line in path.splitlines()
                                   if "predict(): " in line), "dygraph")
    return report


def test_serve_cli_loopback_load_200_requests(installed, tmp_path):
    _load_test(installed, tmp_path, total=200, clients=20, label="tiny (4 layers, hidden 128)")


@pytest.mark.slow
def test_serve_cli_loopback_load_2000_requests_small_shape(tmp_path):
    """2,000 requests, 20 clients, a chinese-electra-small-shaped model in its own hub home (installed by the CLI)."""
    from paddle_electra.hub.package import package
    home = str(tmp_path / "hub")
    model_dir = helpers.build_model_dir(str(tmp_path / "model"), size="small")
    archive = package(model_dir, NAME, str(tmp_path / "dist"), allow_other_shape=True)
    env = dict(os.environ, PYTHONWARNINGS="ignore", GLOG_minloglevel="2")
    result = subprocess.run([sys.executable, "-m", "modules.install", archive, "--hub-home", home], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ours = _load_test(home, tmp_path, total=2000, clients=20, label="chinese-electra-small shape (12 layers, "
                                                                     "hidden 256)")
    assert ours["predict_path"].startswith("ONNX Runtime"), ours["predict_path"]  # served on the fast path
    hub_info = json.dumps({NAME: {"init_args": {"version": None, **INIT_ARGS}, "predict_args": {}}})
    process, _, port = _start_server([sys.executable, "-c", HUB_APP, hub_info], home, tmp_path / "hub_app.log")
    try:
        theirs = run_load(port, f"/predict/{NAME}", 2000, 20)
    finally:
        _stop(process)
    print("\nload test, PaddleHub's serving app on loopback:", json.dumps(theirs))
    assert theirs["errors"] == 0, theirs
    out = os.environ.get("PADDLE_ELECTRA_LOAD_TEST_OUT")  # the committed results file is written this way
    if out:
        from paddle_electra.fileio import write_json
        write_json(out, {"what": "20 clients x 2,000 single-text POSTs on loopback to a chinese-electra-small-shaped "
                                 "seq-cls module (random weights); tests/test_serving.py::"
                                 "test_serve_cli_loopback_load_2000_requests_small_shape",
                         "date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpu_count": os.cpu_count(), "cpu": _cpu_name(),
                         "modules_serve": ours, "paddlehub_serving_app": theirs})
