"""Synthetic users and what they say, drawn from one seeded ``random.Random``.

One seed gives the same users, messages and failure pattern on every run, which keeps
screenshots and bug reports reproducible (timings still vary with the machine).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FIRST_NAMES = ("Anna", "Boris", "Chen", "Dana", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jon")
#: (what the user says, the fact the assistant stores)
FACTS = (
    ("I prefer tea over coffee", "prefers tea over coffee"),
    ("I live in Lisbon now", "lives in Lisbon"),
    ("my dog is called Pixel", "has a dog called Pixel"),
    ("I work night shifts on Fridays", "works night shifts on Fridays"),
    ("I'm allergic to peanuts", "is allergic to peanuts"),
    ("I play the cello", "plays the cello"),
    ("I'm learning Portuguese", "is learning Portuguese"),
    ("send my reminders in the morning please", "wants reminders in the morning"),
    ("I go running every Tuesday", "runs every Tuesday"),
    ("dentist next Wednesday at 10", "has a dentist appointment next Wednesday at 10"),
)
QUESTIONS = (
    "what's on my calendar tomorrow?",
    "remind me to call mum at 6",
    "summarise the article I sent yesterday",
    "how long does it take to boil an egg?",
    "book a table for two on Friday",
    "what did I say about my dog?",
    "translate 'good morning' to Portuguese",
    "move my 3pm meeting to 4pm",
)
#: One user keeps pasting markup: the admin pages must show it as text (see the browser
#: tests), exactly as they must for any real user input.
HOSTILE_TEXTS = (
    '<script>alert("xss from a user")</script> hello?',
    '<img src=x onerror=alert("xss")> what is this',
)
TOOLS = ("calendar.list_events", "calendar.create_event", "reminders.create", "web.search")
MODELS = ("gpt-4o-mini", "claude-haiku", "gpt-4o")


@dataclass(frozen=True)
class User:
    user_id: int
    name: str
    chat_id: int
    hostile: bool = False


def make_users(rng: random.Random, count: int = 8) -> list[User]:
    users = []
    for i in range(count):
        uid = 100_000 + rng.randrange(900_000)
        users.append(User(uid, FIRST_NAMES[i % len(FIRST_NAMES)], uid * 10 + 7, hostile=i == 0))
    return users


def message_text(rng: random.Random, user: User) -> tuple[str, str | None]:
    """(text, fact) where fact is what the assistant should remember, if anything."""
    if user.hostile and rng.random() < 0.5:
        return rng.choice(HOSTILE_TEXTS), None
    if rng.random() < 0.3:
        said, fact = rng.choice(FACTS)
        return said, fact
    return rng.choice(QUESTIONS), None
