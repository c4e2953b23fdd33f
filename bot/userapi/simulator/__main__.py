"""Serve the simulator alone: ``python -m bot.userapi.simulator --port 8090``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from bot.userapi.simulator import Simulator, SimulatorConfig


async def _serve(args: argparse.Namespace) -> None:
    config = SimulatorConfig(
        pace=args.pace,
        api_key=args.api_key,
        grid_size=args.grid_size,
        next_actions=not args.no_next_actions,
    )
    simulator = Simulator(config)
    url = await simulator.start(args.host, args.port)
    print(f"userapi simulator on {url}", flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    try:
        await done.wait()
    finally:
        await simulator.stop()


def main(argv: list[str] | None = None) -> None:
    """Command line entry: serve the simulator until interrupted."""
    parser = argparse.ArgumentParser(description="userapi.ai Midjourney API simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between status steps")
    parser.add_argument("--api-key", default=None, help="accept only this key")
    parser.add_argument("--grid-size", type=int, default=1024)
    parser.add_argument("--no-next-actions", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
