"""What the user reads about a job: its name, status, caption and failure, in their language."""

from __future__ import annotations

import html

from babel.support import LazyProxy

from bot.jobs.values import Failure
from bot.owner.payments import no_credits_cost
from bot.prompts.rules import model_version
from bot.telegram.i18n import _, __
from bot.userapi.models import TaskStatus, TaskType
from storage.tasks import TaskRecord

CAPTION_LIMIT = 1024

# Midjourney's own names (Vary, Zoom Out) stay as Midjourney writes them in every language.
TYPE_LABELS: dict[str, str | LazyProxy] = {
    TaskType.IMAGINE: __("Imagine"),
    TaskType.VARIATION: __("Variation"),
    TaskType.REROLL: __("Reroll"),
    TaskType.UPSCALE: __("Upscale"),
    TaskType.UPSAMPLE: __("Upscale"),
    TaskType.VARY_SUBTLE: "Vary (Subtle)",
    TaskType.VARY_STRONG: "Vary (Strong)",
    TaskType.ZOOM: "Zoom Out",
    TaskType.PAN: __("Pan"),
    TaskType.BLEND: __("Blend"),
    TaskType.INPAINT: "Vary (Region)",
    TaskType.ANIMATE: __("Animate"),
    TaskType.DESCRIBE: __("Describe"),
    TaskType.SEED: __("Seed"),
}
PREFILTER_WORDS: dict[str, LazyProxy] = {
    "TOXICITY": __("toxicity"),
    "SEVERE_TOXICITY": __("severe toxicity"),
    "IDENTITY_ATTACK": __("an attack on identity"),
    "INSULT": __("insults"),
    "PROFANITY": __("profanity"),
    "THREAT": __("threats"),
    "SEXUALLY_EXPLICIT": __("sexually explicit content"),
    "FLIRTATION": __("flirtation"),
}


def type_label(task_type: str) -> str:
    """The name of a job type, in the current language."""
    return str(TYPE_LABELS.get(task_type, task_type.replace("_", " ").title()))


def reason_text(reason: str | None) -> str:
    """A stored failure reason in words: the bot's own codes translated, the API's kept."""
    words = {
        Failure.UNREACHABLE: _(
            "The Midjourney service can't be reached right now. Please try again in a minute."
        ),
        Failure.KEY_REJECTED: _("The bot's Midjourney key was rejected. The owner has to fix it."),
        Failure.BUSY: _("Midjourney is busy (too many requests). Please try again in a minute."),
        Failure.SERVER_ERROR: _("The Midjourney service had an internal error. Please try again."),
        Failure.RESTARTED: _("The bot restarted while sending this job. Please send it again."),
        Failure.STUCK: _("Midjourney stopped reporting on this job. Please try again."),
        Failure.NOT_FOR_VERSION: _("Midjourney doesn't offer this for the image's version."),
    }
    if not reason:
        return _("Midjourney did not say why.")
    cost = no_credits_cost(reason)
    if cost is not None:
        return _(
            "you're out of credits (this job costs {cost}; your free jobs for today are used "
            "up). Buy credits with /buy."
        ).format(cost=cost)
    return words.get(reason, reason)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def caption_for(task: TaskRecord) -> str:
    """A result's caption: the job type, the requester in groups, the prompt; 1,024 chars."""
    head = f"<b>{html.escape(result_title(task))}</b>"
    if task.chat_id < 0 and task.requester:
        # A mention link names the requester and notifies them, as Midjourney's bot does.
        name = html.escape(_cut(task.requester, 64))
        head += f' · <a href="tg://user?id={task.user_id}">{name}</a>'
    head += "\n"
    # Cut before escaping would break entities; cut the escaped text by the plain budget.
    budget = CAPTION_LIMIT - len(head)
    prompt = _cut(task.prompt or "", budget)
    while len(head) + len(html.escape(prompt)) > CAPTION_LIMIT:
        prompt = _cut(prompt, len(prompt) - 20)
    return head + html.escape(prompt)


def shared_caption(task: TaskRecord) -> str:
    """A result's caption where its owner shares it (inline mode): the prompt, plain text."""
    return _cut(task.prompt or "", CAPTION_LIMIT)


def result_title(task: TaskRecord) -> str:
    """A result's name in a list: its job type, and which image of the grid an upscale is."""
    label = type_label(task.type)
    if task.choice and task.type in (TaskType.UPSCALE, TaskType.VARIATION):
        label = f"{label} #{task.choice}"
    return label


def status_text(task: TaskRecord) -> str:
    """The text of a task's status message for its current state."""
    label = type_label(task.type)
    prompt = html.escape(_cut(task.prompt or "", 300))
    if task.status == TaskStatus.PROGRESS:
        filled = max(0, min(10, task.progress // 10))
        bar = "▰" * filled + "▱" * (10 - filled)
        state = _("🎨 Drawing… {percent}%").format(percent=task.progress) + f"\n{bar}"
    elif task.status == TaskStatus.WAITING:
        state = _("⏳ Queued at Midjourney…")
    else:
        state = _("⏳ Sending to Midjourney…")
    return f"<b>{html.escape(label)}</b> {prompt}\n\n{state}"


def result_unavailable_text(task: TaskRecord) -> str:
    """A finished job whose image can never be fetched (an expired or refused link)."""
    return _(
        "⚠️ <b>{job}</b> is done, but its image couldn't be fetched from Midjourney's "
        "server (the link expired or isn't one the bot will open). The buttons below still "
        "work."
    ).format(job=html.escape(type_label(task.type)))


def original_failed_text() -> str:
    """An upscale's original file (a document under its photo) that Telegram didn't take."""
    return _("⚠️ The original file couldn't be sent; the photo above is the result.")


def failure_text(task: TaskRecord) -> str:
    """Why a task failed, in words."""
    label = html.escape(type_label(task.type))
    if task.prefilter:
        reasons = ", ".join(
            str(PREFILTER_WORDS.get(item, item.lower())) for item in task.prefilter
        )
        return _(
            "🚫 <b>{job}</b>: Midjourney's content filter refused this prompt ({reasons}). "
            "Please rephrase it."
        ).format(job=label, reasons=html.escape(reasons))
    if task.status_reason == Failure.NOT_FOR_VERSION:
        family, version = model_version(task.prompt)
        name = f"Niji {version:g}" if family == "niji" else f"V{version:g}"
        return _(
            "ℹ️ <b>{job}</b> isn't available for this image: Midjourney doesn't offer it for "
            "{version}. Nothing was charged; the other buttons still work."
        ).format(job=label, version=name)
    return _("❌ <b>{job}</b> failed: {reason}").format(
        job=label, reason=html.escape(reason_text(task.status_reason))
    )
