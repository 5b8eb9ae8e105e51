"""What a question asks for, read from its form: a list, a quantity (and in which unit), a yes/no verdict, or
something else; and the quantities a text states. The answerer uses it to open with the sentence that
answers (the number in the right unit, the verdict, the whole list); the abstention gate uses it to see
whether the passages hold that kind of answer at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .text import canonical, terms

LIST = "list"
QUANTITY = "quantity"
YES_NO = "yes_no"
OTHER = "other"

_AUXILIARIES = ("can", "could", "does", "do", "is", "are", "must", "may", "should", "will", "would", "has", "have",
                "did", "was", "were", "am", "shall", "might")
_LIST_CUES = re.compile(
    r"^\s*(list|name|enumerate|outline)\b|\b(what|which) (are|were) (the|all|some|its|their)\b|"
    r"\b(what|which) \w+ (are|were) (there|required|needed|allowed|included|listed|covered)\b|"
    r"\b(steps|stages|phases|components|elements|requirements|criteria|types|kinds|options|ways|parts|areas|"
    r"categories|strategies|pieces|items|activities|examples|list)\b", re.IGNORECASE)
#: "Which sectors ...", "what levels ...": a question asking for several things by a plural noun.
_PLURAL_WHICH = re.compile(r"\b(which|what)\s+(?!(?:is|was|does|has|this|its|ones|else|kinds?|sorts?)\b)"
                           r"(?:[a-z]+\s+)?(?!(?:does|goes|has|is|was)\b)([a-z]+[^s'\W]s)\b", re.IGNORECASE)
#: A question asking how to reach someone: a phone number, an e-mail address, "what's the website".
_CONTACT_ASKED = re.compile(r"\b(phone|telephone|fax|toll[- ]?free) numbers?\b|\bhotline\b|\be-?mail address(es)?\b|"
                            r"\b(what|which)(?:'s|\s+is|\s+are)\s+(?:\S+\s+){0,4}?(web ?sites?|url|web address)\b",
                            re.IGNORECASE)
_QUANTITY_CUES = re.compile(
    r"\bhow (many|much|long|old|late|early|often|soon|fast|quickly)\b|\bwithin how\b|" + _CONTACT_ASKED.pattern + "|"
    r"\bwhat (time|age|date|year|day|hours)\b|^\s*when\b|"
    r"\bby (what|which) (date|day|time|grade|age|year)\b|"
    r"\b(deadline|latest|earliest|minimum|maximum|max|min|cap|limit|"
    r"at least|at most|age|cost|fee|wage|amount|number of|percent|percentage)\b", re.IGNORECASE)
#: "Is there a cap on ...?": a yes/no question whose answer is the quantity ("yes: no more than $5 million").
_ASKS_FOR_BOUND = re.compile(r"^\s*(is|are) there (a|an|any) (\w+ )?(cap|limit|maximum|minimum|deadline|fee|"
                             r"charge|cost)s?\b", re.IGNORECASE)
#: The unit a quantity question expects, from the words it uses (first match wins).
_UNIT_CUES = [
    ("contact", _CONTACT_ASKED),
    ("rate", re.compile(r"\b(hourly|wage|wages|pay rate|rate of pay|per hour|an hour|salary)\b", re.IGNORECASE)),
    ("time", re.compile(r"\bhow (late|early)\b|\bwhat time\b|\buntil\s+\d|\b\d{1,2}\s*(am|pm)\b|"
                        r"\b(start|end) time\b|\b(latest|earliest)\b.*\b(evening|night|morning|clock)\b|"
                        r"\b(evening|night|morning)\b.*\b(latest|earliest)\b", re.IGNORECASE)),
    ("age", re.compile(r"\bhow old\b|\bwhat age\b|\bage\b|\baged\b|\bminimum age\b", re.IGNORECASE)),
    ("dollar", re.compile(r"\b(cost|costs|fee|fees|wage|wages|pay|salary|price|dollars?|funding|grant|fine|"
                          r"penalty|money)\b|\$", re.IGNORECASE)),
    ("minute", re.compile(r"\bminutes?\b|\bmeal (break|period)s?\b", re.IGNORECASE)),
    ("hour", re.compile(r"\bhours?\b|\b(weekly|daily)\s+(max|maximum|cap|limit)\b|"
                        r"\b(max|maximum|cap|limit)\s+(per|a)\s+(week|day)\b", re.IGNORECASE)),
    ("day", re.compile(r"\bdays?\b", re.IGNORECASE)),
    ("week", re.compile(r"\bweeks?\b", re.IGNORECASE)),
    ("date", re.compile(r"^\s*when\b|\bdate\b|\bdeadline\b|\bwhat year\b|\bby when\b|\beffective\b",
                        re.IGNORECASE)),
    ("percent", re.compile(r"\bpercent(age)?\b|%", re.IGNORECASE)),
    ("duration", re.compile(r"\bhow (long|fast|quickly|soon)\b|\bwithin how\b", re.IGNORECASE)),
]
_DURATIONS = {"hour", "minute", "day", "week", "month", "year"}
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
#: A stated quantity, in canonical text (see `text.canonical`): number and unit.
_QUANTITY = re.compile(
    r"(?P<dollar>\$\s?\d[\d,]*(?:\.\d+)?(?:\s*(?:million|billion|thousand))?)|"
    r"(?P<time>\b\d{1,2}(?::\d{2})?\s?[ap]m\b)|"
    rf"(?P<date>\b(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b|\b(?:19|20)\d{{2}}\b|"
    rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\b|\blabor day\b)|"
    r"(?P<number>\b\d+(?:\.\d+)?)\s*-?\s*(?P<unit>year\s+old|hours?|minutes?|days?|weeks?|months?|"
    r"years?|percent|%)?", re.IGNORECASE)
_UNIT_OF = {"hour": "hour", "hours": "hour", "minute": "minute", "minutes": "minute", "day": "day", "days": "day",
            "week": "week", "weeks": "week", "month": "month", "months": "month", "year": "year", "years": "year",
            "percent": "percent", "%": "percent"}
_VERDICT = re.compile(
    r"\b(not|no|never|only|unless|except|exempt|excluded?|excludes|prohibit\w*|forbid\w*|bar(s|red)?|"
    r"must|may|can|cannot|can't|allowed|permitted|required|requires|applies|apply|does|do|is|are|yes)\b",
    re.IGNORECASE)


#: A quantity stated as a bound ("at least 16", "under 16", "16 or older") is a rule about the question's
#: subject too, not about another subject.
_BOUND = re.compile(r"\b(at least|at most|under|over|younger than|older than|less than|more than|up to|minimum|"
                    r"maximum|no more than|no less than)\s+(age\s+)?\d|\d+\s*(year old\s*)?(or|and)\s+"
                    r"(older|over|up|younger|under|above|below)\b", re.IGNORECASE)


@dataclass(frozen=True)
class QuestionShape:
    kind: str
    unit: str = ""
    quantities: frozenset[tuple[str, str]] = frozenset()
    #: What a "how many <things>" question counts (the term of the things), when no unit names it.
    counted: str = ""


_PART_BREAK = re.compile(
    r"\?\s+(?=\S)|;\s+|,?\s+and\s+(?:(?:for|by|in|on|at|to|from|with|since|until)\s+)?"
    r"(?=(?:what|when|which|how|who|whom|where|why|whether|is|are|does|do|did|can|"
    r"could|was|were|will|should)\b)", re.IGNORECASE)


def question_parts(question: str) -> list[str]:
    """The questions a question holds ("When was it released, and what kind of tool is it?" holds two)."""
    parts = [p.strip(" ,?") for p in _PART_BREAK.split(question.strip())]
    return [p for p in parts if len(p.split()) >= 2] or [question]


_ASKING = ("what", "whats", "what's", "when", "which", "how", "who", "whom", "where", "why", "whether", *_AUXILIARIES)
_CLAUSE_START = re.compile(r"(?:,|\bso|\bbut|\band|\bthen|\bnow|\bbasically|\bquestion is|\bi wonder)\s+"
                           rf"(?=(?:{'|'.join(_ASKING)})\b)", re.IGNORECASE)
#: A question shorter than this (in words) says what it asks without a preamble to look past.
FOCUS_MIN_WORDS = 20


def focus_of(question: str) -> str:
    """The ask inside a question that also tells a story or remarks on itself ("We have a student who ...
    Can both count toward her CDE?", "what are the strands again? a board member asked"): its last
    interrogative sentence, or, in a long question, that sentence's last interrogative clause. Empty when
    the question is all ask. Read beside the whole question, so the story still counts."""
    text = question.strip()
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    asking = [s for s in sentences if s.rstrip().endswith("?") or s.split()[0].lower().strip(",") in _ASKING]
    if len(text.split()) < FOCUS_MIN_WORDS:
        short = asking[-1].strip() if len(asking) == 1 and len(sentences) > 1 else ""
        return short if len(short.split()) >= 3 else ""
    focus = asking[-1] if asking else sentences[-1]
    clauses = [m.end() for m in _CLAUSE_START.finditer(focus)]
    if clauses and len(focus[clauses[-1]:].split()) >= 4 and len(focus.split()) >= FOCUS_MIN_WORDS // 2:
        focus = focus[clauses[-1]:]
    focus = focus.strip()
    return focus if focus != text and len(focus.split()) >= 3 else ""


@lru_cache(maxsize=50_000)
def quantities(text: str) -> frozenset[tuple[str, str]]:
    """(value, unit) of every quantity a text states: ("15", "age"), ("9", "time"), ("18", "hour"),
    ("$3,500", "dollar"), ("2025", "date"), ("60", "")."""
    out = set()
    for match in _QUANTITY.finditer(canonical(text)):
        if match.group("dollar"):
            out.add((match.group("dollar").replace(" ", ""), "dollar"))
        elif match.group("time"):
            out.add((re.match(r"\d+", match.group("time")).group(), "time"))
        elif match.group("date"):
            out.add((match.group("date").lower(), "date"))
        else:
            unit = (match.group("unit") or "").strip(" -").lower()
            kind = "age" if "old" in unit else _UNIT_OF.get(unit, "")
            out.add((match.group("number"), kind))
    return frozenset(out)


#: "If our district misses one criterion, are we out of compliance?": the ask is the main clause.
_LEADING_CLAUSE = re.compile(r"^\s*(if|when|once|after|before|since|while|because)\b[^,?]{3,160},\s*"
                             rf"(?=(?:{'|'.join(_ASKING)})\b)", re.IGNORECASE)


def shape_of(question: str) -> QuestionShape:
    """The kind of answer `question` asks for (list, quantity, yes/no, other), the unit, its own quantities.
    Read from the main clause: a leading "if ..., " or "when ..., " clause sets the scene, not the ask."""
    text = _LEADING_CLAUSE.sub("", canonical(question).strip().lower())
    stated = frozenset(quantities(question))
    first = re.findall(r"[a-z']+", text)[:1]
    if _QUANTITY_CUES.search(text):
        unit = next((name for name, cue in _UNIT_CUES if cue.search(text)), "")
        if not (first and first[0] in _AUXILIARIES) or unit or _ASKS_FOR_BOUND.search(text):
            counted = _counted(text) if not unit else ""
            return QuestionShape(QUANTITY, "count" if counted else unit, stated, counted)
    if (_LIST_CUES.search(text) or _PLURAL_WHICH.search(text)) and not (first and first[0] in _AUXILIARIES):
        return QuestionShape(LIST, "", stated)
    if (first and first[0] in _AUXILIARIES) or re.search(r"\bor not\b", text):
        return QuestionShape(YES_NO, "", stated)
    return QuestionShape(OTHER, "", stated)


#: "How many students ...", "how many IMBI math badges ...": the plural noun a count question counts.
_COUNTED = re.compile(r"\bhow many\s+(?:[a-z'-]+\s+){0,2}?([a-z-]+[^s\W]s)\b")


def _counted(text: str) -> str:
    match = _COUNTED.search(text)
    found = terms(match.group(1)) if match else []
    return found[-1] if found else ""


def shape_of_ask(focus: str, query: str) -> QuestionShape:
    """The shape of a question read by its ask (`focus_of`), or by the whole query when the ask alone has no
    recognizable form ("What does it tell districts to do? List them.")."""
    shape = shape_of(focus) if focus else shape_of(query)
    return shape_of(query) if focus and shape.kind == OTHER else shape


#: How one reaches someone: a phone number, an e-mail address, a web address.
_CONTACT = re.compile(r"\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b|\b1-8\d\d-\w{3}-\w{4}\b|"
                      r"\b[\w.+-]+@[\w-]+\.[\w.]+\b|\bhttps?://\S+|\bwww\.\S+|\b[\w-]+\.(gov|org|com|edu|net|us)\b",
                      re.IGNORECASE)
#: Pay stated as a rate: "$15 an hour", "$600 per week", "$13.00/hour".
_RATE = re.compile(r"\$\s?\d[\d,]*(?:\.\d+)?\s*(?:(?:per|an?|each|every)\s+|/\s*)(hour|hr|day|week|month|year)\b",
                   re.IGNORECASE)


#: A count's number and the counted things stand this many terms apart at most ("60 competitive events").
COUNT_REACH = 4
#: A reply that is the count itself, its items after it ("A: Seven: Agriculture; Arts; ...", "Three.").
_BARE_COUNT = re.compile(r"^\W*(?:a:\s*)?(?!(?:19|20)\d\d\b)\d+\s*[:.;,\u2013\u2014-](?!\d)", re.IGNORECASE)
#: A number that can be a count: not a year ("Since 2024, students ...").
_COUNT_NUMBER = re.compile(r"(?!(?:19|20)\d\d$)\d+(?:\.\d+)?")


def answers_quantity(text: str, unit: str, counted: str = "") -> bool:
    """Whether `text` states a quantity of the expected unit ("" expects any number; "count" a number of
    the `counted` things)."""
    if unit == "count":
        if _BARE_COUNT.match(canonical(text)):
            return True
        found = terms(canonical(text))
        return any(_COUNT_NUMBER.fullmatch(word) and counted in found[n + 1:n + 1 + COUNT_REACH]
                   for n, word in enumerate(found))
    if unit == "contact":
        return bool(_CONTACT.search(text))
    if unit == "rate":
        return bool(_RATE.search(canonical(text)))
    found = quantities(text)
    if not unit:
        return bool(found)
    if unit == "duration":
        return any(kind in _DURATIONS or kind == "date" for _, kind in found)
    return any(kind == unit for _, kind in found)


def holds_verdict(text: str) -> bool:
    return bool(_VERDICT.search(text))


def states_bound(question: QuestionShape, text: str) -> bool:
    """Whether a text states a bound ("at least 16", "under 16") while the question pins a quantity down:
    the rule that settles the question for its subject."""
    return bool(question.quantities) and bool(_BOUND.search(canonical(text)))


def conflicting_subject(question: QuestionShape, text: str) -> bool:
    """A text about other quantities of a kind the question pins down (16- and 17-year-olds, when asked
    about a 15-year-old) does not answer it first."""
    if not question.quantities or _BOUND.search(canonical(text)):
        return False
    found = quantities(text)
    for value, kind in question.quantities:
        if kind not in ("age", "hour", "time", "dollar"):
            continue
        same_kind = {v for v, k in found if k == kind}
        if same_kind and value not in same_kind:
            return True
    return False
