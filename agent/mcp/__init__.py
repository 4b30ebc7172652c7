"""The planner as an MCP server (`python -m agent mcp`): the same gated, budgeted planning and
exactly-once apply as Slack, for MCP clients, acting with the caller's own Taiga token."""
