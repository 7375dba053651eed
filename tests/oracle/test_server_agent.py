"""An agent's tool loop against `tqlm serve`, through the MiniMax-M2 and Qwen3 chat templates, with the official
`openai` client: the model (the default SmolLM2, shown a few earlier calls) answers with a tool call, which
must come back as OpenAI `tool_calls` (whole and streamed as deltas); the client appends that assistant message
(arguments as a JSON string, reasoning echoed back) and the tool's result, and the next turn's prompt must be
exactly what jinja2 renders from the same conversation (transformers' environment, arguments as a mapping as
vLLM passes them) and tokenize as HF tokenizers does. Also the reasoning budget: after N reasoning tokens the
server closes the <think> block itself (checked token by token)."""
import json
import os

import pytest
from tokenizers import Tokenizer

from conftest import ROOT
from test_chat_template import oracle_render
from test_server import MODEL, M, Served

TEMPLATES = ROOT / "tests" / "fixtures" / "templates"
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]
# MiniMax's template writes its own stop marker as text ([e~[ is no token of SmolLM2's vocabulary)
STOP = {"minimax-m2": ["[e~["], "qwen3": None}


def call(cid, city):
    return {"id": cid, "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"location": city})}}


def few_shot():
    msgs = [{"role": "system", "content": "You call tools."}]
    for i, (city, t) in enumerate([("Paris", 18), ("Berlin", 12), ("Rome", 25), ("Madrid", 30)]):
        msgs += [{"role": "user", "content": f"Weather in {city}?"},
                 {"role": "assistant", "content": "", "tool_calls": [call(f"c{i}", city)]},
                 {"role": "tool", "tool_call_id": f"c{i}", "content": f"{t} degrees"}]
    return msgs + [{"role": "user", "content": "Weather in Tokyo?"}]


def as_template_sees(messages):
    """The conversation as the server hands it to the template: arguments strings parsed to mappings,
    `reasoning` also under reasoning_content."""
    out = []
    for m in messages:
        m = json.loads(json.dumps(m))
        if "reasoning" in m and "reasoning_content" not in m:
            m["reasoning_content"] = m["reasoning"]
        for c in m.get("tool_calls") or []:
            c["function"]["arguments"] = json.loads(c["function"]["arguments"])
        out.append(m)
    return out


@pytest.fixture(scope="module", params=["minimax-m2", "qwen3"])
def agent_server(request, tqlm_bin):
    s = Served(tqlm_bin, "--ctx", "2048", "--chat-template", str(TEMPLATES / f"{request.param}.jinja"))
    yield request.param, s
    s.stop()


def special_tokens():
    with open(os.path.join(MODEL, "tokenizer_config.json")) as f:
        cfg = json.load(f)
    return {k: cfg[k] for k in ("bos_token", "eos_token") if isinstance(cfg.get(k), str)}


def test_tool_loop(agent_server):
    name, s = agent_server
    client = s.client()
    msgs = few_shot()
    # MiniMax's prompt opens <think>: a budget of 0 has the server close it, then the model copies the calls
    extra = {"thinking_budget": 0} if name == "minimax-m2" else {}
    kw = dict(model=M, messages=msgs, tools=TOOLS, temperature=0, max_tokens=80, stop=STOP[name], extra_body=extra)
    r = client.chat.completions.create(**kw)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    [tc] = choice.message.tool_calls
    assert tc.type == "function" and tc.function.name == "get_weather" and tc.id
    assert json.loads(tc.function.arguments) == {"location": "Tokyo"}

    # streamed: the same call assembled from tool_calls deltas
    parts, finish = {}, None
    for chunk in client.chat.completions.create(stream=True, **kw):
        d = chunk.choices[0].delta if chunk.choices else None
        for t in (d.tool_calls or []) if d else []:
            p = parts.setdefault(t.index, {"id": None, "name": "", "args": ""})
            p["id"] = t.id or p["id"]
            p["name"] += (t.function.name or "") if t.function else ""
            p["args"] += (t.function.arguments or "") if t.function else ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert finish == "tool_calls"
    assert list(parts) == [0] and parts[0]["name"] == "get_weather" and parts[0]["id"]
    assert json.loads(parts[0]["args"]) == {"location": "Tokyo"}

    # the agent runs the tool and sends everything back, its reasoning included (interleaved thinking)
    assistant = {"role": "assistant", "content": choice.message.content or "",
                 "reasoning_content": "The user wants Tokyo. I call get_weather.",
                 "tool_calls": [{"id": tc.id, "type": "function",
                                 "function": {"name": tc.function.name, "arguments": tc.function.arguments}}]}
    turn2 = msgs + [assistant, {"role": "tool", "tool_call_id": tc.id, "content": "21 degrees"}]
    r2 = client.chat.completions.create(model=M, messages=turn2, tools=TOOLS, temperature=0, max_tokens=16,
                                        stop=STOP[name], extra_body=extra)
    assert r2.choices[0].finish_reason in ("stop", "length", "tool_calls")

    status, body = s.raw("POST", "/apply-template", {"messages": turn2, "tools": TOOLS})
    assert status == 200, body
    got = json.loads(body)
    want = oracle_render((TEMPLATES / f"{name}.jinja").read_text(), as_template_sees(turn2), TOOLS, True, {},
                         special_tokens())
    assert got["prompt"] == want
    assert "The user wants Tokyo. I call get_weather." in want  # the reasoning reached the template
    hf = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    assert got["tokens"] == hf.encode(want, add_special_tokens=False).ids
    assert r2.usage.prompt_tokens == len(got["tokens"])


def test_reasoning_budget(agent_server):
    """After `thinking_budget` generated tokens inside an open <think> block the next tokens are exactly those
    of "\\n</think>\\n\\n" and the answer follows; the first tokens equal the same greedy run without a budget.
    MiniMax's generation prompt opens the block (chat endpoint); Qwen3's leaves it to the model, so its prompt
    is rendered, "<think>\\n" appended, and sent to /v1/completions."""
    name, s = agent_server
    client = s.client()
    hf = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    close = [hf.decode([i]) for i in hf.encode("\n</think>\n\n", add_special_tokens=False).ids]
    msgs = [{"role": "user", "content": "What is 2+2?"}]
    n = 24
    if name == "minimax-m2":
        def run(**extra):
            r = client.chat.completions.create(model=M, messages=msgs, temperature=0, max_tokens=n, logprobs=True,
                                               extra_body={"ignore_eos": True, **extra})
            m = r.choices[0].message
            assert "</think>" not in m.model_extra.get("reasoning_content") and r.usage.completion_tokens == n
            assert bool(m.content) == bool(extra)  # the answer follows the closed block
            return [t.token for t in r.choices[0].logprobs.content]
    else:
        status, body = s.raw("POST", "/apply-template", {"messages": msgs})
        assert status == 200
        prompt = json.loads(body)["prompt"] + "<think>\n"

        def run(**extra):
            r = client.completions.create(model=M, prompt=prompt, temperature=0, max_tokens=n, logprobs=0,
                                          extra_body={"ignore_eos": True, **extra})
            assert r.usage.completion_tokens == n
            return r.choices[0].logprobs.tokens
    free = run()
    assert close[1] not in free  # the model does not close the block itself within n tokens
    for budget in (0, 5):
        toks = run(thinking_budget=budget)
        assert toks[budget:budget + len(close)] == close, (budget, toks)
        assert toks[:budget] == free[:budget]
    assert run(reasoning_effort="none")[:len(close)] == close
    # bad values: a 400 naming the field
    for field, value in (("reasoning_effort", "huge"), ("thinking_budget", -2), ("thinking_budget", "5")):
        status, body = s.raw("POST", "/v1/chat/completions", {"messages": msgs, field: value})
        assert status == 400 and field in body, (field, value, body)
