"""A minimal amqtt broker for ``just demo`` when mosquitto is not installed.

Usage: python -m devtools.embedded_broker PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import warnings


async def _serve(port: int) -> None:
    # amqtt warns about its own plugin loading; nothing for a demo user to act on.
    warnings.simplefilter("ignore", DeprecationWarning)
    from amqtt.broker import Broker

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
            "topic-check": {"enabled": False},
        }
    )
    await broker.start()
    try:
        await asyncio.Event().wait()
    finally:
        await broker.shutdown()


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 1883
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(port))


if __name__ == "__main__":
    main()
