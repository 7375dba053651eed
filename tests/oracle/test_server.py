"""`tqlm serve` with real clients: the official `openai` package (chat and completions, streamed and whole,
usage with cached prompt tokens, seeds, stop strings, logprobs, errors), curl for the SSE framing, concurrent
streams (each equal to the same request alone), a client that disconnects (its sequence is cancelled and its KV
blocks freed). The greedy answer is checked against `tqlm generate --temp 0` on the same model."""
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest

from conftest import ROOT

MODEL = os.environ.get("TQLM_DEFAULT_MODEL", str(ROOT / "models" / "smollm2-135m-instruct"))
KEY = "sekrit"
M = "smollm2-135m-instruct"  # the id /v1/models reports: the model directory name


class Served:
    def __init__(self, tqlm_bin, *args, cmd=None, env=None):
        """`tqlm serve MODEL --port 0 ARGS`, or the whole command `cmd` (e.g. under mpirun)."""
        cmd = [str(c) for c in cmd] if cmd else [tqlm_bin, "serve", MODEL, "--port", "0", *args]
        self.p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        self.log = []
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.p.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                threading.Thread(target=self._drain, daemon=True).start()
                return
        self.p.kill()
        raise RuntimeError("tqlm serve did not start:\n" + "".join(self.log))

    def _drain(self):
        for line in self.p.stderr:
            self.log.append(line)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def client(self, key="none"):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=300)

    def raw(self, method, path, body=None, headers=None):
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self):
        _, text = self.raw("GET", "/metrics")
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(tqlm_\w+) (\S+)$", text, re.M)}

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()


@pytest.fixture(scope="module")
def server(tqlm_bin):
    s = Served(tqlm_bin, "--ctx", "1024", "--max-seqs", "4")
    yield s
    s.stop()


MSG = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


