from __future__ import annotations

import re

import pytest

from bot.slack_text import (
    decode_slack_text,
    escape_mrkdwn,
    mentioned_user_ids,
    one_line,
    truncate,
)

NAMES = {"U123": "Ada Lovelace", "W456": "Grace Hopper"}


@pytest.mark.parametrize(
    ("slack", "plain"),
    [
        ("fish &amp; chips &lt;3 &gt;_&lt;", "fish & chips <3 >_<"),
        ("&amp;lt; stays literal", "&lt; stays literal"),
        ("ask <@U123> and <@W456|grace>", "ask @Ada Lovelace and @Grace Hopper"),
        ("unknown <@U999|bob> and <@U998>", "unknown @bob and @U998"),
        ("see <#C123|general> and <#C124>", "see #general and #C124"),
        ("<!here> <!channel> <!everyone|@everyone>", "@here @channel @everyone"),
        ("ping <!subteam^S1|@backend> now", "ping @backend now"),
        ("<!date^1392734382^{date_pretty}|Feb 18, 2014>", "Feb 18, 2014"),
        (
            "docs: <https://x.example/a?b=1&amp;c=2|the docs>",
            "docs: the docs (https://x.example/a?b=1&c=2)",
        ),
        ("<https://x.example>", "https://x.example"),
        ("<https://x.example|https://x.example>", "https://x.example"),
        ("mail <mailto:a@b.example|a@b.example>", "mail a@b.example"),
        ("mail <mailto:a@b.example|Ada>", "mail Ada (a@b.example)"),
        ("label with &amp; <https://x.example|R&amp;D>", "label with & R&D (https://x.example)"),
    ],
)
def test_decode_slack_text(slack: str, plain: str) -> None:
    assert decode_slack_text(slack, NAMES) == plain


def test_mentioned_user_ids_finds_plain_and_labelled_mentions() -> None:
    text = "<@U123> met <@W456|grace>, not <#C1|general> or <!here> or @U777"

    assert mentioned_user_ids(text) == {"U123", "W456"}


def test_escape_mrkdwn_escapes_control_characters() -> None:
    assert escape_mrkdwn("a & b < c > d") == "a &amp; b &lt; c &gt; d"


def test_minutes_with_a_broadcast_and_a_forged_link_stay_inert_after_re_escaping() -> None:
    minutes = (
        "<!channel> sprint 6 minutes\n"
        "- login bug: see <https://evil.example/steal|https://good.example/ticket>\n"
        "- <@U123> owns *auth* &amp; `deploy`"
    )

    decoded = decode_slack_text(minutes, NAMES)
    shown = escape_mrkdwn(decoded)

    assert "https://good.example/ticket (https://evil.example/steal)" in decoded
    assert "<" not in shown and ">" not in shown  # no <!channel>, <@U…>, <url|label> can form
    assert not re.search(r"@(here|channel|everyone)\b", shown)
    assert "*auth*" not in shown and "`deploy`" not in shown
    assert "@Ada Lovelace" in shown
    assert "evil.example/steal" in shown  # the real target stays visible


@pytest.mark.parametrize(
    ("text", "forbidden"),
    [
        ("*bold*", "*"),
        ("~strike~", "~"),
        ("`code` and ```block```", "`"),
        ("_italic_ words", "_italic_"),
        ("> quoted line", "&gt;"),
        ("  > indented quote", "&gt;"),
        ("@here please", "@here"),
        ("@Channel", "@Channel"),
    ],
)
def test_escape_mrkdwn_neutralises_formatting(text: str, forbidden: str) -> None:
    assert forbidden not in escape_mrkdwn(text)


def test_escape_mrkdwn_keeps_ordinary_text_readable() -> None:
    text = "Fix snake_case names in user_profile.py (see #12) :tada: — 3 > 2 is true"

    escaped = escape_mrkdwn(text)

    assert escaped == "Fix snake_case names in user_profile.py (see #12) :tada: — 3 &gt; 2 is true"


def test_truncate_never_splits_an_entity() -> None:
    escaped = escape_mrkdwn("abc & def")  # "abc &amp; def"

    for limit in range(1, len(escaped) + 2):
        cut = truncate(escaped, limit)
        assert len(cut) <= limit
        assert not re.search(r"&(?!amp;|lt;|gt;)", cut), cut


def test_truncate_marks_a_cut_with_an_ellipsis() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("a longer text", 6) == "a lon…"
    assert one_line(" a\n\n b\tc ") == "a b c"


def test_truncate_cuts_at_a_word_boundary() -> None:
    subject = "As a coach, I can export the weekly plan as a PDF feature"

    cut = truncate(subject, 40)

    assert cut == "As a coach, I can export the weekly…"
    assert truncate("Export the plan now", 16) == "Export the plan…"  # the cut falls on a space
    assert truncate("See https://example.com/a/very/long/path", 20) == "See https://example…"
