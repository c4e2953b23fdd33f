"""The built-in userapi simulator, spoken to over real HTTP as the bot would."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from PIL import Image

from bot.userapi.models import Task, TaskStatus
from bot.userapi.simulator import DEFAULT_ACCOUNT, FAKE_DISCORD_TOKEN, Simulator, SimulatorConfig

API = "/midjourney/v2"
GRID = 256


@dataclass
class Receiver:
    """A tiny webhook endpoint that keeps every JSON body it is sent."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def for_hash(self, task_hash: str) -> list[dict[str, Any]]:
        """Webhooks about one task, in arrival order."""
        return [body for body in self.received if body["hash"] == task_hash]

    async def wait_final(self, task_hash: str) -> list[dict[str, Any]]:
        """Wait until a done/error webhook for the task has arrived."""
        async with asyncio.timeout(5):
            while not any(b["status"] in ("done", "error") for b in self.for_hash(task_hash)):
                self.arrived.clear()
                await self.arrived.wait()
        return self.for_hash(task_hash)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A running simulator with small images and no pacing."""
    simulator = Simulator(SimulatorConfig(grid_size=GRID))
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client carrying an api-key."""
    async with httpx.AsyncClient(base_url=sim.base_url, headers={"api-key": "k"}) as http:
        yield http


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on 127.0.0.1."""
    receiver = Receiver("")

    async def hook(request: web.Request) -> web.Response:
        receiver.received.append(await request.json())
        receiver.arrived.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def create(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    """POST a job and return its hash."""
    response = await client.post(f"{API}/{path}", json=body)
    assert response.status_code == 200, response.text
    task_hash = response.json()["hash"]
    assert isinstance(task_hash, str)
    return task_hash


async def finished(
    client: httpx.AsyncClient, sim: Simulator, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Create a job, wait for it to be done, and return /status's answer."""
    task_hash = await create(client, path, body)
    await sim.wait_for_status(task_hash, "done")
    response = await client.get(f"{API}/status", params={"hash": task_hash})
    assert response.status_code == 200
    task: dict[str, Any] = response.json()
    return task


