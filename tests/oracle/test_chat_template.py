"""Chat templates: tqlm's Jinja interpreter against Python jinja2 configured exactly as transformers'
apply_chat_template renders (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, the
AssistantTracker `generation` tag, globals raise_exception / strftime_now, transformers' `tojson`).

Every real template in tests/fixtures/templates/ is rendered over a suite of conversations; the prompt
printed by `tqlm chat-template` must be byte-identical to jinja2's. Where jinja2 raises, tqlm must fail
too (and surface the template's own raise_exception message).
"""
import copy
import warnings
import difflib
import json
import pathlib
import subprocess
from datetime import datetime

import jinja2
import pytest
from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "tests" / "fixtures" / "templates"


# ---------------------------------------------------------------------------------------------------------
# The oracle: transformers' _compile_jinja_template + render call, reproduced here.
class AssistantTracker(Extension):
    """transformers' {% generation %} tag; when not tracking assistant masks it renders its body as-is."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def oracle_render(source, messages, tools, add_generation_prompt, kwargs, special):
    with warnings.catch_warnings():  # e.g. '\q' in a string literal: kept verbatim, as tqlm does
        warnings.simplefilter("ignore", DeprecationWarning)
        template = make_env().from_string(source)
    return template.render(
        messages=messages,
        tools=tools,
        documents=None,
        add_generation_prompt=add_generation_prompt,
        **{**special, **kwargs},
    )


# ---------------------------------------------------------------------------------------------------------
# Templates and their special tokens (as in each model's tokenizer_config.json; absent tokens are omitted).
SPECIAL = {
    "smollm2-instruct": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"},
    "qwen2.5-instruct": {"eos_token": "<|im_end|>"},
    "qwen3": {"eos_token": "<|im_end|>"},
    "llama-3.1-instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama-3.2-instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "mixtral-8x7b-instruct": {"bos_token": "<s>", "eos_token": "</s>"},
    "mistral-nemo-instruct": {"bos_token": "<s>", "eos_token": "</s>"},
    "minimax-m2": {"bos_token": "]~!b[", "eos_token": "[e~["},
    "minimax-m2-unsloth": {"bos_token": "]~!b[", "eos_token": "[e~["},
}
TEMPLATE_NAMES = sorted(p.stem for p in TEMPLATES.glob("*.jinja"))

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City and state, e.g. 'San Francisco, CA'"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
                "days": {"type": "integer", "minimum": 1, "maximum": 14, "default": 1},
                "threshold": {"type": "number", "default": 0.5, "examples": [1e-7, 2.5e20, 100.0, -0.0]},
                "detailed": {"type": "boolean", "default": False},
                "tags": {"type": "array", "items": {"type": "string"}, "default": []},
                "extra": {"type": ["object", "null"], "default": None, "properties": {}},
            },
            "required": ["location"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": "Recherche sur le web — 検索 \"quoted\" \\ backslash\ttab",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "top_k": {"type": "integer"}},
            "required": ["query"],
        },
        "return": {"type": "string"},
    },
}
TOOLS = [WEATHER_TOOL, SEARCH_TOOL]


def tool_call(name, args, as_string=False, call_id="call00001"):
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False) if as_string else args},
    }


SYS = {"role": "system", "content": "You are a careful assistant."}
U1 = {"role": "user", "content": "What's the weather in Paris?"}
A1 = {"role": "assistant", "content": "It is sunny in Paris."}
U2 = {"role": "user", "content": "And in Tokyo?"}
CALL_ARGS = {"location": "Tokyo, JP", "unit": "celsius", "days": 3, "threshold": 0.25, "detailed": True,
             "tags": ["a", "b"], "extra": {"nested": [1, 2.0, None]}}
A_CALL = {"role": "assistant", "content": "", "tool_calls": [tool_call("get_weather", CALL_ARGS)]}
TOOL_RES = {"role": "tool", "tool_call_id": "call00001", "name": "get_weather",
            "content": "{\"temperature\": 21, \"sky\": \"clear\"}"}
A_FINAL = {"role": "assistant", "content": "It is 21°C and clear in Tokyo."}

CASES = {
    "system_user": dict(messages=[SYS, U1]),
    "user_only": dict(messages=[U1]),
    "multi_turn": dict(messages=[SYS, U1, A1, U2]),
    "multi_turn_no_system": dict(messages=[U1, A1, U2]),
    "ends_with_assistant": dict(messages=[SYS, U1, A1]),
    "whitespace_content": dict(messages=[
        {"role": "system", "content": "  padded system\n\n"},
        {"role": "user", "content": "\n  hello  \t\n"},
        {"role": "assistant", "content": "  answer with trailing spaces   "},
        {"role": "user", "content": "next"},
    ]),
    "unicode": dict(messages=[
        {"role": "system", "content": "Réponds en français. 日本語も OK. Emoji 😀👍🏽, RTL مرحبا, zero\u200bwidth."},
        {"role": "user", "content": "Ünïcödé “quotes” 'single' \"double\" back\\slash {{ not jinja }} {% raw %} <tag>"},
        {"role": "assistant", "content": "Ça va ? — très bien… 🚀\nnew line\r\ncrlf"},
        {"role": "user", "content": "ß ẞ İ ı ﬁ Ω ω Σσς"},
    ]),
    "tools_user": dict(messages=[SYS, U2], tools=TOOLS),
    "tools_no_system": dict(messages=[U2], tools=TOOLS),
    "tool_call_dict_args": dict(messages=[SYS, U2, A_CALL, TOOL_RES, A_FINAL], tools=TOOLS),
    "tool_call_string_args": dict(messages=[
        SYS, U2,
        {"role": "assistant", "content": "", "tool_calls": [tool_call("get_weather", CALL_ARGS, as_string=True)]},
        TOOL_RES,
    ], tools=TOOLS),
    "tool_call_with_content": dict(messages=[
        U2,
        {"role": "assistant", "content": "Let me check.", "tool_calls": [tool_call("get_weather", {"location": "Tokyo"})]},
        TOOL_RES,
    ], tools=TOOLS),
    "parallel_tool_calls": dict(messages=[
        SYS, {"role": "user", "content": "Weather in Paris and search for news"},
        {"role": "assistant", "content": "", "tool_calls": [
            tool_call("get_weather", {"location": "Paris"}, call_id="call00001"),
            tool_call("web_search", {"query": "news 日本", "top_k": 5}, call_id="call00002"),
        ]},
        {"role": "tool", "tool_call_id": "call00001", "content": "sunny, 25°C"},
        {"role": "tool", "tool_call_id": "call00002", "content": "[\"headline 1\", \"headline 2\"]"},
    ], tools=TOOLS),
    "reasoning_content_tool_loop": dict(messages=[
        SYS, U2,
        {"role": "assistant", "content": "", "reasoning_content": "The user wants Tokyo weather.\nCall the tool.",
         "tool_calls": [tool_call("get_weather", {"location": "Tokyo"})]},
        TOOL_RES,
        {"role": "assistant", "content": "It is 21°C.", "reasoning_content": "Summarize the result."},
    ], tools=TOOLS),
    "reasoning_content_old_turn": dict(messages=[
        U1, {"role": "assistant", "content": "Sunny.", "reasoning_content": "Old reasoning, dropped later."}, U2,
    ]),
    "think_in_content": dict(messages=[
        U1, {"role": "assistant", "content": "<think>\nLet me think about Paris.\n</think>\n\nIt is sunny."},
        U2, {"role": "assistant", "content": "<think>\nTokyo now.\n</think>\n\nRainy."},
    ]),
    "enable_thinking_false": dict(messages=[SYS, U1], kwargs={"enable_thinking": False}),
    "enable_thinking_true": dict(messages=[U1, A1, U2], kwargs={"enable_thinking": True}),
    "content_list": dict(messages=[
        {"role": "system", "content": [{"type": "text", "text": "System from parts."}]},
        {"role": "user", "content": [{"type": "text", "text": "Part one. "}, {"type": "text", "text": "Part two."}]},
    ]),
    "tool_result_list": dict(messages=[
        U2, {"role": "assistant", "content": "", "tool_calls": [tool_call("get_weather", {"location": "Tokyo"})]},
        {"role": "tool", "tool_call_id": "call00001", "content": [{"type": "text", "text": "21 degrees"}]},
    ], tools=TOOLS),
    "assistant_null_content_tool_call": dict(messages=[
        U2, {"role": "assistant", "content": None, "tool_calls": [tool_call("get_weather", {"location": "Tokyo"})]},
        TOOL_RES,
    ], tools=TOOLS),
    "ipython_role": dict(messages=[
        U2, {"role": "assistant", "tool_calls": [tool_call("get_weather", {"location": "Tokyo"})]},
        {"role": "ipython", "content": {"temperature": 21, "ok": True}},
    ], tools=TOOLS),
    "llama_builtin_tools": dict(messages=[
        SYS, {"role": "user", "content": "Search the web for tqlm"},
        {"role": "assistant", "tool_calls": [tool_call("brave_search", {"query": "tqlm"})]},
        {"role": "ipython", "content": "no results"},
    ], kwargs={"builtin_tools": ["brave_search", "wolfram_alpha", "code_interpreter"], "date_string": "01 Jan 2025"}),
    "tools_in_system_message": dict(messages=[SYS, U2], tools=TOOLS, kwargs={"tools_in_user_message": False}),
    "minimax_identity_and_date": dict(messages=[
        {"role": "system", "content": "", "current_date": "2025-11-01", "current_location": "Shanghai"}, U1,
    ], kwargs={"model_identity": "You are MiniMax-M2."}),
    "tool_without_call": dict(messages=[U1, {"role": "tool", "content": "orphan"}]),
    "non_alternating": dict(messages=[U1, U2]),
    "empty_messages": dict(messages=[]),
}
# Cases rendered with add_generation_prompt both true and false; the rest use the natural value.
BOTH_AGP = {"system_user", "user_only", "multi_turn", "tools_user", "tool_call_dict_args", "unicode",
            "enable_thinking_false", "reasoning_content_tool_loop", "content_list"}


def natural_agp(case):
    msgs = CASES[case]["messages"]
    return not msgs or msgs[-1]["role"] != "assistant"


PARAMS = []
for tname in TEMPLATE_NAMES:
    for cname in CASES:
        for agp in ([True, False] if cname in BOTH_AGP else [natural_agp(cname)]):
            PARAMS.append(pytest.param(tname, cname, agp, id=f"{tname}-{cname}-{'agp' if agp else 'noagp'}"))


def run_tqlm(tqlm_bin, model_dir, case, agp, tmp_path):
    msgs = tmp_path / "messages.json"
    msgs.write_text(json.dumps(case["messages"], ensure_ascii=False), encoding="utf-8")
    cmd = [tqlm_bin, "chat-template", str(model_dir), "--messages", str(msgs)]
    if case.get("tools") is not None:
        tools = tmp_path / "tools.json"
        tools.write_text(json.dumps(case["tools"], ensure_ascii=False), encoding="utf-8")
        cmd += ["--tools", str(tools)]
    if agp:
        cmd.append("--add-generation-prompt")
    if case.get("kwargs"):
        cmd += ["--kwargs", json.dumps(case["kwargs"], ensure_ascii=False)]
    return subprocess.run(cmd, capture_output=True, timeout=60)


def model_dir_for(tmp_path, tname):
    """A model directory whose tokenizer_config.json carries the template and special tokens."""
    d = tmp_path / "model"
    d.mkdir()
    cfg = {"chat_template": (TEMPLATES / f"{tname}.jinja").read_text(encoding="utf-8"), **SPECIAL[tname]}
    (d / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    return d


@pytest.mark.parametrize("tname,cname,agp", PARAMS)
def test_template_byte_identical(tqlm_bin, tmp_path, tname, cname, agp):
    case = CASES[cname]
    source = (TEMPLATES / f"{tname}.jinja").read_text(encoding="utf-8")
    try:
        expected = oracle_render(source, copy.deepcopy(case["messages"]), copy.deepcopy(case.get("tools")), agp,
                                 case.get("kwargs", {}), SPECIAL[tname])
        expected_error = None
    except Exception as e:  # jinja2 raised: tqlm must fail as well
        expected, expected_error = None, e
    res = run_tqlm(tqlm_bin, model_dir_for(tmp_path, tname), case, agp, tmp_path)
    stderr = res.stderr.decode("utf-8", "replace")
    if expected_error is not None:
        assert res.returncode != 0, (
            f"jinja2 raised {type(expected_error).__name__}: {expected_error}\n"
            f"but tqlm rendered:\n{res.stdout.decode('utf-8', 'replace')}")
        if type(expected_error) is TemplateError:  # raise_exception(): the template's own message surfaces
            assert str(expected_error) in stderr, f"expected message {str(expected_error)!r} in {stderr!r}"
        return
    assert res.returncode == 0, f"tqlm failed where jinja2 rendered:\n{stderr}\n--- expected ---\n{expected}"
    got = res.stdout
    want = expected.encode("utf-8")
    if got != want:
        diff = "\n".join(difflib.unified_diff(
            want.decode("utf-8").splitlines(), got.decode("utf-8", "replace").splitlines(),
            "jinja2", "tqlm", lineterm=""))
        pytest.fail(f"output differs ({len(want)} vs {len(got)} bytes):\n{diff}\nwant={want!r}\ngot ={got!r}")


# ---------------------------------------------------------------------------------------------------------
# Template loading paths.
def test_chat_template_jinja_file_and_named_list(tqlm_bin, tmp_path):
    msgs = tmp_path / "m.json"
    msgs.write_text(json.dumps([U1]), encoding="utf-8")
    src = (TEMPLATES / "smollm2-instruct.jinja").read_text(encoding="utf-8")
    want = oracle_render(src, [U1], None, True, {}, {})

    d1 = tmp_path / "jinja_file"
    d1.mkdir()
    (d1 / "chat_template.jinja").write_text(src, encoding="utf-8")
    r = subprocess.run([tqlm_bin, "chat-template", str(d1), "--messages", str(msgs), "--add-generation-prompt"],
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == want.encode()

    d2 = tmp_path / "named_list"
    d2.mkdir()
    cfg = {"chat_template": [{"name": "tool_use", "template": "TOOLS"}, {"name": "default", "template": src}]}
    (d2 / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    r = subprocess.run([tqlm_bin, "chat-template", str(d2), "--messages", str(msgs), "--add-generation-prompt"],
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == want.encode()

    # --chat-template FILE overrides the model's own template
    r = subprocess.run([tqlm_bin, "chat-template", str(d2), "--messages", str(msgs),
                        "--chat-template", str(TEMPLATES / "qwen2.5-instruct.jinja")], capture_output=True)
    assert r.returncode == 0, r.stderr
    want_q = oracle_render((TEMPLATES / "qwen2.5-instruct.jinja").read_text(encoding="utf-8"), [U1], None, False, {}, {})
    assert r.stdout == want_q.encode()


def test_missing_template_suggests_flag(tqlm_bin, tmp_path):
    msgs = tmp_path / "m.json"
    msgs.write_text(json.dumps([U1]), encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}), encoding="utf-8")
    r = subprocess.run([tqlm_bin, "chat-template", str(tmp_path), "--messages", str(msgs)], capture_output=True)
    assert r.returncode != 0
    assert b"--chat-template FILE" in r.stderr


def test_syntax_error_names_line(tqlm_bin, tmp_path):
    msgs = tmp_path / "m.json"
    msgs.write_text(json.dumps([U1]), encoding="utf-8")
    bad = tmp_path / "bad.jinja"
    bad.write_text("{% for m in messages %}\n{{ m.content }}\n{% if %}\n{% endfor %}\n", encoding="utf-8")
    r = subprocess.run([tqlm_bin, "chat-template", str(tmp_path), "--messages", str(msgs), "--chat-template", str(bad)],
                       capture_output=True)
    assert r.returncode != 0
    assert b"line 3" in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------------------
# Feature snippets: small templates over one context, each byte-identical to jinja2 (or failing in both).
CTX = {
    "s": "  Hello, World!  ",
    "u": "héllo wörld ÅSTRÖM ǅ straße",
    "n": 7, "neg": -7, "f": 2.5, "big": 12345678901234, "tiny": 1.5e-7, "huge": 1e22, "z": 0,
    "t": True, "no": False, "nil": None,
    "l": [3, 1, 2], "words": ["banana", "Apple", "cherry", "apple"], "empty": [],
    "d": {"b": 2, "a": 1, "c": {"x": [1, {"y": "deep"}]}},
    "people": [{"name": "Ann", "age": 31, "role": "user"}, {"name": "bob", "age": 25, "role": "assistant"},
               {"name": "Cy", "age": 31, "role": "user", "admin": True}],
    "text": "line one\nline two\n\nline four",
    "q": "it's \"quoted\" \\ <b>&",
}
SNIPPETS = [
    # whitespace control, trim_blocks / lstrip_blocks, comments, raw
    "a\n  {% if t %}\n  yes\n  {% endif %}\nb",
    "a  {%- if t -%}  yes  {%- endif -%}  b",
    "  {%+ if t %}x{% endif %}\n",
    "{% if t +%}\nkeep newline{% endif %}",
    "x {# comment #}\n  {#- stripped -#}  y\n  {# lstripped #}\nz",
    "{{ 'a' -}}\n\n   {{- 'b' }}  {{ 'c' }}\n",
    "{% raw %}{{ not rendered }}{% endraw %}\n  {%- raw -%}  {% x %}  {%- endraw %}",
    "line\n    {% for i in l %}\n    - {{ i }}\n    {% endfor %}\nend\n",
    "{% for i in l %}{{ i }}{% if not loop.last %}, {% endif %}{% endfor %}\n\n",
    "\t{% set x = 1 %}\n\t{{ x }}\n",
    # literals and printing
    "{{ 'a\\tb\\n\\x41\\u00e9\\U0001F600\\\\ \\q' }}|{{ \"it's\" }}|{{ 'con' 'cat' }}",
    "{{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1.5e3 }} {{ 2.0 if false else 3 }} {{ 1e3 }}",
    "{{ [1, 'two', none, true, 2.0, [3], {'k': 'v'}] }} {{ (1,) }} {{ (1, 2) }} {{ () }} {{ {} }}",
    "{{ none }} {{ True }} {{ false }} {{ nil }} {{ f }} {{ tiny }} {{ huge }} {{ big }} {{ 1/3 }} {{ 10/2 }}",
    "{{ q }} {{ [q] }} {{ ['\\n', \"a'b\", 'a\"b', 'é😀\\u200b'] }}",
    "{{ d }} {{ people[0] }} {{ d.items() | list }}",
    # arithmetic and operators
    "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7.5 % 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7 / 2 }}",
    "{{ 1 + 2 * 3 - 4 }} {{ (1 + 2) * 3 }} {{ -n }} {{ +n }} {{ - 2 ** 2 }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ l + [9] }}",
    "{{ 'a' ~ 1 ~ none ~ undefined_var ~ [1] }} {{ n ~ f }}",
    "{{ 1 < 2 < 3 }} {{ 3 > 2 > 5 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 != 2 }}",
    "{{ 2 in l }} {{ 5 not in l }} {{ 'ell' in s }} {{ 'a' in d }} {{ not 'z' in d }} {{ 'x' in undefined_var }}",
    "{{ t and 'yes' }} {{ no or 'fallback' }} {{ nil or empty or 'last' }} {{ 0 and 1 }} {{ not nil }}",
    "{{ 'y' if t else 'n' }} {{ 'y' if no }}|{{ 'a' if no else 'b' if t else 'c' }}",
    # tests
    "{{ n is odd }} {{ n is even }} {{ 9 is divisibleby 3 }} {{ n is number }} {{ t is number }} {{ t is integer }}"
    " {{ n is integer }} {{ f is float }} {{ t is boolean }} {{ nil is none }} {{ s is string }} {{ d is mapping }}",
    "{{ l is iterable }} {{ s is iterable }} {{ d is iterable }} {{ n is iterable }} {{ undefined_var is iterable }}"
    " {{ l is sequence }} {{ d is sequence }} {{ n is sequence }} {{ range is callable }} {{ s is callable }}",
    "{{ x is defined }} {{ x is undefined }} {{ d.zz is defined }} {{ n is not none }} {{ no is false }} {{ t is true }}"
    " {{ 0 is false }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 3 is eq 3 }} {{ 3 is equalto 4 }} {{ 2 is in l }}"
    " {{ 3 is gt 2 }} {{ 3 is le 2 }} {{ 'trim' is filter }} {{ 'odd' is test }}",
    # attribute / item access, slicing
    "{{ d.a }} {{ d['b'] }} {{ d.c.x[1].y }} {{ d['c']['x'][0] }} {{ l[0] }} {{ l[-1] }} {{ l[5] }}| {{ d.nope }}|"
    " {{ people.0.name }} {{ s.nope }}| {{ nil.attr }}|",
    "{{ l[::-1] }} {{ l[1:] }} {{ l[:-1] }} {{ l[::2] }} {{ l[5:] }} {{ l[-2:] }} {{ u[::-1] }} {{ u[1:4] }} {{ u[-3:] }}"
    " {{ 'abcdef'[1:5:2] }} {{ 'abcdef'[::-2] }} {{ l[1:2:] }}",
    "{{ d.keys() | list }} {{ d.values() | list | length }} {{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 5) }}"
    " {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
    # string methods
    "[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ 'xxhixx'.strip('x') }}][{{ '\\n\\nab\\n'.strip('\\n') }}]",
    "{{ s.upper() }} {{ s.lower() }} {{ u.upper() }} {{ u.lower() }} {{ u.title() }} {{ \"they're bob's\".title() }}"
    " {{ 'hELLO wORLD'.capitalize() }} {{ u.swapcase() }}",
    "{{ 'a,b,,c'.split(',') }} {{ '  a  b c '.split() }} {{ 'a b c d'.split(' ', 2) }} {{ 'a b c d'.rsplit(' ', 1) }}"
    " {{ '  x  y  '.split(none, 1) }} {{ '  x  y  '.rsplit(none, 1) }} {{ 'a\\nb\\r\\nc'.splitlines() }}",
    "{{ s.startswith('  He') }} {{ s.endswith('!  ') }} {{ s.startswith(('x', '  ')) }} {{ 'hello'.find('l') }}"
    " {{ 'hello'.rfind('l') }} {{ 'héllo'.find('l') }} {{ 'hello'.find('z') }} {{ 'banana'.count('an') }}",
    "{{ 'a-b-c'.replace('-', '+') }} {{ 'a-b-c'.replace('-', '', 1) }} {{ ', '.join(['x', 'y']) }}"
    " {{ '{} and {}'.format('A', 'B') }} {{ '{0}{1}{0}'.format('x', 'y') }} {{ '{name}!'.format(name='N') }}",
    "{{ '42'.isdigit() }} {{ 'ab'.isalpha() }} {{ 'a1'.isalnum() }} {{ '  '.isspace() }} {{ 'Ab'.isupper() }}"
    " {{ '5'.zfill(3) }} {{ 'ab'.center(6, '*') }} {{ 'ab'.ljust(4) }}| {{ 'a=b=c'.partition('=') }}"
    " {{ 'prefix_x'.removeprefix('prefix_') }}",
    # filters
    "{{ s | trim }}|{{ s | length }} {{ u | length }} {{ l | count }} {{ d | length }} {{ undefined_var | length }}",
    "{{ undefined_var | default('dflt') }} {{ '' | default('dflt') }} {{ '' | default('dflt', true) }}"
    " {{ nil | d('x', boolean=true) }} {{ 0 | default(5) }}",
    "{{ l | first }} {{ l | last }} {{ 'abc' | first }} {{ empty | first }}| {{ l | join('-') }} {{ l | join }}"
    " {{ people | join(', ', attribute='name') }} {{ [1, none, 'x'] | join('|') }}",
    "{{ 'hello world-foo(bar' | title }} {{ 'hELLO' | capitalize }} {{ 'ab' | upper }} {{ 'AB' | lower }}"
    " {{ q | replace('\"', \"'\") }} {{ 'aaa' | replace('a', 'b', 2) }}",
    "{{ d | tojson }} {{ people | tojson }} {{ u | tojson }} {{ q | tojson }} {{ [f, tiny, huge, 1.0, -0.0, big] | tojson }}",
    "{{ d | tojson(indent=2) }}\n{{ people[0] | tojson(indent='\\t', sort_keys=true) }}\n{{ l | tojson(indent=0) }}"
    "\n{{ {} | tojson(indent=2) }} {{ [] | tojson(indent=2) }} {{ [[]] | tojson(indent=1) }}",
    "{{ u | tojson(ensure_ascii=true) }} {{ '😀' | tojson(ensure_ascii=True) }} {{ d | tojson(separators=(',', ':')) }}"
    " {{ nil | tojson }} {{ t | tojson }} {{ 'a\\x01\\x7f\\u2028' | tojson }}",
    "{{ 42 | string }} {{ [1, 'a'] | string }} {{ '42' | int + 1 }} {{ '3.9' | int }} {{ 'x' | int }} {{ 'x' | int(7) }}"
    " {{ 3.99 | int }} {{ '0x1A' | int(0, 16) }} {{ '2.5' | float }} {{ 'y' | float }} {{ 3 | float }} {{ t | int }}",
    "{{ 'abc' | list }} {{ d | list }} {{ undefined_var | list }} {{ d | items | list }} {{ undefined_var | items | list }}",
    "{{ people | map(attribute='name') | list }} {{ people | map(attribute='admin', default=false) | list }}"
    " {{ words | map('upper') | list }} {{ ['  a ', 'b '] | map('trim') | join(',') }}",
    "{{ people | selectattr('age', 'equalto', 31) | map(attribute='name') | list }}"
    " {{ people | rejectattr('role', '==', 'user') | map(attribute='name') | list }}"
    " {{ people | selectattr('admin') | list | length }} {{ l | select('odd') | list }} {{ l | reject('odd') | list }}"
    " {{ [0, 1, '', 'x', none] | select | list }} {{ l | select('greaterthan', 1) if false else l | select('gt', 1) | list }}",
    "{{ words | sort }} {{ words | sort(case_sensitive=true) }} {{ words | sort(reverse=true) }}"
    " {{ people | sort(attribute='age') | map(attribute='name') | join }} {{ l | sort }} {{ words | unique | list }}"
    " {{ words | unique(case_sensitive=true) | list }}",
    "{{ d | dictsort }} {{ {'b': 1, 'A': 2, 'a': 3} | dictsort }} {{ {'x': 2, 'y': 1} | dictsort(by='value') }}",
    "{{ text | indent }}|{{ text | indent(2, true) }}|{{ text | indent('> ', blank=true) }}|{{ 'one' | indent(first=true) }}",
    "{{ q | escape }} {{ q | e }} {{ q | safe }} {{ -3 | abs }} {{ -2.5 | abs }} {{ 2.5 | round }} {{ 3.5 | round }}"
    " {{ 2.675 | round(2) }} {{ 2.1 | round(0, 'ceil') }} {{ 2.9 | round(method='floor') }} {{ 7 | round }}",
    "{{ 'a b  c\\nd' | wordcount }} {{ l | sum }} {{ people | sum(attribute='age') }} {{ l | max }} {{ l | min }}"
    " {{ words | max }} {{ l | reverse | list }} {{ 'abc' | reverse }} {{ '%s-%d' | format('a', 3) }} {{ d | attr('a') }}",
    # loops
    "{% for p in people %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.length }}"
    "/{{ loop.first }}/{{ loop.last }}/{{ loop.previtem.name if loop.previtem is defined else '-' }}"
    "/{{ loop.nextitem.name if loop.nextitem is defined else '-' }}/{{ loop.cycle('a', 'b') }};{% endfor %}",
    "{% for p in people if p.role == 'user' %}{{ p.name }}{{ loop.index }}{{ loop.length }}{% else %}none{% endfor %}"
    "|{% for x in empty %}x{% else %}empty{% endfor %}|{% for x in undefined_var %}x{% else %}undef{% endfor %}",
    "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 5 %}{% break %}{% endif %}{{ x }}"
    "{% endfor %}|{% for a, b in [(1, 2), [3, 4]] %}{{ a + b }}{% endfor %}|{% for c in 'hé' %}[{{ c }}]{% endfor %}",
    "{% for i in range(3) %}{% for j in range(i) %}{{ i }}{{ j }}{{ loop.index }} {% endfor %}{{ loop.index }};"
    "{% endfor %}{{ range(2, 10, 3) | list }} {{ range(5, 0, -2) | list }}",
    "{% for k in d %}{{ k }}{% endfor %} {% for x in people[::-1] %}{{ x.name }}{% endfor %}",
    # scoping, set, namespace
    "{% set x = 1 %}{% for i in l %}{% set x = i %}{{ x }}{% endfor %}{{ x }}",
    "{% set ns = namespace(total=0, names=[]) %}{% for p in people %}{% set ns.total = ns.total + p.age %}"
    "{% set ns.names = ns.names + [p.name] %}{% endfor %}{{ ns.total }} {{ ns.names }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set t1 = 1, 2 %}{{ t1 }} {% set ns2 = namespace({'k': 3}, j=4) %}{{ ns2.k }}{{ ns2.j }}",
    "{% set block %}\n  inner {{ n }}\n{% endset %}[{{ block }}] {% set up | upper %}shout{% endset %}{{ up }}",
    "{% if t %}{% set inner = 'set in if' %}{% endif %}{{ inner }}",
    "{{ dict(a=1, b='x') }} {{ dict({'z': 1}, y=2) }}",
    # macros / call / filter blocks
    "{% macro greet(name, greeting='Hello', punct='!') %}{{ greeting }}, {{ name }}{{ punct }}{% endmacro %}"
    "{{ greet('Ann') }} {{ greet('Bob', 'Hi') }} {{ greet('Cy', punct='?') }} {{ greet() }}",
    "{% macro outer_var() %}{{ n }}-{{ later }}{% endmacro %}{% set later = 'L' %}{{ outer_var() }}",
    "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ n }}{% endcall %}"
    "{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}"
    "{% call(x) each(l) %}({{ x * 2 }}){% endcall %}",
    "{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}",
    "{% filter upper %}filtered {{ s | trim }}{% endfilter %} {% filter trim | replace(' ', '_') %}  a b  {% endfilter %}",
    "{% macro v(content) %}{% if content is string %}{{ content }}{% else %}{% for c in content %}{{ c.text }}"
    "{% endfor %}{% endif %}{% endmacro %}{% set r = v([{'text': 'a'}, {'text': 'b'}]) %}{{ r ~ '|' ~ r.upper() }}",
    # misc from real templates
    "{{ strftime_now('%Y') | length }} {{ raise_exception is defined }} {{ namespace is callable }}",
    "{%- set x = [1,2,3] -%}\n{{- x | length -}}\n",
    "{{ 'x' }}\n",
    "{{ ({'a': 1}|items|list)[0] }} {{ (l|sort)[0] }} {{ 'a' 'b' | upper }}",
]
SNIPPET_ERRORS = [
    "{{ l.append(4) }}",
    "{{ d.update({'z': 1}) }}",
    "{{ undefined_var.attr }}",
    "{{ undefined_var['k'] }}",
    "{{ undefined_var + 1 }}",
    "{{ 'a' + 1 }}",
    "{{ 1 / 0 }}",
    "{{ nil | tojson if false else undefined_var | tojson }}",
    "{{ raise_exception('custom failure from template') }}",
    "{% set x = 1 %}{% set x.attr = 2 %}",
    "{{ n | nosuchfilter }}",
    "{{ n is nosuchtest }}",
    "{% for %}",
    "{% if t %}unclosed",
    "{{ 'unterminated }}",
    "{{ (1, 2 }}",
    "{% endfor %}",
    "{% include 'x' %}",
    "{{ undefined_fn() }}",
    "{{ n() }}",
    "{{ 'abc'.nosuchmethod() }}",
]


def _render_snippet(tqlm_bin, tmp_path, source):
    tpl = tmp_path / "snippet.jinja"
    tpl.write_text(source, encoding="utf-8")
    msgs = tmp_path / "m.json"
    msgs.write_text("[]", encoding="utf-8")
    cmd = [tqlm_bin, "chat-template", str(tmp_path), "--messages", str(msgs), "--chat-template", str(tpl),
           "--kwargs", json.dumps(CTX, ensure_ascii=False)]
    return subprocess.run(cmd, capture_output=True, timeout=60)


@pytest.mark.parametrize("idx", range(len(SNIPPETS)))
def test_snippet_byte_identical(tqlm_bin, tmp_path, idx):
    source = SNIPPETS[idx]
    want = oracle_render(source, [], None, False, copy.deepcopy(CTX), {}).encode("utf-8")
    res = _render_snippet(tqlm_bin, tmp_path, source)
    assert res.returncode == 0, f"tqlm failed on {source!r}:\n{res.stderr.decode()}\nwant={want!r}"
    assert res.stdout == want, f"snippet {source!r}\nwant={want!r}\ngot ={res.stdout!r}"


@pytest.mark.parametrize("idx", range(len(SNIPPET_ERRORS)))
def test_snippet_errors_in_both(tqlm_bin, tmp_path, idx):
    source = SNIPPET_ERRORS[idx]
    with pytest.raises(Exception) as exc:
        oracle_render(source, [], None, False, copy.deepcopy(CTX), {})
    res = _render_snippet(tqlm_bin, tmp_path, source)
    assert res.returncode != 0, f"jinja2 raised {exc.value!r} but tqlm rendered {res.stdout!r}"
    if type(exc.value) is TemplateError:
        assert str(exc.value).encode() in res.stderr
