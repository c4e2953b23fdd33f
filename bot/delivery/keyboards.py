"""Inline keyboards: a finished task's actions as buttons, and the callback data they carry.

A button carries its task id and its action's stable key (`a2:<task>:upscale:2`), so a change
to the button table never remaps buttons already in chats. Buttons sent before that carry an
index into the keyboard (`a1:<task>:<index>`) and are still read, by rebuilding the keyboard.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.jobs.actions import Action, action_rows, flat_actions
from bot.owner.payments import buy_keyboard, no_credits_cost
from bot.userapi.models import TaskStatus
from storage.tasks import TaskRecord


class ActionCallback(CallbackData, prefix="a2"):
    """A press of a task's button: the task and the pressed action's kind and choice."""

    task_id: int
    kind: str
    choice: str | None = None

    @property
    def key(self) -> str:
        """The pressed action's stable key (`Action.key`)."""
        return self.kind if self.choice is None else f"{self.kind}:{self.choice}"

    @classmethod
    def of(cls, task_id: int, action: Action) -> ActionCallback:
        """The callback data of an action's button."""
        choice = None if action.choice is None else str(action.choice)
        return cls(task_id=task_id, kind=action.kind, choice=choice)


class LegacyActionCallback(CallbackData, prefix="a1"):
    """A button sent before keys: the task and the button's index among its actions."""

    task_id: int
    index: int


def task_action_rows(task: TaskRecord) -> list[list[Action]]:
    """The action rows of a stored task."""
    return action_rows(
        task_type=task.type,
        prompt=task.prompt,
        result=task.result,
        next_actions=task.next_actions,
    )


def pressed_action(task: TaskRecord, data: ActionCallback | LegacyActionCallback) -> Action | None:
    """The action a button press asks for, or None when the task offers no such button."""
    if task.status != TaskStatus.DONE:
        return None
    actions = flat_actions(task_action_rows(task))
    if isinstance(data, LegacyActionCallback):
        return actions[data.index] if 0 <= data.index < len(actions) else None
    # The key, not the position, names the button: only an action the task offers is run.
    return next((action for action in actions if action.key == data.key), None)


def result_keyboard(task: TaskRecord) -> InlineKeyboardMarkup | None:
    """Buttons under a result, or None when it has no follow-ups."""
    if task.status == TaskStatus.ERROR and no_credits_cost(task.status_reason) is not None:
        return buy_keyboard()
    rows = task_action_rows(task)
    if not rows:
        return None
    keyboard = [
        [
            InlineKeyboardButton(
                text=action.label, callback_data=ActionCallback.of(task.id, action).pack()
            )
            for action in row
        ]
        for row in rows
    ]
    return InlineKeyboardMarkup(inline_keyboard=keyboard)
