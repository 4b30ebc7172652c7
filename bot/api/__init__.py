"""The HTTP API, `POST /agent/run`: the original service's one call that proposes a plan from the
minutes and applies it (calling counts as approval), served by the host in `bot.server`.

    routes.py        the route: checks, the request timeout, errors with refreshed tokens
    dependencies.py  request checks: the Bearer API key and the Idempotency-Key header
    idempotency.py   retry safety: the plan stored under a hashed Idempotency-Key
    target.py        what to plan: the target sprint and the existing story it concerns
    run.py           one run: plan, then apply through `agent.service`, or finish a stored plan
    responses.py     the answer: what was proposed, or created in Taiga with links
    errors.py        plain-sentence error bodies and the app's error handlers
    models.py        request and response bodies
"""
