"""The official openai client against genscope's example servers (tests/real_clients.rs).

    python openai_calls.py chat BASE_URL MODEL      # 2 plain and 3 streamed chat completions
    python openai_calls.py embeddings BASE_URL      # embeddings for a string and for a list

Prints one JSON object per call: what the client read (usage, content, vectors' sizes, and for
streams the time to the first content chunk as the client saw it, from just before the request).
With OTEL_EXPORTER_OTLP_ENDPOINT set, the client is traced with the OpenTelemetry Python SDK
(httpx instrumentation, OTLP/HTTP export) and prints its trace ids too.
"""

import json
import os
import sys
import time

import openai


def tracer_provider():
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "openai-python-client"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    return provider


def main():
    kind, base_url = sys.argv[1], sys.argv[2]
    provider = tracer_provider()
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    out = []
    if kind == "chat":
        model = sys.argv[3]
        for n in (3, 5):
            r = client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "count the words of this prompt please"}],
                max_tokens=n,
            )
            out.append({"kind": "chat", "usage": r.usage.model_dump(),
                        "content": r.choices[0].message.content,
                        "finish_reason": r.choices[0].finish_reason})
        for n in (2, 4, 6):
            started = time.monotonic()
            first = None
            content, usage, reason = "", None, None
            stream = client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "stream a few tokens"}],
                max_tokens=n,
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage.model_dump()
                for c in chunk.choices:
                    if c.delta.content:
                        if first is None:
                            first = time.monotonic() - started
                        content += c.delta.content
                    if c.finish_reason:
                        reason = c.finish_reason
            out.append({"kind": "stream", "usage": usage, "content": content,
                        "finish_reason": reason, "ttft": first})
    elif kind == "embeddings":
        model = "all-MiniLM-L6-v2"
        one = client.embeddings.create(model=model, input="A man is playing guitar")
        out.append({"kind": "embeddings", "inputs": 1, "usage": one.usage.model_dump(),
                    "lengths": [len(d.embedding) for d in one.data],
                    "first": one.data[0].embedding[:4]})
        many = client.embeddings.create(
            model=model, input=["A man is playing guitar", "The cat sits outside", "hello"])
        out.append({"kind": "embeddings", "inputs": 3, "usage": many.usage.model_dump(),
                    "lengths": [len(d.embedding) for d in many.data],
                    "first": many.data[0].embedding[:4]})
        floats = client.embeddings.create(model=model, input="A man is playing guitar",
                                          encoding_format="float")
        out.append({"kind": "embeddings", "inputs": 1, "usage": floats.usage.model_dump(),
                    "lengths": [len(d.embedding) for d in floats.data],
                    "first": floats.data[0].embedding[:4]})
        try:
            client.embeddings.create(model="text-embedding-3-small", input="x")
            out.append({"kind": "error", "status": None})
        except openai.NotFoundError as e:
            out.append({"kind": "error", "status": e.status_code, "code": e.code})
    if provider is not None:
        provider.force_flush()
        provider.shutdown()
    for o in out:
        print(json.dumps(o))


if __name__ == "__main__":
    main()
