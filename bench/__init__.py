"""Speed figures for Taiga Planner, measured against the loopback test peers.

`python -m bench` (or `make bench`) runs four bounded scenarios; each prints a plain-text table,
then its figures as JSON lines (`{"metric": …, "value": …, "unit": …}`, one per figure):

1. propose (`scenarios.py`): a 20-story x 5-task plan through the real `agent.loop.propose`
   (fake Anthropic, fake Taiga with injected latency): wall time, model and tool calls, depth;
2. apply (`apply.py`): `agent.executor.apply_plan` of 1x3, 3x3, 10x5 and 20x5 plans at 50 ms
   Taiga latency, one write at a time vs the adaptive limit, and against a throttling Taiga;
3. agent-run (`scenarios.py`): `POST /agent/run` of a 3x3 plan end to end (ASGI transport,
   SQLite temp file): latency and Taiga round trips deep;
4. server (`server.py`): `uvicorn bot.server:api` as a subprocess: start-up, idle and peak
   memory, 50 plans drafting at once, and the ack of a burst of 200 `/taiga plan`.

Everything runs on 127.0.0.1, with fixed counts and an overall time limit. Tests never assert
timings; this package only prints them.
"""
