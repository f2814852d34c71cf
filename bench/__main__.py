"""`python -m bench` (`make bench`): the alert scan and the outbox sender (bench.alerts), the
sender's window against the old batch loop (bench.sender), then the update throughput of the
dispatcher (bench.dispatch), RSS per 1,000 active users (bench.memory), CPU per billing read
(bench.reads), then the real bot
process against the Bot API stand-in with an injected round trip, next to a bare aiogram bot
(bench.roundtrip). Each also runs alone: `python -m bench.alerts --help`, `python -m
bench.sender --help`, `python -m bench.dispatch --help`, `python -m bench.memory --help`,
`python -m bench.reads --help`, `python -m bench.roundtrip --help`."""

from __future__ import annotations

import sys

from bench import alerts


def main() -> None:
    print("== alerts: scan over a large billing, sender against Telegram's limits ==")
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        alerts.main()
        print("\n== sender: one busy chat, then 3,000 others, against Telegram's limits ==")
        from bench import sender

        sender.main()
        try:
            from bench import dispatch
        except ImportError:
            return
        print("\n== dispatch: update throughput ==")
        dispatch.main()
        from bench import memory

        print("\n== memory: RSS per 1,000 active users, flat once their dialogs expire ==")
        memory.main()
        from bench import reads

        print("\n== reads: CPU per billing read, by the path it takes ==")
        reads.main()
        try:
            from bench import roundtrip
        except ImportError:
            return
        print("\n== roundtrip: the real process and a bare bot over a network round trip ==")
        roundtrip.main()
    finally:
        sys.argv = argv


if __name__ == "__main__":
    main()
