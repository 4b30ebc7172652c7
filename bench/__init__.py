"""Speed figures for Taiga Planner, measured against the loopback test peers.

`python -m bench` (or `make bench`) runs four bounded scenarios and prints a plain-text table:

1. propose: a 20-story x 5-task plan through the real `agent.loop.propose` (fake Anthropic,
   fake Taiga with injected latency): wall time, model calls, prefetch requests and depth;
2. apply: `agent.executor.apply_plan` of that plan (1 sprint + 20 stories + 100 tasks = 121
   POSTs) at several concurrencies: wall time, writes per second, round trips on the
   critical path;
3. `POST /agent/run` end to end (FastAPI app over httpx's ASGI transport, SQLite temp file);
4. the Slack ack: a signed `/taiga plan` to `/slack/events` until the HTTP answer, while the
   model is slow.

Everything runs on 127.0.0.1, with fixed counts and an overall time limit. Tests never assert
timings; this package only prints them.
"""
