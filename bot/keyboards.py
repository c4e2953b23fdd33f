"""Inline keyboards: a finished task's actions as buttons, and the callback data they carry."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.actions import Action, action_rows
from bot.payments import buy_keyboard, no_credits_cost
from storage.tasks import TaskRecord


class ActionCallback(CallbackData, prefix="a1"):
    """A press of a task's button: the task and the button's index among its actions."""

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


def result_keyboard(task: TaskRecord) -> InlineKeyboardMarkup | None:
    """Buttons under a result, or None when it has no follow-ups."""
    if task.status == "error" and no_credits_cost(task.status_reason) is not None:
        return buy_keyboard()
    rows = task_action_rows(task)
    if not rows:
        return None
    index = 0
    keyboard: list[list[InlineKeyboardButton]] = []
    for row in rows:
        buttons = []
        for action in row:
            data = ActionCallback(task_id=task.id, index=index).pack()
            buttons.append(InlineKeyboardButton(text=action.label, callback_data=data))
            index += 1
        keyboard.append(buttons)
    return InlineKeyboardMarkup(inline_keyboard=keyboard)