def test_greedy_chat_equals_tqlm_generate(server, tqlm_bin):
    r = server.client().chat.completions.create(model=M, messages=MSG, temperature=0,
                                                max_tokens=24)
    cli = subprocess.run([tqlm_bin, "generate", MODEL, "-p", MSG[0]["content"], "--temp", "0", "--max-tokens", "24",
                          "-q"], capture_output=True, text=True, check=True).stdout
    assert r.choices[0].message.content == cli.rstrip("\n")
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 10 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_stream_equals_whole_and_reports_usage_with_cached_tokens(server):
    c = server.client()
    whole = c.chat.completions.create(model=M, messages=MSG, temperature=0, max_tokens=20)
    chunks = list(c.chat.completions.create(model=M, messages=MSG, temperature=0,
                                            max_tokens=20, stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == whole.choices[0].message.content
    finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert usage.completion_tokens == whole.usage.completion_tokens
    # the same prompt again: its prefix comes from the prefix cache
    assert usage.prompt_tokens_details.cached_tokens > 0


def test_completions_endpoint(server):
    c = server.client()
    r = c.completions.create(model=M, prompt="The capital of France is", max_tokens=8,
                             temperature=0)
    s = "".join(ch.choices[0].text for ch in c.completions.create(
        model=M, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True)
        if ch.choices)
    assert r.choices[0].text and s == r.choices[0].text


def test_seed_and_stop(server):
    c = server.client()
    args = dict(model=M, messages=[{"role": "user", "content": "Tell me a story."}],
                temperature=1.0, top_p=0.95, max_tokens=24)
    a = c.chat.completions.create(seed=7, **args).choices[0].message.content
    b = c.chat.completions.create(seed=7, **args).choices[0].message.content
    d = c.chat.completions.create(seed=8, **args).choices[0].message.content
    assert a == b and a != d
    full = c.chat.completions.create(model=M, messages=MSG, temperature=0, max_tokens=24).choices[0].message.content
    word = full.split()[2]
    cut = c.chat.completions.create(model=M, messages=MSG, temperature=0, max_tokens=24, stop=[word])
    assert word not in cut.choices[0].message.content and full.startswith(cut.choices[0].message.content)
    assert cut.choices[0].finish_reason == "stop"


def test_logprobs(server):
    r = server.client().chat.completions.create(model=M, messages=MSG, temperature=0, max_tokens=6, logprobs=True,
                                                top_logprobs=3)
    lps = r.choices[0].logprobs.content
    assert len(lps) == r.usage.completion_tokens
    for lp in lps:
        assert lp.logprob <= 0 and len(lp.top_logprobs) == 3
        assert lp.top_logprobs[0].token == lp.token and abs(lp.top_logprobs[0].logprob - lp.logprob) < 1e-6
        assert lp.top_logprobs[0].logprob >= lp.top_logprobs[1].logprob >= lp.top_logprobs[2].logprob


def test_errors(server):
    c = server.client()
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=M, messages=MSG, temperature=-1)
    assert "temperature" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=M, messages=[{"role": "user", "content": "hello " * 1500}])
    assert "1024" in str(e.value) and "context" in str(e.value)
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="no-such-model", messages=MSG)
    st, body = server.raw("POST", "/v1/chat/completions", b"{not json")
    assert st == 400 and "error" in json.loads(body)
    st, body = server.raw("GET", "/v1/nothing")
    assert st == 404 and json.loads(body)["error"]["type"] == "not_found_error"
    st, body = server.raw("POST", "/v1/chat/completions", b"x" * (17 << 20))
    assert st == 413 and "larger than" in json.loads(body)["error"]["message"]
    deep = b'{"messages": ' + b"[" * 200000 + b"]" * 200000 + b"}"  # would overflow a recursive parser
    st, body = server.raw("POST", "/v1/chat/completions", deep)
    assert st == 400 and "nested deeper" in json.loads(body)["error"]["message"]
    st, body = server.raw("POST", "/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]})
    assert st == 400 and "role" in json.loads(body)["error"]["message"]
    assert server.raw("GET", "/health")[0] == 200
    assert json.loads(server.raw("GET", "/v1/models")[1])["data"][0]["id"] == "smollm2-135m-instruct"


def test_api_key(tqlm_bin):
    s = Served(tqlm_bin, "--api-key", KEY, "--ctx", "512")
    try:
        with pytest.raises(openai.AuthenticationError):
            s.client("wrong").chat.completions.create(model=M, messages=MSG, max_tokens=2)
        r = s.client(KEY).chat.completions.create(model=M, messages=MSG, max_tokens=2)
        assert r.choices[0].message.content is not None
        assert s.raw("GET", "/health")[0] == 200
    finally:
        s.stop()


def headers_of(url, method, headers=None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def test_cors(tqlm_bin, server):
    """--cors-origin: a browser's preflight (OPTIONS, no key) gets 204 and the allowed origin, methods and
    headers; API answers carry the origin; without the flag no CORS header is sent."""
    status, h = headers_of(server.url + "/v1/models", "GET")
    assert status == 200 and "Access-Control-Allow-Origin" not in h
    s = Served(tqlm_bin, "--api-key", KEY, "--ctx", "512", "--cors-origin", "http://localhost:3000")
    try:
        status, h = headers_of(s.url + "/v1/chat/completions", "OPTIONS",
                               {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
                                "Access-Control-Request-Headers": "authorization, content-type"})
        assert status == 204, (status, h)
        assert h["Access-Control-Allow-Origin"] == "http://localhost:3000"
        assert "POST" in h["Access-Control-Allow-Methods"] and "Authorization" in h["Access-Control-Allow-Headers"]
        status, h = headers_of(s.url + "/v1/models", "GET", {"Authorization": "Bearer " + KEY})
        assert status == 200 and h["Access-Control-Allow-Origin"] == "http://localhost:3000"
        status, h = headers_of(s.url + "/v1/models", "GET")  # the key is still required
        assert status == 401 and h["Access-Control-Allow-Origin"] == "http://localhost:3000"
    finally:
        s.stop()


def test_concurrent_streams_equal_each_alone(server):
    c = server.client()
    prompts = ["Name three colors.", "What is 2 + 2?", "Say hello in French.", "Why is the sky blue?",
               "Write a haiku about rain."]
    alone = [c.chat.completions.create(model=M, messages=[{"role": "user", "content": p}], temperature=0,
                                       max_tokens=20).choices[0].message.content for p in prompts]
    out = [None] * len(prompts)

    def run(i):
        out[i] = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
            model=M, messages=[{"role": "user", "content": prompts[i]}], temperature=0, max_tokens=20,
            stream=True) if ch.choices)

    th = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert out == alone


def test_disconnect_cancels_and_frees_kv(server):
    before = server.metrics()
    req = urllib.request.Request(server.url + "/v1/chat/completions", method="POST",
                                 data=json.dumps({"messages": MSG, "max_tokens": 900, "stream": True,
                                                  "ignore_eos": True}).encode(),
                                 headers={"Content-Type": "application/json"})
    r = urllib.request.urlopen(req, timeout=60)
    for _ in range(3):
        assert r.readline()
    r.close()
    deadline = time.time() + 60
    while time.time() < deadline:
        m = server.metrics()
        if m["tqlm_requests_cancelled_total"] > before["tqlm_requests_cancelled_total"] and \
                m["tqlm_kv_blocks_used"] == 0:
            break
        time.sleep(0.2)
    assert m["tqlm_requests_cancelled_total"] > before["tqlm_requests_cancelled_total"], m
    assert m["tqlm_kv_blocks_used"] == 0 and m["tqlm_sequences_running"] == 0, m


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_sse_framing_with_curl(server):
    out = subprocess.run(["curl", "-sN", server.url + "/v1/chat/completions", "-H", "Content-Type: application/json",
                          "-d", json.dumps({"messages": MSG, "max_tokens": 5, "stream": True, "temperature": 0})],
                         capture_output=True, text=True, timeout=120).stdout
    events = [e for e in out.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events), out
    assert events[-1] == "data: [DONE]"
    first = json.loads(events[0][6:])
    assert first["object"] == "chat.completion.chunk" and first["choices"][0]["delta"]["role"] == "assistant"
