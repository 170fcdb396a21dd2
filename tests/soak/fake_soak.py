#!/usr/bin/env python3
"""The soak test's fake backends: tests/live/fake_openai.py (the classifier, the primary
and xAI on one loopback port), used as it is, with two changes made from here:

- its classifier also answers MODERATE ("explain", "compare", "difference") and, for a
  message holding NO_LABEL, a reply with no label at all, so that the router's
  classifier fallback runs too (the real classifier does that now and then);
- for a message holding one of HOSTILE's markers it answers that route's label
  (HOSTILE or HOSTILE_BARE: the routes soak.sh adds for the misbehaving backend,
  fake_hostile.py; hostile.py sends them);
- one log line per request is not written (a 10-minute soak makes ~100k of them);
  errors still are.

`expected_label(text)` is the label the router should end up with for a user message
(after the fallback), so load.py can check the answers and the session logs.

Usage: fake_soak.py [fake_openai.py's options]; prints "listening on 127.0.0.1:PORT".
"""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "live"))
import fake_openai  # noqa: E402  (tests/live/fake_openai.py, read-only)

NO_LABEL = "no-label-please"
MODERATE_WORDS = ("explain", "compare", "difference")
# config/router.toml's [[routing.fallback_rules]] ENRICH keywords: with no label from the
# classifier, these send a message to ENRICH instead of the fallback (MODERATE).
# The misbehaving backend's routes (soak.sh appends them to the scratch config): a
# message holding the marker is labelled so. HOSTILE fails over to MODERATE; HOSTILE_BARE
# has no failover, so its client sees the router's error.
HOSTILE = {"hostile-backend-failover": "HOSTILE", "hostile-backend-bare": "HOSTILE_BARE"}
FALLBACK_ENRICH = ("today", "tonight", "latest", "news", "weather", "price of", "stock", "score")

_original_label_for = fake_openai.label_for


def classifier_reply(text):
    """What the fake classifier answers (after its <think> block) for the classifier
    request `text` (which wraps the message in <message>…</message>)."""
    label = _original_label_for(text)
    words = re.search(r"<message>(.*?)</message>", text, re.S)
    words = (words.group(1) if words else text).lower()
    for marker, hostile in HOSTILE.items():
        if marker in words:
            return hostile
    if NO_LABEL in words:
        return "I am not sure what this is."
    if label == "SIMPLE" and any(w in words for w in MODERATE_WORDS):
        return "MODERATE"
    return label


def expected_label(user_text):
    """The label the router should log for a chat whose last user message is
    `user_text` (classified, not META)."""
    reply = classifier_reply(f"<message>\n{user_text}\n</message>")
    if reply in ("SIMPLE", "MODERATE", "COMPLEX", "ENRICH", *HOSTILE.values()):
        return reply
    lowered = user_text.lower()
    return "ENRICH" if any(w in lowered for w in FALLBACK_ENRICH) else "MODERATE"


def main():
    fake_openai.label_for = classifier_reply
    fake_openai.Handler.log_request = lambda self, code="-", size="-": None
    fake_openai.main()


if __name__ == "__main__":
    main()
