"""`make local-stack`: keep the local stack up for the CLI (or any AWS/Polyv client) to use.

Starts moto's server and the Polyv simulator with the demo's account and catalogue, writes their
settings to `.local-stack.env`, and waits until Ctrl-C. In another shell:

    set -a; . ./.local-stack.env; set +a
    .venv/bin/polyv-prewarm quota
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .demo import CATALOGUE
from .stack import ROOT, DevStack

ENV_FILE = ROOT / ".local-stack.env"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--daily-limit", type=int, default=2000)
    parser.add_argument("--env-file", type=Path, default=ENV_FILE)
    args = parser.parse_args(argv)
    stack = DevStack(daily_limit=args.daily_limit).start()
    assert stack.polyv is not None
    for vid, brs in CATALOGUE.items():
        stack.polyv.add_video(vid, brs)
    env = stack.env()
    args.env_file.write_text("".join(f"{name}={value}\n" for name, value in sorted(env.items())))
    print(f"moto server {stack.aws_endpoint}, Polyv simulator {stack.polyv.url}")
    print(f"settings written to {args.env_file}; load them with:  set -a; . {args.env_file}; set +a")
    print("Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        args.env_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
