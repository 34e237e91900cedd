"""The official OpenAI and Anthropic Python SDKs, pointed at a running gateway by base URL only,
must work unchanged: plain and streamed answers, tool calls, embeddings, the model list, token
counting and errors. Usage: SWITCHBOARD_URL=http://127.0.0.1:PORT SWITCHBOARD_KEY=... python3 sdk_check.py
(the gateway serves the offline demo: model `demo` behind the built-in mock provider)."""

import os
import sys

import anthropic
import openai

URL = os.environ["SWITCHBOARD_URL"]
KEY = os.environ["SWITCHBOARD_KEY"]
failures = []


def check(name, condition, detail=""):
    print(("ok   " if condition else "FAIL ") + name + (f": {detail}" if detail and not condition else ""))
    if not condition:
        failures.append(name)


oa = openai.OpenAI(base_url=f"{URL}/v1", api_key=KEY, max_retries=0)
r = oa.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Hello"}])
check("openai chat", r.choices[0].message.content == "echo: Hello", r)
check("openai usage", r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0, r.usage)

chunks = list(oa.chat.completions.create(model="demo", stream=True, stream_options={"include_usage": True},
                                         messages=[{"role": "user", "content": "Hello"}]))
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
check("openai stream", text == "echo: Hello", text)
check("openai stream usage", chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0, chunks[-1])

tools = [{"type": "function", "function": {"name": "get_weather",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
r = oa.chat.completions.create(model="demo", tools=tools, tool_choice="required",
                               messages=[{"role": "user", "content": "Weather?"}])
calls = r.choices[0].message.tool_calls or []
check("openai tool call", len(calls) == 1 and calls[0].function.name == "get_weather"
      and r.choices[0].finish_reason == "tool_calls", r)

e = oa.embeddings.create(model="demo", input=["a", "b"])
check("openai embeddings", len(e.data) == 2 and len(e.data[0].embedding) > 0, e)
check("openai models", "demo" in [m.id for m in oa.models.list()])

try:
    oa.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    check("openai 404", False, "no error raised")
except openai.NotFoundError as err:
    check("openai 404", "nope" in str(err), err)

try:
    openai.OpenAI(base_url=f"{URL}/v1", api_key="wrong", max_retries=0).models.list()
    check("openai 401", False, "no error raised")
except openai.AuthenticationError:
    check("openai 401", True)

an = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0)
m = an.messages.create(model="demo", max_tokens=256, messages=[{"role": "user", "content": "Hello"}])
check("anthropic message", m.content[0].text == "echo: Hello" and m.stop_reason == "end_turn", m)
check("anthropic usage", m.usage.input_tokens > 0 and m.usage.output_tokens > 0, m.usage)

with an.messages.stream(model="demo", max_tokens=256, messages=[{"role": "user", "content": "Hello"}]) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
check("anthropic stream", text == "echo: Hello" and final.stop_reason == "end_turn", final)
check("anthropic stream usage", final.usage.output_tokens > 0, final.usage)

m = an.messages.create(model="demo", max_tokens=256, tool_choice={"type": "any"},
                       tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
                       messages=[{"role": "user", "content": "Weather?"}])
check("anthropic tool use", m.stop_reason == "tool_use" and m.content[-1].type == "tool_use"
      and m.content[-1].name == "get_weather", m)

count = an.messages.count_tokens(model="demo", messages=[{"role": "user", "content": "Hello world"}])
check("anthropic count_tokens", count.input_tokens > 0, count)

try:
    an.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    check("anthropic 404", False, "no error raised")
except anthropic.NotFoundError as err:
    check("anthropic 404", err.body["type"] == "error" and err.body["error"]["type"] == "not_found_error", err.body)

print(f"{len(failures)} failed" if failures else "all SDK checks passed")
sys.exit(1 if failures else 0)
