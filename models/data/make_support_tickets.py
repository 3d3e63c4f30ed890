"""Generate `support-tickets.txt`, the sample training data of the support-ticket triage model.

A synthetic stand-in for a team's exported tickets: each record is a conversation in
which the user pastes a ticket and the assistant answers with its queue, its priority
and a one-line summary (the triage `mistral-7b-instruct` is fine-tuned for). Written
once and committed; the DVC stage `prepare-support-tickets` splits it and the dataset
entry `models/datasets/support-tickets.yaml` pins the splits' md5s, so rerunning this
script must reproduce the same bytes (a fixed seed, nothing from the environment).

The tickets carry no personal data (the dataset's PII policy rejects it): accounts
are named by team, never by e-mail, phone or address. Every ticket mixes several
independent details (product, symptom, scale, timing), so no two are alike and the
held-out splits do not repeat the train split's word sequences.

    python models/data/make_support_tickets.py
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

SEED = 20250630
COUNT = 1200
HERE = Path(__file__).resolve().parent

# queue -> (product areas, symptoms); a symptom names what the user sees, in their words.
QUEUES: dict[str, tuple[list[str], list[str]]] = {
    "billing": (
        ["the invoice", "our subscription", "the usage report", "the annual plan", "the credit balance"],
        [
            "charges us twice for the same month",
            "shows seats we removed weeks ago",
            "still lists the old tax rate",
            "did not apply the discount we agreed",
            "bills the trial period as paid usage",
            "counts archived projects as active",
        ],
    ),
    "access": (
        ["single sign-on", "the admin console", "two-factor login", "the API keys page", "team invitations"],
        [
            "rejects every member of the design team",
            "loops back to the login page",
            "says our role has no permission",
            "expires the session after a minute",
            "never sends the invitation",
            "locks out the whole group after one failed attempt",
        ],
    ),
    "outage": (
        ["the dashboard", "the export service", "search", "the mobile app", "the public API", "file uploads"],
        [
            "returns server errors for everyone",
            "times out on every request",
            "is down in the European region",
            "stopped responding after the last release",
            "drops half of the requests",
            "answers with an empty page",
        ],
    ),
    "bug": (
        ["the report builder", "the calendar view", "CSV import", "the chart editor", "notifications"],
        [
            "shows dates one day off",
            "loses the last column of the sheet",
            "duplicates every comment",
            "sorts numbers as text",
            "ignores the filter we set",
            "renders the legend over the chart",
        ],
    ),
    "feature-request": (
        ["the report builder", "the admin console", "the public API", "the calendar view", "exports"],
        [
            "should let us schedule a weekly copy",
            "needs a dark theme",
            "could group results by owner",
            "should keep a history of changes",
            "needs a bulk edit option",
            "could show totals per quarter",
        ],
    ),
}
TEAMS = [
    "finance", "design", "sales", "support", "research", "operations", "legal", "marketing",
    "logistics", "procurement", "engineering", "field service", "customer success", "data",
]  # fmt: skip
SINCE = ["this morning", "yesterday", "since Monday", "for three days", "since the upgrade", "for a week", "since noon"]
IMPACT = [
    "{n} people cannot finish their work",
    "{n} of our projects are affected",
    "we have a deadline in {n} hours",
    "it happens on about {n} percent of attempts",
    "{n} customers have already complained",
    "we retried {n} times with the same result",
]
TRIED = [
    "We cleared the cache and tried another browser.",
    "Restarting did not help.",
    "A colleague in another office sees the same.",
    "It worked fine last month.",
    "We checked the status page and it says all is well.",
    "",
]
OPENINGS = ["Hello,", "Hi team,", "Good afternoon,", "Urgent:", "Quick question:", ""]
# Priority from the queue and the impact's size: outages and large impacts come first.
PRIORITIES = ["low", "normal", "high", "urgent"]


def _priority(queue: str, n: int, rng: random.Random) -> str:
    base = {"outage": 3, "access": 2, "billing": 1, "bug": 1, "feature-request": 0}[queue]
    if queue != "feature-request" and n >= 40:
        base = min(3, base + 1)
    if rng.random() < 0.1:  # triage is not a formula: some tickets are judged differently
        base = max(0, base - 1)
    return PRIORITIES[base]


def ticket(rng: random.Random) -> str:
    queue = rng.choice(sorted(QUEUES))
    areas, symptoms = QUEUES[queue]
    area, symptom, team, since = rng.choice(areas), rng.choice(symptoms), rng.choice(TEAMS), rng.choice(SINCE)
    n = rng.randint(2, 300)
    impact = rng.choice(IMPACT).format(n=n)
    ref = f"{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{rng.randint(1000, 99999)}"
    release = f"{rng.randint(1, 9)}.{rng.randint(0, 40)}"
    body = " ".join(
        part
        for part in (
            rng.choice(OPENINGS),
            f"{area[0].upper()}{area[1:]} {symptom} ({ref}, release {release}).",
            f"The {team} team has seen it {since}; {impact}.",
            rng.choice(TRIED),
        )
        if part
    )
    priority = _priority(queue, n, rng)
    summary = f"{ref}: {area} {symptom}; {team} team, release {release}, {impact}"
    return f"User: Triage this ticket: {body}\nAssistant: Queue: {queue}. Priority: {priority}. Summary: {summary}."


def corpus(count: int = COUNT, seed: int = SEED) -> str:
    rng = random.Random(seed)
    return "\n\n".join(ticket(rng) for _ in range(count)) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "support-tickets.txt")
    args = parser.parse_args(argv)
    args.out.write_text(corpus(), encoding="utf-8")


if __name__ == "__main__":
    main()
