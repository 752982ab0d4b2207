"""``certd`` with one part slowed down, for the role tests: ``python -c``
with a script that replaces that part, then runs ``service.cli.main`` on the
arguments. Everything else runs as in production."""

import sys
from pathlib import Path

ENDLESS_SCHEDULER_PASS = """
import sys, time
import structlog
from scheduler.passes import SchedulerPass
from service.cli import main

def endless_pass(self):
    structlog.get_logger().info("endless_pass_started")
    time.sleep(3600)

SchedulerPass.run = endless_pass
sys.exit(main(sys.argv[1:]))
"""

GATED_HTTP_STARTUP = """
import asyncio, os, sys
import uvicorn
from service.cli import main

gate = sys.argv.pop(1)
startup = uvicorn.Server.startup

async def gated_startup(self, sockets=None):
    while not os.path.exists(gate):
        await asyncio.sleep(0.05)
    await startup(self, sockets)

uvicorn.Server.startup = gated_startup
sys.exit(main(sys.argv[1:]))
"""


def with_endless_scheduler_pass() -> tuple[str, ...]:
    """certd whose scheduler passes never end; each logs
    ``endless_pass_started`` as it begins."""
    return (sys.executable, "-c", ENDLESS_SCHEDULER_PASS)


def with_gated_http_startup(gate: Path) -> tuple[str, ...]:
    """certd whose HTTP server starts up only once the file ``gate`` exists."""
    return (sys.executable, "-c", GATED_HTTP_STARTUP, str(gate))
