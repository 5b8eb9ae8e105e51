"""Give every item of an eval dataset a fixed `split`: "dev" (tune on it) or "test" (held out, report it).

    .venv/bin/python evals/assign_splits.py evals/golden.jsonl [--test-share 0.4]

Items that already have a split keep it, so the split stays fixed as a dataset grows. A new item joins the
split of its topic group when the group already has one (paraphrases of one fact never straddle the two
parts); otherwise the group's split comes from a hash of the group key, so it is reproducible. The group
key of an answerable item is its first gold document, gold pages and first key fact; an out-of-scope
item is a group of its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from wbl_assistant.text import normalize  # noqa: E402


def topic_key(item: dict) -> str:
    if not item.get("answerable"):
        return f"oos:{item['id']}"
    facts = item.get("key_facts") or [[""]]
    return "|".join([item["gold_docs"][0], ",".join(map(str, sorted(item.get("gold_pages", [])))),
                     normalize(facts[0][0])])


def hashed_split(key: str, test_share: float) -> str:
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_share else "dev"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--test-share", type=float, default=0.4)
    args = parser.parse_args()
    lines = args.dataset.read_text(encoding="utf-8").splitlines()
    items = [json.loads(line) for line in lines if line.strip()]
    groups = {topic_key(i): i["split"] for i in items if i.get("split") in ("dev", "test")}
    changed = 0
    for item in items:
        if item.get("split") in ("dev", "test"):
            continue
        key = topic_key(item)
        item["split"] = groups.setdefault(key, hashed_split(key, args.test_share))
        changed += 1
    args.dataset.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    counts = {s: sum(1 for i in items if i["split"] == s) for s in ("dev", "test")}
    print(f"{args.dataset}: {changed} items assigned; dev {counts['dev']}, test {counts['test']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
