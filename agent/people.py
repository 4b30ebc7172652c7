"""Who a name in the minutes is: the project member it names, or a question for the person.

A name is looked up in this order: a Slack user the minutes mention (or who spoke in them) whose
Slack account is linked to a Taiga account that is a member; then that Slack user's display and
real name against the members; then the members' full names, first names and usernames. Only a
single member found that way is an owner. Several is a question, and so is none: the planner
never guesses who does the work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from taiga.models import Member


@dataclass(frozen=True, slots=True)
class SlackPerson:
    """A Slack user of the minutes, and the Taiga user their Slack account is linked to."""

    display_name: str
    real_name: str
    taiga_user_id: int | None = None


@dataclass(frozen=True, slots=True)
class Owner:
    """What a name resolved to: the member, else the question to ask (and leave unassigned)."""

    member: Member | None
    question: str | None = None


class People:
    """The project's members, and the Slack people of the minutes, to resolve names against."""

    def __init__(self, members: Sequence[Member], slack_people: Iterable[SlackPerson] = ()) -> None:
        self.members = [m for m in members if m.is_active]
        self.slack_people = list(slack_people)

    def member(self, user_id: int) -> Member | None:
        return next((m for m in self.members if m.id == user_id), None)

    def resolve(self, name: str) -> Owner:
        """The unique member `name` stands for, else a question naming the candidates."""
        wanted = _key(name)
        found = (self._through_slack(wanted) or self._members_named(wanted)) if wanted else []
        shown = name.strip()
        if len(found) == 1:
            return Owner(found[0])
        if not found:
            unknown = f"Who is {shown}? No project member has that name — left unassigned."
            return Owner(None, unknown)
        names = [m.full_name_display or m.username for m in found]
        listed = ", ".join(names[:-1]) + f" or {names[-1]}"
        return Owner(None, f"Who is {shown}? {listed} — left unassigned.")

    def _through_slack(self, wanted: str) -> list[Member]:
        found: dict[int, Member] = {}
        for person in self.slack_people:
            if wanted not in {_key(person.display_name), _key(person.real_name)}:
                continue
            linked = self.member(person.taiga_user_id) if person.taiga_user_id else None
            candidates = [linked] if linked else self._exactly_named(person)
            found.update((m.id, m) for m in candidates)
        return list(found.values())

    def _exactly_named(self, person: SlackPerson) -> list[Member]:
        names = {_key(person.display_name), _key(person.real_name)} - {""}
        return [m for m in self.members if names & {_key(m.full_name_display), _key(m.username)}]

    def _members_named(self, wanted: str) -> list[Member]:
        exact = [m for m in self.members if wanted in {_key(m.full_name_display), _key(m.username)}]
        if exact:
            return exact
        return [m for m in self.members if _first_name(m) == wanted]


def _key(name: str) -> str:
    return " ".join(name.strip().lstrip("@").split()).casefold()


def _first_name(member: Member) -> str:
    words = _key(member.full_name_display).split()
    return words[0] if words else ""