async def fetch_image(client: httpx.AsyncClient, result: dict[str, Any]) -> Image.Image:
    """Download a result without the api-key and check it matches its declared facts."""
    async with httpx.AsyncClient() as anonymous:
        response = await anonymous.get(result["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == result["content_type"]
    assert len(response.content) == result["size"]
    assert result["url"].endswith(result["filename"])
    image = Image.open(io.BytesIO(response.content))
    image.load()
    assert image.size == (result["width"], result["height"])
    return image


def png_bytes(width: int, height: int, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    """An encoded image of the given size."""
    buffer = io.BytesIO()
    Image.new(mode, (width, height), "white").save(buffer, format=fmt)
    return buffer.getvalue()


async def test_progress_webhooks_follow_every_step(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    task_hash = await create(
        client,
        "imagine",
        {"prompt": "a red fox", "webhook_url": receiver.url, "webhook_type": "progress"},
    )
    hooks = await receiver.wait_final(task_hash)
    assert [(h["status"], h["progress"]) for h in hooks] == [
        ("waiting", 0),
        ("progress", 10),
        ("progress", 45),
        ("progress", 80),
        ("done", 100),
    ]
    for hook in hooks[1:4]:
        preview = await fetch_image(client, hook["result"])
        assert preview.size == (256, 256)
    final = Task.model_validate(hooks[-1])
    assert final.status is TaskStatus.DONE
    assert final.account_hash == DEFAULT_ACCOUNT
    assert final.prompt == "a red fox"
    assert final.type == "imagine"
    assert final.image is not None
    grid = await fetch_image(client, hooks[-1]["result"])
    assert grid.size == (GRID, GRID)
    # The four quadrants have four different colours.
    corners = {grid.getpixel((x, y)) for x in (5, GRID - 5) for y in (5, GRID // 2 + 5)}
    assert len(corners) == 4
    assert sim.tasks[task_hash] == hooks[-1]


async def test_result_webhooks_only_announce_the_end(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    grid_hash = await create(
        client,
        "imagine",
        {"prompt": "a cat", "webhook_url": receiver.url, "webhook_type": "result"},
    )
    assert [h["status"] for h in await receiver.wait_final(grid_hash)] == ["done"]
    # Without a webhook_type the API behaves as "result".
    single_hash = await create(
        client, "upscale", {"hash": grid_hash, "choice": 1, "webhook_url": receiver.url}
    )
    hooks = await receiver.wait_final(single_hash)
    assert [h["status"] for h in hooks] == ["done"]
    assert hooks[0]["parent_hash"] == grid_hash
    # Upscale has no progress steps even when progress webhooks are asked for.
    upsample_hash = await create(
        client,
        "upsample",
        {
            "hash": single_hash,
            "choice": "v7_2x_subtle",
            "webhook_url": receiver.url,
            "webhook_type": "progress",
        },
    )
    statuses = [h["status"] for h in await receiver.wait_final(upsample_hash)]
    assert statuses == ["waiting", "done"]


async def test_webhooks_can_go_quiet_or_fail_without_stopping_tasks(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    sim.config.send_webhooks = False
    quiet = await create(client, "imagine", {"prompt": "quiet", "webhook_url": receiver.url})
    await sim.wait_for_status(quiet, "done")
    sim.config.send_webhooks = True
    # Nothing listens on port 9 (discard) on 127.0.0.1: the POST fails and is shrugged off.
    lost = await create(
        client, "imagine", {"prompt": "lost", "webhook_url": "http://127.0.0.1:9/hook"}
    )
    await sim.wait_for_status(lost, "done")
    assert receiver.for_hash(quiet) == []
    [attempt] = [w for w in sim.webhooks if w.task["hash"] == lost]
    assert attempt.status is None
    assert attempt.error


async def test_status_and_errors(sim: Simulator, client: httpx.AsyncClient) -> None:
    missing = await client.get(f"{API}/status", params={"hash": "nope"})
    assert missing.status_code == 404
    assert missing.json() == {"status": False, "error": "Task not found"}
    bad = await client.post(f"{API}/imagine", json={"prompt": ""})
    assert bad.status_code == 400
    assert bad.json()["status"] is False
    not_json = await client.post(f"{API}/imagine", content=b"{oops")
    assert not_json.status_code == 400
    task_hash = await create(client, "imagine", {"prompt": "p"})
    first = (await client.get(f"{API}/status", params={"hash": task_hash})).json()
    assert first["hash"] == task_hash
    assert first["status"] in ("sent", "waiting", "progress", "done")
    assert first["created_at"]


async def test_auth(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as anonymous:
        response = await anonymous.post(f"{API}/imagine", json={"prompt": "p"})
        assert response.status_code == 401
        assert response.json() == {"status": False, "error": "Invalid api key"}
        sim.config.api_key = "right"
        wrong = await anonymous.get(
            f"{API}/status", params={"hash": "x"}, headers={"api-key": "wrong"}
        )
        assert wrong.status_code == 401
        right = await anonymous.post(
            f"{API}/imagine", json={"prompt": "p"}, headers={"api-key": "right"}
        )
        assert right.status_code == 200
    assert sim.requests_to(f"{API}/imagine")[0].headers.get("api-key") is None


async def test_parent_validation(sim: Simulator, client: httpx.AsyncClient) -> None:
    unknown = await client.post(f"{API}/upscale", json={"hash": "nope", "choice": 1})
    assert (unknown.status_code, unknown.json()["error"]) == (404, "Task not found")
    sim.config.hold = True
    pending = await create(client, "imagine", {"prompt": "p"})
    await sim.wait_for_status(pending, "waiting")
    early = await client.post(f"{API}/upscale", json={"hash": pending, "choice": 1})
    assert early.status_code == 400
    sim.release()
    await sim.wait_for_status(pending, "done")
    wrong_type = await client.post(f"{API}/upsample", json={"hash": pending, "choice": "v5_2x"})
    assert wrong_type.status_code == 400
    for choice in (0, 5, "1", True):
        bad = await client.post(f"{API}/upscale", json={"hash": pending, "choice": choice})
        assert bad.status_code == 400, choice
    single = await finished(client, sim, "upscale", {"hash": pending, "choice": 3})
    for path, body in [
        ("zoom", {"hash": single["hash"]}),
        ("zoom", {"hash": single["hash"], "choice": 60}),
        ("pan", {"hash": single["hash"], "choice": "sideways"}),
        ("animate", {"hash": single["hash"], "choice": "medium"}),
        ("upsample", {"hash": single["hash"], "choice": "v9_8x"}),
        ("variation", {"hash": single["hash"], "choice": 1}),
        ("vary-subtle", {"hash": pending}),
        ("blend", {"urls": [{"url": "https://x/1.png", "ext": "png"}]}),
        ("blend", {"urls": [{"url": "https://x/1.gif", "ext": "gif"}] * 2}),
        ("describe", {}),
    ]:
        response = await client.post(f"{API}/{path}", json=body)
        assert response.status_code == 400, (path, body, response.text)
    custom = await finished(client, sim, "zoom", {"hash": single["hash"], "prompt": "wider"})
    assert (custom["type"], custom["choice"], custom["prompt"]) == ("zoom", None, "wider")
    strong = await finished(client, sim, "vary-strong", {"hash": single["hash"]})
    assert strong["type"] == "vary_strong"
    assert strong["prompt"] == "p"


async def test_upscale_twice_is_refused(sim: Simulator, client: httpx.AsyncClient) -> None:
    grid = await finished(client, sim, "imagine", {"prompt": "twice"})
    await create(client, "upscale", {"hash": grid["hash"], "choice": 2})
    again = await client.post(f"{API}/upscale", json={"hash": grid["hash"], "choice": 2})
    assert again.status_code == 400
    assert again.json() == {"status": False, "error": "Image already upscaled"}
    await create(client, "upscale", {"hash": grid["hash"], "choice": 4})


async def test_seed_once_sync_and_async(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    grid = await finished(client, sim, "imagine", {"prompt": "seeded"})
    response = await client.post(f"{API}/seed", json={"hash": grid["hash"]})
    assert response.status_code == 200
    task = Task.model_validate(response.json())
    assert task.status is TaskStatus.DONE
    assert task.type == "seed"
    assert task.seed is not None
    assert task.seed.seed.isdigit()
    assert len(task.seed.urls) == 4
    sizes = {(await fetch_image(client, u.model_dump())).size for u in task.seed.urls}
    assert sizes == {(GRID // 2, GRID // 2)}
    again = await client.post(f"{API}/seed", json={"hash": grid["hash"]})
    assert again.status_code == 400
    assert again.json()["error"] == "Seed can only be requested once for this task"

    other = await finished(client, sim, "imagine", {"prompt": "seeded later"})
    seed_hash = await create(
        client, "seed", {"hash": other["hash"], "is_async": True, "webhook_url": receiver.url}
    )
    [hook] = [h for h in await receiver.wait_final(seed_hash) if h["status"] == "done"]
    assert len(hook["result"]["urls"]) == 4


async def test_upload(sim: Simulator, client: httpx.AsyncClient) -> None:
    png = png_bytes(40, 30)
    response = await client.post(
        f"{API}/upload",
        files={"image": ("a.png", png, "image/png")},
        data={"account_hash": DEFAULT_ACCOUNT},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["account_hash"] == DEFAULT_ACCOUNT
    image = answer["image"]
    assert (image["width"], image["height"], image["size"]) == (40, 30, len(png))
    assert image["content_type"] == "image/png"
    assert image["ephemeral"] is False
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(image["url"])).content == png

    jpeg = png_bytes(20, 10, fmt="JPEG")
    jpg_answer = await client.post(
        f"{API}/upload", files={"image": ("b.bin", jpeg, "application/octet-stream")}
    )
    assert jpg_answer.json()["image"]["content_type"] == "image/jpeg"

    webp = png_bytes(20, 20, fmt="WEBP")
    rejected = await client.post(f"{API}/upload", files={"image": ("c.png", webp, "image/png")})
    assert rejected.status_code == 400
    assert rejected.json()["error"] == "Image must be in png or jpg format"

    by_url = await client.post(f"{API}/upload", json={"url": "https://example.com/x.jpg"})
    assert by_url.status_code == 200
    await fetch_image(client, by_url.json()["image"])
    assert sim.requests_to(f"{API}/upload")[-1].json() == {"url": "https://example.com/x.jpg"}


async def test_images_are_real_and_distinct(sim: Simulator, client: httpx.AsyncClient) -> None:
    grid = await finished(client, sim, "imagine", {"prompt": "a tree --v 5.2"})
    reroll = await finished(client, sim, "reroll", {"hash": grid["hash"]})
    variation = await finished(client, sim, "variation", {"hash": grid["hash"], "choice": 1})
    single = await finished(client, sim, "upscale", {"hash": grid["hash"], "choice": 1})
    upsample = await finished(client, sim, "upsample", {"hash": single["hash"], "choice": "v5_4x"})
    pan = await finished(client, sim, "pan", {"hash": upsample["hash"], "choice": "left"})
    blend = await finished(
        client,
        sim,
        "blend",
        {
            "urls": [
                {"url": "https://x/1.png", "ext": "png"},
                {"url": "https://x/2.jpg", "ext": "jpg"},
            ]
        },
    )
    images = {}
    for task in (grid, reroll, variation, single, upsample, pan, blend):
        images[task["type"]] = await fetch_image(client, task["result"])
    assert images["imagine"].size == (GRID, GRID)
    assert images["upscale"].size == (GRID // 2, GRID // 2)
    assert images["upsample"].size == (GRID, GRID)
    assert blend["urls"][1] == {"url": "https://x/2.jpg", "ext": "jpg"}
    grids = [images[t].tobytes() for t in ("imagine", "reroll", "variation", "pan", "blend")]
    assert len(set(grids)) == len(grids)


async def test_animate_is_an_animated_webp(sim: Simulator, client: httpx.AsyncClient) -> None:
    grid = await finished(client, sim, "imagine", {"prompt": "waves"})
    single = await finished(client, sim, "upscale", {"hash": grid["hash"], "choice": 2})
    animation = await finished(client, sim, "animate", {"hash": single["hash"], "choice": "high"})
    assert animation["result"]["content_type"] == "image/webp"
    image = await fetch_image(client, animation["result"])
    assert image.format == "WEBP"
    assert getattr(image, "n_frames", 1) > 1
    assert animation["next_actions"] == [
        {"type": "upscale", "choices": [1, 2, 3, 4]},
        {"type": "reroll"},
    ]
    one = await finished(client, sim, "upscale", {"hash": animation["hash"], "choice": 3})
    clip = await fetch_image(client, one["result"])
    assert getattr(clip, "n_frames", 1) > 1
    refused = await client.post(f"{API}/animate", json={"hash": one["hash"], "choice": "low"})
    assert refused.status_code == 400


async def test_inpaint_checks_the_mask(sim: Simulator, client: httpx.AsyncClient) -> None:
    grid = await finished(client, sim, "imagine", {"prompt": "room"})
    single = await finished(client, sim, "upscale", {"hash": grid["hash"], "choice": 1})
    side = single["result"]["width"]
    wrong = base64.b64encode(png_bytes(side + 1, side, mode="L")).decode()
    response = await client.post(
        f"{API}/inpaint", json={"hash": single["hash"], "mask": wrong, "prompt": "a lamp"}
    )
    assert response.status_code == 400
    assert f"{side + 1}x{side}" in response.json()["error"]
    not_png = await client.post(
        f"{API}/inpaint", json={"hash": single["hash"], "mask": "!!!", "prompt": "a lamp"}
    )
    assert not_png.status_code == 400
    right = base64.b64encode(png_bytes(side, side, mode="L")).decode()
    no_prompt = await client.post(f"{API}/inpaint", json={"hash": single["hash"], "mask": right})
    assert no_prompt.status_code == 400
    done = await finished(
        client, sim, "inpaint", {"hash": single["hash"], "mask": right, "prompt": "a lamp"}
    )
    assert (done["type"], done["prompt"]) == ("inpaint", "a lamp")


async def test_prompt_directives(sim: Simulator, client: httpx.AsyncClient) -> None:
    failing = await create(client, "imagine", {"prompt": "boom sim:error"})
    with pytest.raises(AssertionError):
        await sim.wait_for_status(failing, "done")
    failed = sim.tasks[failing]
    assert failed["status"] == "error"
    assert failed["status_reason"] == "Simulated Midjourney failure"

    rude = await create(client, "imagine", {"prompt": "rude sim:prefilter"})
    rejected = await sim.wait_for_status(rude, "error")
    assert rejected["prefilter_result"] == ["SEXUALLY_EXPLICIT", "PROFANITY"]
    assert rejected["status_reason"]

    big = await finished(client, sim, "imagine", {"prompt": "huge sim:big"})
    assert big["result"]["size"] > 12 * 1024 * 1024
    await fetch_image(client, big["result"])

    stuck = await create(client, "imagine", {"prompt": "sim:stuck"})
    await sim.wait_for_status(stuck, "waiting")
    await asyncio.sleep(0.1)
    assert sim.tasks[stuck]["status"] == "waiting"


async def test_hold_and_release(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.config.hold = True
    held = [await create(client, "imagine", {"prompt": f"p{i}"}) for i in range(2)]
    for task_hash in held:
        await sim.wait_for_status(task_hash, "waiting")
    await asyncio.sleep(0.1)
    assert {sim.tasks[h]["status"] for h in held} == {"waiting"}
    info = await finished(client, sim, "info", {"account_hash": DEFAULT_ACCOUNT})
    assert info["result"]["queued_jobs_fast"] == 2
    assert info["result"]["subscription"]["name"] == "Standard"
    sim.release()
    for task_hash in held:
        await sim.wait_for_status(task_hash, "done")
    # The control endpoint does the same for other processes.
    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        assert (await control.post("/_sim/config", json={"hold": True})).status_code == 200
        later = await create(client, "imagine", {"prompt": "later"})
        await sim.wait_for_status(later, "waiting")
        assert (await control.post("/_sim/release")).status_code == 200
    await sim.wait_for_status(later, "done")


async def test_fault_injection(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.fail_next(
        f"{API}/imagine", status=502, body="<html>Bad gateway</html>", content_type="text/html"
    )
    broken = await client.post(f"{API}/imagine", json={"prompt": "p"})
    assert broken.status_code == 502
    assert broken.text == "<html>Bad gateway</html>"
    assert broken.headers["content-type"].startswith("text/html")
    assert not sim.tasks
    assert (await client.post(f"{API}/imagine", json={"prompt": "p"})).status_code == 200
    assert len(sim.requests_to(f"{API}/imagine")) == 2

    sim.fail_next(f"{API}/status", delay=30)
    with pytest.raises(httpx.ReadTimeout):
        await client.get(f"{API}/status", params={"hash": "x"}, timeout=0.2)

    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        added = await control.post(
            "/_sim/faults", json={"path": f"{API}/info", "status": 503, "times": 2}
        )
        assert added.status_code == 200
        for _ in range(2):
            response = await client.post(f"{API}/info", json={"account_hash": DEFAULT_ACCOUNT})
            assert response.status_code == 503
        recorded = (await control.get("/_sim/requests")).json()
    assert recorded[-1]["path"] == f"{API}/info"
    assert all(not r["path"].startswith("/_sim/") for r in recorded)


@pytest.mark.parametrize(
    ("prompt", "upsample"),
    [
        ("plain", ["v7_2x_subtle", "v7_2x_creative"]),
        ("old --v 5.2", ["v5_2x", "v5_4x"]),
        ("six --version 6", ["v6_2x_subtle", "v6_2x_creative"]),
        ("six one --v 6.1", ["v6r1_2x_subtle", "v6r1_2x_creative"]),
        ("anime --niji 6", ["v6_2x_subtle", "v6_2x_creative"]),
    ],
)
async def test_next_actions_follow_the_version(
    sim: Simulator, client: httpx.AsyncClient, prompt: str, upsample: list[str]
) -> None:
    grid = await finished(client, sim, "imagine", {"prompt": prompt})
    assert [a["type"] for a in grid["next_actions"]] == ["upscale", "variation", "reroll"]
    single = await finished(client, sim, "upscale", {"hash": grid["hash"], "choice": 1})
    actions = {a["type"]: a.get("choices") for a in single["next_actions"]}
    assert actions == {
        "vary_subtle": None,
        "vary_strong": None,
        "inpaint": None,
        "zoom": [50, 75],
        "pan": ["left", "right", "up", "down"],
        "upsample": upsample,
        "animate": ["high", "low"],
    }
    bigger = await finished(
        client, sim, "upsample", {"hash": single["hash"], "choice": upsample[0]}
    )
    assert "upsample" not in {a["type"] for a in bigger["next_actions"]}


async def test_next_actions_can_be_left_out(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.config.next_actions = False
    grid = await finished(client, sim, "imagine", {"prompt": "bare"})
    assert "next_actions" not in grid
    Task.model_validate(grid)


async def test_accounts_prefer_speed_and_describe(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    info = await client.get("/discord/info", params={"account_hash": DEFAULT_ACCOUNT})
    assert info.json()["token"] == FAKE_DISCORD_TOKEN
    assert (info.json()["status"], info.json()["is_remix"]) == ("active", False)
    unknown = await client.get("/discord/info", params={"account_hash": "nope"})
    assert unknown.status_code == 404

    toggled = await client.post(
        f"{API}/prefer", json={"account_hash": DEFAULT_ACCOUNT, "choice": "remix"}
    )
    assert toggled.json()["status"] is True
    assert toggled.json()["result"]["result"] == "on"
    speed = await client.post(
        f"{API}/speed", json={"account_hash": DEFAULT_ACCOUNT, "choice": "relax"}
    )
    assert speed.json()["result"]["type"] == "speed"
    assert sim.account_speed(DEFAULT_ACCOUNT) == "relax"
    later = await create(
        client, "prefer", {"account_hash": DEFAULT_ACCOUNT, "choice": "remix", "is_async": True}
    )
    assert (await sim.wait_for_status(later, "done"))["result"] == "off"

    sim.set_account(DEFAULT_ACCOUNT, status="tos", reason="Accept the ToS")
    info = await client.get("/discord/info", params={"account_hash": DEFAULT_ACCOUNT})
    assert (info.json()["status"], info.json()["status_reason"]) == ("tos", "Accept the ToS")
    refused = await client.post(f"{API}/imagine", json={"prompt": "p"})
    assert refused.status_code == 400
    sim.set_account(DEFAULT_ACCOUNT, fast_remaining_sec=42)
    described = await finished(client, sim, "describe", {"url": "https://x/cat.png"})
    assert len(set(described["result"])) == 4
    assert described["prompt"] == "https://x/cat.png"
    subscription = await finished(client, sim, "info", {"account_hash": DEFAULT_ACCOUNT})
    assert subscription["result"]["fast_time_remaining"]["remaining_sec"] == 42


async def test_accounts_rotate(client: httpx.AsyncClient, sim: Simulator) -> None:
    sim.config.accounts = ["acc-a", "acc-b"]
    hashes = [await create(client, "imagine", {"prompt": f"p{i}"}) for i in range(4)]
    assert [sim.tasks[h]["account_hash"] for h in hashes] == ["acc-a", "acc-b", "acc-a", "acc-b"]
    grid = await sim.wait_for_status(hashes[1], "done")
    child = await create(client, "variation", {"hash": grid["hash"], "choice": 2, "prompt": "x"})
    assert (sim.tasks[child]["account_hash"], sim.tasks[child]["prompt"]) == ("acc-b", "x")
