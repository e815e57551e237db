"""The orchestration: a prewarm (plan -> claim -> send -> record), one chunk's Polyv calls, and
the daily drain. Talks to the world only through the domain's ports."""
