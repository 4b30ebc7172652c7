"""A cut answer: what the model is told to continue it, and what people are told it lost.

A cut answer's finished tool calls are recorded and sent back with their results and
`CONTINUE_AFTER_CUT`; only when the run cannot continue (a budget, the deadline, nothing
finished) does the proposal carry `cut_sentence`.
"""

from __future__ import annotations

from agent.planning.streaming import BrokenOff, StreamedTurn
from agent.wording import counted

CONTINUE_AFTER_CUT = (
    "Your previous answer was cut off before it ended. Every complete tool call in it was "
    "recorded (the results are above); the call that was cut off was dropped. Continue the plan "
    "from there: make the calls that are still missing, and do not repeat the recorded ones."
)

_WHY = {
    "max_tokens": "Claude's answer reached its length limit (max_tokens)",
    "model_context_window_exceeded": "Claude's answer filled the model's context window",
    BrokenOff.STALLED: "Claude's answer stalled mid-stream",
    BrokenOff.ERROR: "Claude's answer broke off with an error",
    BrokenOff.DEADLINE: "the time limit was reached while Claude was still answering",
}
_ITEM = {"taiga_create_user_story": "user story", "taiga_create_task": "task"}


def cut_sentence(turn: StreamedTurn, finished_calls: int) -> str:
    """'Claude's answer reached its length limit (max_tokens) while writing the user story
    "Export"; its 16 finished calls are kept, that story and anything after it are not in this
    plan.'"""
    why = _WHY.get(turn.broken_off or turn.stop_reason or "", "Claude's answer was cut off")
    cut = turn.cut_tool()
    if cut is None:
        what, lost = "", "anything it had not written yet is"
    else:
        name, subject = cut
        item = _ITEM.get(name, "call")
        what = f' while writing the {item} "{subject}"' if subject else f" while writing a {item}"
        lost = f"that {item} and anything after it are"
    if not finished_calls:
        return f"{why}{what}, before it finished any call; nothing of that answer is in this plan."
    kept = counted(finished_calls, "finished call is", "finished calls are")
    return f"{why}{what}; its {kept} kept, {lost} not in this plan."
