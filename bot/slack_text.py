"""Slack message text in and out.

Incoming text (an event's `text`, a thread's replies) is Slack's escaped mrkdwn: `&amp; &lt;
&gt;` and control sequences in angle brackets (`<@U123>`, `<#C123|general>`, `<!here>`,
`<https://x|label>`). `decode_slack_text` turns it into plain text for the model and Taiga.

Outgoing text that came from people or the model goes through `escape_mrkdwn` before it is put
into mrkdwn, so it can neither ping anyone, forge a link, nor restyle the message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "ELLIPSIS",
    "decode_slack_text",
    "escape_mrkdwn",
    "mentioned_user_ids",
    "one_line",
    "truncate",
]

ELLIPSIS = "…"

_CONTROL = re.compile(r"<([^<>\n]*)>")
_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")
_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
_BROADCASTS = {"here", "channel", "everyone"}


def _unescape(text: str) -> str:
    # One pass, so "&amp;lt;" becomes "&lt;" and not "<".
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)


def _decode_control(body: str, user_names: Mapping[str, str]) -> str:
    target, _, label = body.partition("|")
    label = _unescape(label)
    if target.startswith("@"):
        user_id = target[1:]
        name = user_names.get(user_id) or label.lstrip("@") or user_id
        return f"@{name}"
    if target.startswith("#"):
        return f"#{label or target[1:]}"
    if target.startswith("!"):
        return _decode_special(target[1:], label)
    return _decode_link(_unescape(target), label)


def _decode_special(command: str, label: str) -> str:
    name, _, argument = command.partition("^")
    if name in _BROADCASTS:
        return f"@{name}"
    if name == "subteam":
        return label if label.startswith("@") else f"@{label or argument or 'team'}"
    return label  # <!date^…|fallback> and other commands: their fallback text


def _decode_link(url: str, label: str) -> str:
    shown = url.removeprefix("mailto:")
    if not label or label in (url, shown):
        return shown
    return f"{label} ({shown})"


def decode_slack_text(text: str, user_names: Mapping[str, str]) -> str:
    """Slack's escaped message text → plain text.

    `user_names` maps user ids to display names (see `mentioned_user_ids`); an unknown id falls
    back to the label Slack sent, else the id. Broadcasts become the plain words `@here`,
    `@channel`, `@everyone`; a link shows both its label and its real target.
    """
    parts: list[str] = []
    last = 0
    for match in _CONTROL.finditer(text):
        parts.append(_unescape(text[last : match.start()]))
        parts.append(_decode_control(match.group(1), user_names))
        last = match.end()
    parts.append(_unescape(text[last:]))
    return "".join(parts)


def mentioned_user_ids(text: str) -> set[str]:
    """The user ids mentioned as `<@U…>` in Slack's escaped text."""
    return set(_USER_MENTION.findall(text))


# Look-alike characters that read the same but do not trigger mrkdwn styling.
# (asterisk operator, tilde operator, modifier letter grave accent, modifier letter low macron,
# single right-pointing angle quotation mark)
_STYLE_LOOKALIKES = str.maketrans({"*": "\u2217", "~": "\u223c", "`": "\u02cb"})
_UNDERSCORE_LOOKALIKE = "\u02cd"
_QUOTE_LOOKALIKE = "\u203a"
_EMPHASIS_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_BROADCAST_WORD = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)
_QUOTE_START = re.compile(r"^(\s*)&gt;", re.MULTILINE)


def escape_mrkdwn(text: str) -> str:
    """Make user-derived text inert inside mrkdwn, keeping it readable.

    `& < >` are escaped (no `<!channel>`, `<@U…>` or `<url|label>` can form); `* ~ `` `
    become look-alikes and emphasis underscores a low macron (no bold, strike, code or italics;
    `snake_case` stays as is); a line-leading `>` becomes an angle quote (no block quote); `@here`,
    `@channel`, `@everyone` get a zero-width joiner so they never broadcast.
    """
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = escaped.translate(_STYLE_LOOKALIKES)
    escaped = _EMPHASIS_UNDERSCORE.sub(_UNDERSCORE_LOOKALIKE, escaped)
    escaped = _QUOTE_START.sub(lambda m: f"{m.group(1)}{_QUOTE_LOOKALIKE}", escaped)
    return _BROADCAST_WORD.sub(lambda m: f"@\u2060{m.group(1)}", escaped)


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters at a word boundary, ending with "…" when cut.

    A word is split only when it alone fills more than half the room (a long URL, say).
    Safe on escaped mrkdwn: never splits an `&amp;`-style entity.
    """
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    cut = text[: limit - 1]
    if not text[limit - 1].isspace():
        space = cut.rfind(" ")
        if space >= len(cut) // 2:
            cut = cut[:space]
    amp = cut.rfind("&", max(0, len(cut) - 4))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut.rstrip() + ELLIPSIS


def one_line(text: str) -> str:
    """Collapse whitespace (newlines included) to single spaces."""
    return " ".join(text.split())
