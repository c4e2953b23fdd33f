"""The gallery Mini App's words, in the user's language (the page shows English until then)."""

from __future__ import annotations

from bot.telegram.i18n import _


def page_texts() -> dict[str, str]:
    """Every text the gallery page shows, by its key in the page's script."""
    return {
        "title": _("Your gallery"),
        "search": _("Search your prompts"),
        "empty": _("No results yet. Send a prompt to the bot to make your first images."),
        "nothing_found": _("Nothing matches this search."),
        "more": _("Show more"),
        "rerun": _("Re-run with my current settings"),
        "copy": _("Copy prompt"),
        "copied": _("Prompt copied."),
        "share": _("Share"),
        "remove": _("Remove from history"),
        "removed": _("Removed from your gallery and /history."),
        "confirm_remove": _("Remove this result from your gallery and /history?"),
        "started": _("{action}: started. The result will come to the chat."),
        "rerun_label": _("Re-run"),
        "refused": _("The bot refused this job; the chat says why."),
        "needs_prompt": _("This action asks for a new prompt: use its button in the chat."),
        "bad_prompt": _("This prompt can't be run again as it is."),
        "failed": _("Something went wrong: {error}"),
        "expired": _("This page has expired. Open the gallery again with /gallery."),
        "parameters": _("Parameters"),
        "actions": _("Actions"),
        "open_in_telegram": _("Open the gallery from the bot's menu or with /gallery."),
    }
