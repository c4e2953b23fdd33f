"""Prompts in any language: the words go to a LibreTranslate-compatible server, nothing else.

Midjourney reads English. Parameters (`--ar 16:9`, `--sref URL`), links, text in quotes or
backticks and `::` weights stay exactly as written: the prompt is cut into protected and
translatable segments, and only translatable segments that are not already English are sent.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)

# The whole translation, all segments together, gets this long before the prompt goes as written.
TRANSLATE_TIMEOUT = 5.0

# Protected pieces, tried in this order at each position: quoted text, links, multi-prompt
# weights, and parameters with their values.
_QUOTED = r"\"[^\"]*\"|“[^”]*”|„[^“”]*[“”]|«[^»]*»|`[^`]*`"
_URL = r"(?:https?://|www\.)\S+|<https?://[^>]+>"
_WEIGHT = r"::-?\d*(?:\.\d+)?"
# A flag and the values after it: numbers, ratios, codes and links in ASCII (a Cyrillic word
# after `--ar 16:9` is prose again). `--no` takes words, which are translated.
_VALUE = r"(?:\s+(?!--)[\x21-\x7e]+)"
_FLAG = rf"--(?!no\b)[A-Za-z][\w-]*{_VALUE}*|--no\b"
_PROTECTED = re.compile(rf"{_QUOTED}|{_URL}|{_WEIGHT}|{_FLAG}", re.IGNORECASE)
_FOREIGN_LETTER = re.compile(r"[^\W\d_a-zA-Z]")


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of a prompt: sent to the translator (`translate`) or kept as written."""

    text: str
    translate: bool


@dataclass(frozen=True, slots=True)
class Translation:
    """A prompt after translation: the text to send, and what happened on the way."""

    text: str
    translated: bool = False
    failed: bool = False


def needs_translation(text: str) -> bool:
    """Whether text has letters beyond English's (ASCII letters only counts as English)."""
    return _FOREIGN_LETTER.search(text) is not None


def split_prompt(prompt: str) -> list[Segment]:
    """The prompt as alternating prose and protected segments (joined back, the same text)."""
    segments: list[Segment] = []
    position = 0
    for match in _PROTECTED.finditer(prompt):
        if match.start() > position:
            segments.append(Segment(prompt[position : match.start()], True))
        segments.append(Segment(match.group(0), False))
        position = match.end()
    if position < len(prompt):
        segments.append(Segment(prompt[position:], True))
    return segments


def _edges(text: str) -> tuple[str, str, str]:
    """Leading whitespace and punctuation, the core, and the trailing ones (kept as written)."""
    match = re.match(r"^([\s,.;:!?]*)(.*?)([\s,.;:!?]*)$", text, re.DOTALL)
    assert match is not None  # the pattern matches any string
    return match.group(1), match.group(2), match.group(3)


class TranslateError(Exception):
    """The translator failed, answered nonsense, or took too long."""


class Translator:
    """A client of a LibreTranslate-compatible `POST /translate`, with a total time budget."""

    def __init__(
        self,
        *,
        url: str,
        api_key: str | None = None,
        timeout: float = TRANSLATE_TIMEOUT,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = url.rstrip("/") + "/translate"
        self._api_key = api_key
        self._timeout = timeout
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(timeout), trust_env=False)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def _one(self, text: str) -> str:
        body: dict[str, str] = {"q": text, "source": "auto", "target": "en", "format": "text"}
        if self._api_key:
            body["api_key"] = self._api_key
        try:
            response = await self._http.post(self._url, json=body)
        except httpx.HTTPError as error:
            raise TranslateError(type(error).__name__) from error
        if response.status_code != httpx.codes.OK:
            raise TranslateError(f"HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError as error:
            raise TranslateError("not JSON") from error
        translated = answer.get("translatedText") if isinstance(answer, dict) else None
        if not isinstance(translated, str) or not translated.strip():
            raise TranslateError("no translatedText")
        return translated.strip()

    async def translate(self, prompt: str) -> Translation:
        """The prompt with its foreign prose in English; as written if the translator fails."""
        segments = split_prompt(prompt)
        wanted = [
            index
            for index, segment in enumerate(segments)
            if segment.translate and needs_translation(segment.text)
        ]
        if not wanted:
            return Translation(prompt)
        parts = [_edges(segments[index].text) for index in wanted]
        try:
            async with asyncio.timeout(self._timeout):
                results = await asyncio.gather(*(self._one(core) for _, core, _ in parts))
        except (TranslateError, TimeoutError) as error:
            log.warning("Translation failed (%s); the prompt goes as written", error or "timeout")
            return Translation(prompt, failed=True)
        texts = [segment.text for segment in segments]
        for index, (lead, _core, trail), result in zip(wanted, parts, results, strict=True):
            texts[index] = lead + result + trail
        return Translation(re.sub(r"\s+", " ", "".join(texts)).strip(), translated=True)
