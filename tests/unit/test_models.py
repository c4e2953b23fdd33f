"""Parsing of the API doc's example payloads into the typed models."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.userapi.models import (
    DiscordAccount,
    ImageResult,
    InfoResult,
    SeedResult,
    Task,
    TaskStatus,
    UploadResult,
)

IMAGE = {
    "url": "https://cdn.discordapp.com/...a88f0f357480.png",
    "proxy_url": "https://media.discordapp.net/...a88f0f357480.png",
    "filename": "...a88f0f357480.png",
    "content_type": "image/png",
    "width": 2048,
    "height": 2048,
    "size": 6950334,
}

IMAGINE_WEBHOOK = {
    "account_hash": "a7d44910-88a6-4673-acc8-d60ffc3479a6",
    "hash": "6794f6ef-866a-4bc3-b0bc-7b28ec010d1b",
    "webhook_url": "https://example.com/imagine/webhook-url",
    "webhook_type": "progress",
    "prompt": "nice girl",
    "type": "imagine",
    "progress": 100,
    "status": "done",
    "result": IMAGE,
    "status_reason": None,
    "prefilter_result": [],
    "created_at": "2006-01-02T15:04:05+00:00",
}

ANIMATE_WEBHOOK = {
    "account_hash": "fbf3c9ea-155a-48e6-bbc0-2b3102c64d79",
    "hash": "ed162774-9244-4038-bdf1-801b033809ec",
    "parent_hash": "9701f416-b648-4f37-b432-edaa6f77662d",
    "webhook_url": "https://example.com/animate/webhook-url",
    "webhook_type": "result",
    "callback_id": None,
    "choice": "high",
    "type": "animate",
    "progress": 100,
    "status": "done",
    "result": {
        "url": "https://cdn.discordapp.com/attachments/...b2c36b.webp",
        "proxy_url": "https://media.discordapp.net/attachments/...b2c36b.webp",
        "filename": "...b2c36b.webp",
        "content_type": "image/webp",
        "width": 560,
        "height": 704,
        "size": 802244,
    },
    "job_id": "385f202d-16a5-4472-90e5-14b72bb2c36b",
    "next_actions": [{"type": "upscale", "choices": [1, 2, 3, 4]}, {"type": "reroll"}],
    "status_reason": None,
    "created_at": "2025-08-01T13:12:33Z",
}

DESCRIBE_WEBHOOK = {
    "account_hash": "a7d44710-88a6-4673-acc8-d60ffc3479a6",
    "hash": "2d7116bf-3006-41e7-9fcc-f1628fc4693a",
    "webhook_url": "https://example.com/describe/webhook-url",
    "webhook_type": "result",
    "prompt": "https://example.com/50a9.jpg",
    "type": "describe",
    "status": "done",
    "result": [
        "nice girl in the hat",
        "girl in the nice hat",
        "cute girl in the hat",
        "girl in the little hat",
    ],
    "status_reason": None,
    "created_at": "2006-01-02T15:04:05+00:00",
}

SEED_URL = {
    "url": "https://media.discordapp.net//...png",
    "proxy_url": "https://media.discordapp.net//...png",
    "filename": "...png",
    "content_type": "image/png",
    "width": 1024,
    "height": 1024,
    "size": 1811123,
}

SEED_WEBHOOK = {
    "account_hash": "24c780c4-4658-b11c-8b9d-7a6b5040251a",
    "hash": "80c24c74-b11c-4658-9d8b-b5040251a7a6",
    "webhook_url": None,
    "webhook_type": None,
    "type": "seed",
    "progress": 100,
    "status": "done",
    "result": {"seed": "984073766", "urls": [SEED_URL, SEED_URL, SEED_URL, SEED_URL]},
}

INFO_WEBHOOK = {
    "account_hash": "6794f6ef-866a-4bc3-b0bc-7b28ec010d1b",
    "hash": "2d7116bf-3006-41e7-9fcc-f1628fc4693a",
    "webhook_url": None,
    "webhook_type": None,
    "type": "info",
    "status": "done",
    "result": {
        "user_id": "9788f3b9-f3ba-48e9-b058-8c27f8e000fc",
        "subscription": {"name": "Standard", "active_to": "2023-10-18T19:25:33+03:00"},
        "visibility_mode": "Public",
        "fast_time_remaining": {"remaining_sec": 51876, "total_sec": 54000},
        "lifetime_usage": {"cnt": 107, "sec": 3816},
        "relaxed_usage": {"cnt": 0, "sec": 0},
        "queued_jobs_fast": 0,
        "queued_jobs_relax": 0,
        "running_jobs": 0,
    },
    "status_reason": None,
    "created_at": "2006-01-02T15:04:05+00:00",
}

PREFER_RESULT = {
    "account_hash": "a9c8c98d-519b-448e-beee-ccb6f56bb20a",
    "hash": "f698d36a-585d-42c8-b354-b3cc74545848",
    "webhook_url": None,
    "webhook_type": None,
    "choice": "remix",
    "type": "prefer",
    "status": "done",
    "result": "on",
    "status_reason": None,
    "created_at": "2024-03-24T22:59:35+03:00",
}

SPEED_RESULT = {
    "account_hash": "6794f6ef-866a-4bc3-b0bc-7b28ec010d1b",
    "hash": "1efecd6b-cd1b-4a34-beaa-de73041a6b76",
    "webhook_url": None,
    "webhook_type": None,
    "callback_id": None,
    "choice": "relax",
    "type": "speed",
    "status": "done",
    "result": None,
    "status_reason": None,
    "created_at": "2006-04-28T20:21:37+03:00",
}

BLEND_WEBHOOK = {
    "account_hash": "3b2c7341-ec22-0301-810d-9cf0543e20ba",
    "hash": "fd88479e-455f-6a6f-6284-b0c49117d76f",
    "webhook_url": "https://example.com/blend/webhook-url",
    "webhook_type": "progress",
    "urls": [
        {"url": "https://example.com/image1.jpg", "ext": "jpg"},
        {"url": "https://example.com/image1.jpg", "ext": "jpg"},
    ],
    "type": "blend",
    "status": "done",
    "result": IMAGE,
    "status_reason": None,
}

# Upscale, variation, vary, inpaint, reroll, zoom and pan share the image-result shape.
GRID_LIKE = [
    {**IMAGINE_WEBHOOK, "type": kind, "choice": choice, "webhook_url": None}
    for kind, choice in [
        ("upscale", 3),
        ("upsample", 3),
        ("variation", 3),
        ("vary_subtle", 3),
        ("inpaint", None),
        ("reroll", None),
        ("zoom", 75),
        ("pan", "left"),
    ]
]


def _roundtrip(payload: dict[str, Any]) -> Task:
    """Parse the payload the way it arrives: as JSON text."""
    return Task.model_validate_json(json.dumps(payload))


def test_imagine_webhook_has_an_image_result() -> None:
    task = _roundtrip(IMAGINE_WEBHOOK)
    assert task.hash == "6794f6ef-866a-4bc3-b0bc-7b28ec010d1b"
    assert task.status is TaskStatus.DONE
    assert task.status.is_final
    assert task.progress == 100
    assert task.prompt == "nice girl"
    assert isinstance(task.result, ImageResult)
    assert task.image is not None
    assert task.image.width == 2048
    assert task.image.size == 6950334
    assert task.image.url.endswith(".png")
    assert task.prefilter_result == []
    assert task.next_actions is None
    assert task.prompts is None
    assert task.seed is None


def test_animate_webhook_keeps_next_actions_and_parent() -> None:
    task = _roundtrip(ANIMATE_WEBHOOK)
    assert task.parent_hash == "9701f416-b648-4f37-b432-edaa6f77662d"
    assert task.choice == "high"
    assert task.job_id == "385f202d-16a5-4472-90e5-14b72bb2c36b"
    assert task.image is not None
    assert task.image.content_type == "image/webp"
    assert task.next_actions is not None
    assert [(a.type, a.choices) for a in task.next_actions] == [
        ("upscale", [1, 2, 3, 4]),
        ("reroll", None),
    ]


def test_describe_webhook_has_four_prompts() -> None:
    task = _roundtrip(DESCRIBE_WEBHOOK)
    assert task.prompts == DESCRIBE_WEBHOOK["result"]
    assert task.image is None


def test_seed_webhook_has_a_seed_and_four_images() -> None:
    task = _roundtrip(SEED_WEBHOOK)
    assert isinstance(task.result, SeedResult)
    assert task.seed is not None
    assert task.seed.seed == "984073766"
    assert len(task.seed.urls) == 4
    assert all(isinstance(image, ImageResult) for image in task.seed.urls)
    assert task.image is None


def test_seed_given_as_a_number_keeps_its_digits() -> None:
    task = Task.model_validate({"hash": "h", "result": {"seed": 984073766, "urls": []}})
    assert task.seed is not None
    assert task.seed.seed == "984073766"


def test_info_webhook_has_subscription_info() -> None:
    task = _roundtrip(INFO_WEBHOOK)
    assert isinstance(task.result, InfoResult)
    info = task.info
    assert info is not None
    assert info.subscription is not None
    assert info.subscription.name == "Standard"
    assert info.fast_time_remaining is not None
    assert info.fast_time_remaining.remaining_sec == 51876
    assert info.fast_time_remaining.total_sec == 54000
    assert info.lifetime_usage is not None
    assert info.lifetime_usage.cnt == 107
    assert info.running_jobs == 0
    assert info.visibility_mode == "Public"


def test_prefer_result_is_the_text_on() -> None:
    task = _roundtrip(PREFER_RESULT)
    assert task.result == "on"
    assert task.choice == "remix"
    assert task.image is None
    assert task.info is None


def test_speed_result_is_null() -> None:
    task = _roundtrip(SPEED_RESULT)
    assert task.result is None
    assert task.choice == "relax"
    assert task.status is TaskStatus.DONE


def test_blend_webhook_keeps_its_urls() -> None:
    task = _roundtrip(BLEND_WEBHOOK)
    assert task.urls is not None
    assert [(u.url, u.ext) for u in task.urls] == [("https://example.com/image1.jpg", "jpg")] * 2
    assert task.image is not None
    assert task.created_at is None


@pytest.mark.parametrize("payload", GRID_LIKE, ids=lambda p: str(p["type"]))
def test_image_producing_tasks_parse(payload: dict[str, Any]) -> None:
    task = _roundtrip(payload)
    assert task.type == payload["type"]
    assert task.choice == payload["choice"]
    assert task.image is not None
    assert task.image.height == 2048


def test_unknown_result_dict_is_kept_as_is() -> None:
    raw = {"something": "new", "n": 1}
    task = Task.model_validate({"hash": "h", "type": "future", "result": raw})
    assert task.result == raw
    assert task.image is None
    assert task.seed is None
    assert task.info is None


@pytest.mark.parametrize(("raw", "expected"), [("45", 45), (45.0, 45), ("12.5", 12), (7, 7)])
def test_progress_given_as_text_or_float_becomes_int(raw: object, expected: int) -> None:
    assert Task.model_validate({"hash": "h", "progress": raw}).progress == expected


def test_minimal_task_has_defaults() -> None:
    task = Task.model_validate({"hash": "h", "status": "progress", "prefilter_result": None})
    assert task.status is TaskStatus.PROGRESS
    assert not task.status.is_final
    assert task.prefilter_result == []
    assert task.result is None
    assert task.next_actions is None


def test_error_task_keeps_reason_and_prefilter_categories() -> None:
    task = Task.model_validate(
        {
            "hash": "h",
            "status": "error",
            "status_reason": "banned prompt",
            "prefilter_result": ["TOXICITY", "INSULT"],
        }
    )
    assert task.status is TaskStatus.ERROR
    assert task.status.is_final
    assert task.status_reason == "banned prompt"
    assert task.prefilter_result == ["TOXICITY", "INSULT"]


def test_unknown_task_fields_are_kept() -> None:
    task = Task.model_validate({"hash": "h", "brand_new_field": 1})
    assert task.model_extra == {"brand_new_field": 1}


def test_upload_result_parses_the_doc_example() -> None:
    result = UploadResult.model_validate(
        {
            "account_hash": "6794f6ef-866a-4bc3-b0bc-7b28ec010d1b",
            "image": {
                "id": "1...7",
                "url": "https://cdn.discordapp.com/.../cc132630.png",
                "proxy_url": "https://media.discordapp.net/.../cc132630.png",
                "filename": "cc132630.png",
                "content_type": "image/png",
                "width": 1024,
                "height": 1024,
                "size": 79310,
                "ephemeral": False,
            },
        }
    )
    assert result.account_hash == "6794f6ef-866a-4bc3-b0bc-7b28ec010d1b"
    assert result.image.id == "1...7"
    assert result.image.url == "https://cdn.discordapp.com/.../cc132630.png"
    assert result.image.ephemeral is False


def test_discord_account_drops_the_token() -> None:
    account = DiscordAccount.model_validate(
        {
            "hash": "ee6978d8-1d9e-a904-455e-30209248cede",
            "token": "MTA...c312",
            "channel_id": "1774834120065155686",
            "status": "tos",
            "status_reason": "Please go to Discord and accept ToS from image generator",
            "external_username": "ypontonx",
            "external_email": "n****@l****.ru",
            "is_remix": True,
            "created_at": "2023-09-27T19:51:32+03:00",
        }
    )
    assert account.status == "tos"
    assert account.is_remix is True
    assert account.external_username == "ypontonx"
    dumped = account.model_dump()
    assert "token" not in dumped
    assert "MTA...c312" not in repr(account)
    assert "MTA...c312" not in account.model_dump_json()
