"""A LibreTranslate-compatible server for tests: `POST /translate`, recorded, optionally slow."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

# What the fake knows how to say in English; anything else comes back tagged, so a test sees
# exactly which text went through the translator.
PHRASES = {
    "кот в шляпе": "a cat in a hat",
    "уютный домик в лесу": "a cozy cabin in the woods",
    "рыжая лиса": "a red fox",
    "закат": "sunset",
}


@dataclass
class TranslateRequest:
    """One request as the fake received it."""

    body: dict[str, Any]


class FakeTranslator:
    """Answers `POST /translate` like LibreTranslate, recording every request."""

    def __init__(self, *, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[TranslateRequest] = []
        self.delay = 0.0
        self.status = 200
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> str:
        """Serve on a free port of 127.0.0.1 and return the base URL."""
        app = web.Application()
        app.router.add_post("/translate", self._translate)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def texts(self) -> list[str]:
        """Every `q` the fake was asked to translate."""
        return [str(request.body.get("q")) for request in self.requests]

    async def _translate(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(TranslateRequest(body))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response({"error": "Translation failed"}, status=self.status)
        if self.api_key is not None and body.get("api_key") != self.api_key:
            return web.json_response({"error": "Invalid API key"}, status=403)
        text = str(body.get("q", ""))
        translated = PHRASES.get(text.lower(), f"EN[{text}]")
        return web.json_response(
            {
                "translatedText": translated,
                "detectedLanguage": {"language": "ru", "confidence": 90},
            }
        )
