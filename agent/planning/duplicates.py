"""Likely duplicates: a proposed story's subject against the project's existing open stories.

Subjects are normalised (case, punctuation, filler words such as "a", "the", "as", "can") and
compared by rapidfuzz's token-sort ratio, so word order and small wording changes do not hide a
duplicate ("Export plans as CSV" and "CSV export of plans") while different work stays apart
("log in" and "log out").
"""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz import fuzz, process, utils

from taiga.models import UserStory

# Token-sort ratio (0-100) from which two normalised subjects are the same story.
DUPLICATE_SCORE = 90
_FILLER = frozenset({"a", "an", "the", "to", "of", "for", "as", "i", "we", "can", "be", "able"})


def normalised_subject(subject: str) -> str:
    """Lower case, punctuation as spaces, filler words dropped."""
    return " ".join(w for w in utils.default_process(subject).split() if w not in _FILLER)


def likely_duplicate(subject: str, stories: Sequence[UserStory]) -> UserStory | None:
    """The existing story `subject` most likely duplicates, or None."""
    choices = [normalised_subject(s.subject) for s in stories]
    match = process.extractOne(
        normalised_subject(subject),
        choices,
        scorer=fuzz.token_sort_ratio,
        processor=None,
        score_cutoff=DUPLICATE_SCORE,
    )
    return None if match is None else stories[match[2]]
