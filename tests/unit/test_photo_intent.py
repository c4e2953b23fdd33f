"""What a photo or album asks the image routers for: caption command, waiting flow, or menu."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram.types import Chat, Document, Message, PhotoSize, User

from handlers.images.common import Flow, photo_intent

BOT = "pic_bot"


def photo(caption: str | None = None, *, chat_type: str = "private", pdf: bool = False) -> Message:
    """A photo (or a PDF document) from Ann, in a private chat or a group."""
    chat = Chat(id=5 if chat_type == "private" else -100, type=chat_type)
    document = Document(file_id="d", file_unique_id="d", mime_type="application/pdf")
    picture = [PhotoSize(file_id="p", file_unique_id="p", width=9, height=9)]
    return Message(
        message_id=1,
        date=datetime.now(UTC),
        chat=chat,
        from_user=User(id=5, is_bot=False, first_name="Ann"),
        caption=caption,
        document=document if pdf else None,
        photo=None if pdf else picture,
    )


def test_the_caption_command_wins_over_the_waiting_flow() -> None:
    assert photo_intent([photo("/describe")], BOT, Flow.blend.state) == ("describe", "")
    assert photo_intent([photo("/sref a cabin")], BOT, None) == ("sref", "a cabin")
    assert photo_intent([photo(f"/imagine@{BOT} a fox")], BOT, None) == ("imagine", "a fox")


def test_a_waiting_flow_takes_a_photo_without_a_command() -> None:
    assert photo_intent([photo()], BOT, Flow.describe_next.state) == ("describe_next", "")
    assert photo_intent([photo()], BOT, Flow.blend.state) == ("blend_add", "")
    assert photo_intent([photo(chat_type="group")], BOT, Flow.mask.state) == ("mask", "")


def test_a_plain_photo_opens_the_menu_only_in_private() -> None:
    assert photo_intent([photo(), photo()], BOT, None) == ("menu", "")
    assert photo_intent([photo(chat_type="supergroup")], BOT, None) is None
    # Waiting for a reference prompt, a new photo still opens the menu.
    assert photo_intent([photo()], BOT, Flow.reference.state) == ("menu", "")


def test_other_commands_and_other_bots_are_not_ours() -> None:
    assert photo_intent([photo("/start")], BOT, Flow.blend.state) is None
    # A command for another bot is no command here: the photo is a plain one.
    assert photo_intent([photo("/describe@other_bot")], BOT, None) == ("menu", "")


def test_a_file_that_is_no_image_is_refused_only_where_meant_for_us() -> None:
    assert photo_intent([photo("/describe", pdf=True)], BOT, None) == ("not_image", "")
    assert photo_intent([photo(pdf=True)], BOT, None) == ("not_image", "")
    assert photo_intent([photo(chat_type="group", pdf=True)], BOT, None) is None
    group_waiting = photo_intent([photo(chat_type="group", pdf=True)], BOT, Flow.mask.state)
    assert group_waiting == ("not_image", "")
