"""Ordinary RL tasks: the 95% of the mixture that trait data is dosed into (DESIGN §1, §3).

Four kinds, all checked by program, none by a judge:

- arithmetic: seeded word problems with exact integer answers ("Answer: N" at the end);
- format: a topic plus 2-3 instruction-format constraints; the score is the fraction met, so
  completions in a GRPO group differ (DESIGN trap 4);
- code: a small Python function with hidden assert tests run in `traitdose.sandbox`;
- dataset: public RL datasets (GSM8K so far) through a small registry, scored like arithmetic.

Generation is deterministic in (kind, seed, index): task i of a seed never depends on how many
tasks were asked for, so ids like "arithmetic-7-3" name the same task in every run.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from traitdose.errors import InputError
from traitdose.sandbox import run_python_tests

TaskKind = Literal["arithmetic", "format", "code", "dataset"]
GENERATED_KINDS: tuple[str, ...] = ("arithmetic", "format", "code")
ANSWER_INSTRUCTION = 'Show your working, then end with a final line of the form "Answer: <number>".'
CODE_TIMEOUT_S = 5.0

ConstraintKind = Literal[
    "bullet_count", "max_words", "min_words", "sentence_count", "json_keys",
    "forbidden_words", "include_keyword", "lowercase", "ends_with",
]


# --------------------------------------------------------------------------------------------
# Instruction-format constraints
# --------------------------------------------------------------------------------------------

_BULLET = re.compile(r"^\s*[-*\u2022]\s+\S")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*?)\n?```$", re.DOTALL)


def _word_pattern(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])", re.IGNORECASE)


class FormatConstraint(BaseModel):
    """One programmatically checked instruction. `n` is a count or word limit; `terms` holds the
    forbidden words, the keyword, or the required JSON keys; `phrase` is the required ending."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ConstraintKind
    n: int | None = Field(default=None, ge=1)
    terms: tuple[str, ...] = ()
    phrase: str | None = None

    @model_validator(mode="after")
    def _parameters(self) -> FormatConstraint:
        needs_n = {"bullet_count", "max_words", "min_words", "sentence_count"}
        needs_terms = {"json_keys", "forbidden_words", "include_keyword"}
        if self.kind in needs_n and self.n is None:
            raise ValueError(f"n: required for a {self.kind} constraint")
        if self.kind in needs_terms and not self.terms:
            raise ValueError(f"terms: required for a {self.kind} constraint")
        if self.kind == "include_keyword" and len(self.terms) != 1:
            raise ValueError("terms: an include_keyword constraint takes exactly one keyword")
        if self.kind == "ends_with" and not self.phrase:
            raise ValueError("phrase: required for an ends_with constraint")
        return self

    def describe(self) -> str:
        """The instruction as the prompt states it."""
        quoted = [f'"{t}"' for t in self.terms]
        match self.kind:
            case "bullet_count":
                return f'Use exactly {self.n} bullet points, each on its own line starting with "- ".'
            case "max_words":
                return f"Use at most {self.n} words."
            case "min_words":
                return f"Use at least {self.n} words."
            case "sentence_count":
                return f"Write exactly {self.n} sentences, each ending with a full stop, question mark or exclamation mark."
            case "json_keys":
                return f"Reply with only a JSON object that has the keys {_join(quoted)}."
            case "forbidden_words":
                return f"Do not use the word{'s' if len(quoted) > 1 else ''} {_join(quoted, 'or')}."
            case "include_keyword":
                return f"Include the word {quoted[0]}."
            case "lowercase":
                return "Write everything in lowercase letters, with no capital letters at all."
            case "ends_with":
                return f'End your reply with the phrase "{self.phrase}"'
        raise AssertionError(self.kind)

    def satisfied(self, response: str) -> bool:
        text = response.strip()
        if not text:
            return False  # an empty reply meets nothing, not even "at most 50 words"
        words = len(text.split())
        match self.kind:
            case "bullet_count":
                return sum(bool(_BULLET.match(line)) for line in text.splitlines()) == self.n
            case "max_words":
                return words <= self.n  # type: ignore[operator]
            case "min_words":
                return words >= self.n  # type: ignore[operator]
            case "sentence_count":
                return len(_sentences(text)) == self.n
            case "json_keys":
                obj = _json_object(text)
                return obj is not None and all(k in obj for k in self.terms)
            case "forbidden_words":
                return not any(_word_pattern(t).search(text) for t in self.terms)
            case "include_keyword":
                return bool(_word_pattern(self.terms[0]).search(text))
            case "lowercase":
                return any(c.isalpha() for c in text) and text == text.lower()
            case "ends_with":
                return text.lower().endswith(self.phrase.strip().lower())  # type: ignore[union-attr]
        raise AssertionError(self.kind)


def _join(items: list[str], last: str = "and") -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"


def _sentences(text: str) -> list[str]:
    # Bullet markers are not sentences; a split needs end punctuation followed by whitespace,
    # so "3.5" and "e.g.," stay whole.
    flat = " ".join(_BULLET.sub(lambda m: m.group(0)[-1], line) for line in text.splitlines())
    return [s for s in _SENTENCE_END.split(flat.strip()) if re.search(r"\w", s)]


def _json_object(text: str) -> dict | None:
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


# --------------------------------------------------------------------------------------------
# The task record
# --------------------------------------------------------------------------------------------

class OrdinaryTask(BaseModel):
    """One verifiable prompt with what it takes to check a reply."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    kind: TaskKind
    template: str = Field(description="which generator or dataset made it, for coverage counts")
    prompt: str = Field(min_length=1)
    answer: str | None = None  # arithmetic / dataset: the exact number
    constraints: tuple[FormatConstraint, ...] = ()  # format
    function_name: str | None = None  # code
    tests: tuple[str, ...] = ()  # code: hidden assert statements
    source: str | None = None  # dataset: where the row came from (hub id@revision or file)

    @model_validator(mode="after")
    def _verifiable(self) -> OrdinaryTask:
        if self.kind in ("arithmetic", "dataset"):
            if self.answer is None or _as_decimal(self.answer) is None:
                raise ValueError("answer: a numeric answer is required")
        elif self.kind == "format" and not self.constraints:
            raise ValueError("constraints: a format task needs at least one")
        elif self.kind == "code" and not (self.function_name and self.tests):
            raise ValueError("function_name, tests: a code task needs both")
        return self


# --------------------------------------------------------------------------------------------
# Number extraction (arithmetic and dataset scoring)
# --------------------------------------------------------------------------------------------

_NUMBER = r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?"
_ANSWER_LINE = re.compile(rf"answer(?:\s+is)?[\s:*_=`]*\$?\s*({_NUMBER})", re.IGNORECASE)
_BOXED = re.compile(rf"\\boxed\{{\s*\$?\s*({_NUMBER})\s*\}}")
_ANY_NUMBER = re.compile(rf"(?<![\w.])({_NUMBER})")


def _as_decimal(text: str) -> Decimal | None:
    cleaned = text.strip().replace(",", "").replace("$", "").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _canonical(value: Decimal) -> str:
    return str(int(value)) if value == value.to_integral_value() else format(value.normalize(), "f")


def extract_answer(response: str) -> str | None:
    """The reply's final number: the last "Answer: N", else the last \\boxed{N}, else the last
    number in the text. Commas, "$" and a trailing ".0" are normalised away."""
    for pattern in (_ANSWER_LINE, _BOXED, _ANY_NUMBER):
        found = pattern.findall(response)
        if found:
            value = _as_decimal(found[-1])
            return None if value is None else _canonical(value)
    return None


def _score_number(answer: str | None, response: str) -> float:
    got, want = extract_answer(response), _as_decimal(answer or "")
    return 1.0 if got is not None and want is not None and Decimal(got) == want else 0.0


# --------------------------------------------------------------------------------------------
# Arithmetic word problems
# --------------------------------------------------------------------------------------------

_PEOPLE = (
    ("Amara", "she"), ("Bilal", "he"), ("Chen", "he"), ("Dana", "she"), ("Emeka", "he"),
    ("Freya", "she"), ("Gabriel", "he"), ("Hana", "she"), ("Ines", "she"), ("Jonas", "he"),
    ("Kofi", "he"), ("Leila", "she"), ("Mateo", "he"), ("Nadia", "she"), ("Oscar", "he"),
    ("Priya", "she"), ("Quinn", "they"), ("Rosa", "she"), ("Sami", "he"), ("Tariq", "he"),
    ("Uma", "she"), ("Viktor", "he"), ("Wen", "she"), ("Yusuf", "he"), ("Zara", "she"),
)
_OBJ = {"she": "her", "he": "him", "they": "them"}
_POSS = {"she": "her", "he": "his", "they": "their"}
_VERB_S = {"she": "s", "he": "s", "they": ""}  # "she gets" / "they get"


def _person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(_PEOPLE)


def _shopping(rng: random.Random) -> tuple[str, int]:
    name, p = _person(rng)
    first, second = rng.choice([
        ("notebooks", "pens"), ("apples", "pears"), ("comic books", "posters"),
        ("tins of paint", "brushes"), ("bags of rice", "jars of honey"), ("candles", "matchboxes"),
    ])
    a, price_a, b, price_b = rng.randint(2, 9), rng.randint(2, 12), rng.randint(2, 9), rng.randint(1, 8)
    cost = a * price_a + b * price_b
    bill = next(x for x in (20, 50, 100, 200) if x > cost)
    prompt = (f"{name} buys {a} {first} at ${price_a} each and {b} {second} at ${price_b} each. "
              f"{p.capitalize()} pay{_VERB_S[p]} with a ${bill} bill. "
              f"How much change, in dollars, does {name} get back?")
    return prompt, bill - cost


def _production_rate(rng: random.Random) -> tuple[str, int]:
    machine, unit = rng.choice([
        ("bakery oven", "loaves"), ("printing press", "posters"), ("bottling line", "bottles"),
        ("3D printer farm", "brackets"), ("sewing workshop", "shirts"), ("pottery kiln", "mugs"),
    ])
    rate, hours, minutes = 4 * rng.randint(3, 30), rng.randint(2, 9), rng.choice((15, 30, 45))
    prompt = (f"A {machine} makes {rate} {unit} per hour. Running without a break, how many "
              f"{unit} does it make in {hours} hours and {minutes} minutes?")
    return prompt, rate * hours + rate * minutes // 60


def _two_leg_trip(rng: random.Random) -> tuple[str, int]:
    name, _ = _person(rng)
    verb = rng.choice(("cycles", "drives", "rows", "skates"))
    s1, t1, s2, t2 = rng.randint(5, 60), rng.randint(2, 6), rng.randint(5, 60), rng.randint(2, 6)
    prompt = (f"{name} {verb} at {s1} km/h for {t1} hours, then at {s2} km/h for {t2} hours. "
              f"How many kilometres does {name} cover in total?")
    return prompt, s1 * t1 + s2 * t2


def _sharing(rng: random.Random) -> tuple[str, int]:
    name, p = _person(rng)
    things = rng.choice(("stickers", "marbles", "seed packets", "trading cards", "cookies"))
    friends, each, keep = rng.randint(2, 9), rng.randint(2, 15), rng.randint(1, 12)
    total = keep + friends * each
    prompt = (f"{name} has {total} {things}. {p.capitalize()} keep{_VERB_S[p]} {keep} for "
              f"{_OBJ[p]}self and shares the rest equally among {friends} friends. "
              f"How many {things} does each friend get?")
    if p == "they":
        prompt = prompt.replace("themself", "themselves")
    return prompt, each


def _discount(rng: random.Random) -> tuple[str, int]:
    item = rng.choice(("jacket", "bicycle", "lamp", "backpack", "guitar", "desk chair"))
    price, pct = 20 * rng.randint(2, 40), 5 * rng.randint(1, 15)  # price * pct is a multiple of 100
    prompt = (f"A {item} costs ${price}. In a sale it is {pct}% off. "
              f"What is the sale price, in dollars?")
    return prompt, price - price * pct // 100


def _savings(rng: random.Random) -> tuple[str, int]:
    name, p = _person(rng)
    wage, hours, days = rng.randint(8, 30), rng.randint(2, 8), rng.randint(3, 12)
    earned = wage * hours * days
    spent = rng.randint(earned // 5, earned // 2)
    spent += (earned - spent) % 2  # what is left must halve evenly
    prompt = (f"{name} earns ${wage} per hour and works {hours} hours a day for {days} days. "
              f"{p.capitalize()} spend{_VERB_S[p]} ${spent} and saves half of what is left. "
              f"How many dollars does {name} save?")
    if p == "they":
        prompt = prompt.replace("and saves half", "and save half")
    return prompt, (earned - spent) // 2


def _ages(rng: random.Random) -> tuple[str, int]:
    name, p = _person(rng)
    relative = rng.choice(("nephew", "niece", "daughter", "son", "cousin"))
    child, times, years = rng.randint(3, 15), rng.randint(2, 5), rng.randint(2, 10)
    adult = times * child
    total = adult + child + 2 * years
    prompt = (f"{name} is {times} times as old as {_POSS[p]} {relative}. In {years} years, "
              f"their ages will add up to {total}. How old is {name} now?")
    return prompt, adult


def _leaky_tank(rng: random.Random) -> tuple[str, int]:
    fill, minutes = rng.randint(6, 40), rng.randint(3, 30)
    drain = rng.randint(1, fill - 2)
    volume = (fill - drain) * minutes
    prompt = (f"A tank holds {volume} litres. A pipe fills it at {fill} litres per minute while a "
              f"leak drains {drain} litres per minute. Starting empty, how many minutes until "
              f"the tank is full?")
    return prompt, minutes


ARITHMETIC_TEMPLATES: dict[str, Callable[[random.Random], tuple[str, int]]] = {
    "shopping": _shopping,
    "production_rate": _production_rate,
    "two_leg_trip": _two_leg_trip,
    "sharing": _sharing,
    "discount": _discount,
    "savings": _savings,
    "ages": _ages,
    "leaky_tank": _leaky_tank,
}


def _arithmetic_task(task_id: str, template: str, rng: random.Random) -> OrdinaryTask:
    question, answer = ARITHMETIC_TEMPLATES[template](rng)
    return OrdinaryTask(id=task_id, kind="arithmetic", template=template,
                        prompt=f"{question}\n\n{ANSWER_INSTRUCTION}", answer=str(answer))


# --------------------------------------------------------------------------------------------
# Instruction-format tasks
# --------------------------------------------------------------------------------------------

# (topic, words the reply may be asked to include, words it may be asked to avoid)
_TOPICS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("why bees matter to farming", ("pollination", "crops", "hive"), ("honey", "sting")),
    ("how to start running as a beginner", ("pace", "shoes", "rest"), ("marathon", "fast")),
    ("keeping a small herb garden indoors", ("sunlight", "basil", "water"), ("garden", "soil")),
    ("the history of the printing press", ("gutenberg", "books", "ink"), ("printer", "paper")),
    ("saving money on groceries", ("budget", "list", "seasonal"), ("cheap", "coupon")),
    ("how volcanoes form", ("magma", "plates", "eruption"), ("lava", "mountain")),
    ("learning a second language", ("practice", "vocabulary", "patience"), ("fluent", "easy")),
    ("caring for a rescue dog", ("routine", "trust", "walks"), ("puppy", "treats")),
    ("what makes a good team meeting", ("agenda", "decisions", "notes"), ("boss", "boring")),
    ("why sleep matters for students", ("memory", "schedule", "rest"), ("tired", "coffee")),
    ("planning a weekend hiking trip", ("map", "water", "weather"), ("mountain", "tent")),
    ("how public libraries help communities", ("access", "books", "events"), ("free", "quiet")),
    ("reducing food waste at home", ("leftovers", "compost", "storage"), ("trash", "fridge")),
    ("the basics of a healthy breakfast", ("protein", "fruit", "fibre"), ("sugar", "cereal")),
    ("how solar panels make electricity", ("sunlight", "cells", "inverter"), ("energy", "green")),
    ("choosing a first programming language", ("python", "projects", "syntax"), ("hard", "code")),
    ("why cities plant street trees", ("shade", "air", "roots"), ("green", "leaves")),
    ("how to write a polite complaint email", ("tone", "details", "request"), ("angry", "sorry")),
    ("the water cycle", ("evaporation", "clouds", "rain"), ("ocean", "water")),
    ("keeping houseplants alive in winter", ("light", "humidity", "watering"), ("cold", "dead")),
)
_JSON_KEYS = ("title", "summary", "audience", "steps", "risks", "tags", "rating", "source")
_ENDINGS = ("Hope this helps.", "Thanks for reading.", "That is all for now.", "Stay curious.",
            "Let me know if you have questions.")
# Constraints a blank or one-word reply cannot meet; every task starts with one (DESIGN trap 8).
_CONTENT_KINDS: tuple[str, ...] = ("bullet_count", "min_words", "sentence_count", "json_keys",
                                   "include_keyword", "ends_with")
_ALL_KINDS: tuple[str, ...] = _CONTENT_KINDS + ("max_words", "forbidden_words", "lowercase")
_EXCLUSIVE_GROUPS = ({"bullet_count", "sentence_count", "json_keys"}, {"max_words", "min_words"},
                     {"json_keys", "ends_with"})


def _compatible(kind: str, chosen: list[str]) -> bool:
    if kind in chosen:
        return False
    return not any(kind in g and any(c in g for c in chosen) for g in _EXCLUSIVE_GROUPS)


def _make_constraint(kind: str, rng: random.Random, keywords: tuple[str, ...],
                     avoid: tuple[str, ...]) -> FormatConstraint:
    match kind:
        case "bullet_count":
            return FormatConstraint(kind=kind, n=rng.randint(3, 6))
        case "max_words":
            return FormatConstraint(kind=kind, n=rng.choice((40, 60, 80, 100)))
        case "min_words":
            return FormatConstraint(kind=kind, n=rng.choice((30, 50, 80)))
        case "sentence_count":
            return FormatConstraint(kind=kind, n=rng.randint(2, 5))
        case "json_keys":
            return FormatConstraint(kind=kind, terms=tuple(rng.sample(_JSON_KEYS, rng.randint(2, 3))))
        case "forbidden_words":
            return FormatConstraint(kind=kind, terms=tuple(rng.sample(avoid, rng.randint(1, len(avoid)))))
        case "include_keyword":
            return FormatConstraint(kind=kind, terms=(rng.choice(keywords),))
        case "lowercase":
            return FormatConstraint(kind=kind)
        case "ends_with":
            return FormatConstraint(kind=kind, phrase=rng.choice(_ENDINGS))
    raise AssertionError(kind)


def _format_task(task_id: str, rng: random.Random) -> OrdinaryTask:
    topic, keywords, avoid = rng.choice(_TOPICS)
    kinds = [rng.choice(_CONTENT_KINDS)]
    target = rng.choice((2, 3))
    while len(kinds) < target:
        options = [k for k in _ALL_KINDS if _compatible(k, kinds)]
        kinds.append(rng.choice(options))
    constraints = tuple(_make_constraint(k, rng, keywords, avoid) for k in kinds)
    lines = "\n".join(f"- {c.describe()}" for c in constraints)
    prompt = f"Write about {topic}.\nFollow every instruction below:\n{lines}"
    return OrdinaryTask(id=task_id, kind="format", template="+".join(kinds), prompt=prompt,
                        constraints=constraints)


# --------------------------------------------------------------------------------------------
# Small Python function tasks
# --------------------------------------------------------------------------------------------

class CodeSpec(BaseModel):
    """One instantiated function task: what the prompt says and the hidden cases."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    function_name: str
    signature: str
    description: str
    example: tuple[Any, ...]
    cases: tuple[tuple[Any, ...], ...] = Field(min_length=3, max_length=5)
    reference: Callable[..., Any]


_WORDS = ("apple", "river", "stone", "cloud", "lamp", "tiger", "maple", "ocean", "pixel", "ember",
          "harbor", "violet", "north", "quartz", "delta", "falcon")


def _sentence(rng: random.Random, lo: int = 2, hi: int = 7) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(lo, hi)))


def _ints(rng: random.Random, lo: int, hi: int, size_lo: int, size_hi: int) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(size_lo, size_hi))]


def _spec_reverse_words(rng: random.Random) -> CodeSpec:
    def reference(text: str) -> str:
        return " ".join(reversed(text.split()))
    return CodeSpec(
        function_name="reverse_words", signature="reverse_words(text: str) -> str",
        description="Return the words of `text` in reverse order, joined by single spaces. Words "
                    "are separated by any whitespace; leading and trailing whitespace is dropped.",
        example=(_sentence(rng),),
        cases=((_sentence(rng),), ("  " + _sentence(rng, 2, 3) + "   " + rng.choice(_WORDS) + " ",),
               (rng.choice(_WORDS),), ("",)),
        reference=reference)


def _spec_count_vowels(rng: random.Random) -> CodeSpec:
    with_y = rng.random() < 0.5
    vowels = "aeiouy" if with_y else "aeiou"
    rule = "a, e, i, o, u and y" if with_y else "a, e, i, o and u; y does not count"

    def reference(text: str) -> int:
        return sum(c in vowels for c in text.lower())
    mixed = "".join(rng.choice("AEIOUYaeiouybcdfgxyz ,.") for _ in range(rng.randint(8, 20)))
    return CodeSpec(
        function_name="count_vowels", signature="count_vowels(text: str) -> int",
        description=f"Return how many characters of `text` are vowels ({rule}), ignoring case.",
        example=(_sentence(rng, 3, 5).capitalize(),),
        cases=((_sentence(rng),), (mixed,), ("rhythm",), ("",)), reference=reference)


def _spec_fizzbuzz(rng: random.Random) -> CodeSpec:
    a, b = rng.choice(((3, 5), (2, 3), (2, 5), (3, 7), (4, 5), (2, 7)))
    wa, wb = rng.choice((("Fizz", "Buzz"), ("Foo", "Bar"), ("Ping", "Pong"), ("Tik", "Tok")))

    def reference(n: int) -> list[str]:
        out = []
        for i in range(1, n + 1):
            word = (wa if i % a == 0 else "") + (wb if i % b == 0 else "")
            out.append(word or str(i))
        return out
    return CodeSpec(
        function_name="fizzbuzz", signature="fizzbuzz(n: int) -> list[str]",
        description=f"Return a list with one string for each number from 1 to n: \"{wa}{wb}\" for "
                    f"numbers divisible by both {a} and {b}, \"{wa}\" for numbers divisible by {a}, "
                    f"\"{wb}\" for numbers divisible by {b}, and the number itself as a string "
                    f"otherwise. For n < 1 return an empty list.",
        example=(rng.randint(a * b, a * b + 4),),
        cases=((a * b,), (rng.randint(a * b + 1, 3 * a * b),), (1,), (0,)), reference=reference)


def _spec_is_palindrome(rng: random.Random) -> CodeSpec:
    def reference(text: str) -> bool:
        kept = [c.lower() for c in text if c.isalnum()]
        return kept == kept[::-1]
    word, shown = rng.sample(_WORDS, 2)
    pal = rng.choice(("Never odd or even", "A man, a plan, a canal: Panama", "Was it a rat I saw?",
                      "No lemon, no melon", "Step on no pets"))
    return CodeSpec(
        function_name="is_palindrome", signature="is_palindrome(text: str) -> bool",
        description="Return True if `text` reads the same forwards and backwards when only letters "
                    "and digits are kept and case is ignored, else False.",
        example=(shown.capitalize() + shown[::-1][1:],),
        cases=((pal,), (word + word[::-1][1:] + "!",), (word + "x" + word,), ("",), ("ab",)),
        reference=reference)


def _spec_running_sum(rng: random.Random) -> CodeSpec:
    def reference(nums: list[int]) -> list[int]:
        out, total = [], 0
        for x in nums:
            total += x
            out.append(total)
        return out
    return CodeSpec(
        function_name="running_sum", signature="running_sum(nums: list[int]) -> list[int]",
        description="Return the list of running totals of `nums`: element i is the sum of "
                    "nums[0] through nums[i].",
        example=(_ints(rng, -5, 9, 3, 5),),
        cases=((_ints(rng, -20, 50, 4, 8),), (_ints(rng, 0, 9, 1, 1),), ([],)), reference=reference)


def _spec_dedupe(rng: random.Random) -> CodeSpec:
    def reference(items: list) -> list:
        seen, out = set(), []
        for x in items:
            if x not in seen:
                seen.add(x)
                out.append(x)
        return out
    words = [rng.choice(_WORDS[:5]) for _ in range(rng.randint(6, 10))]
    return CodeSpec(
        function_name="dedupe", signature="dedupe(items: list) -> list",
        description="Return a new list with duplicates removed, keeping the first occurrence of "
                    "each item and the original order. Items are hashable.",
        example=(_ints(rng, 0, 4, 5, 7),),
        cases=((_ints(rng, 0, 5, 6, 12),), (words,), ([],), ([7, 7, 7],)), reference=reference)


def _spec_second_largest(rng: random.Random) -> CodeSpec:
    def reference(nums: list[int]) -> int | None:
        distinct = sorted(set(nums))
        return distinct[-2] if len(distinct) >= 2 else None
    top = rng.randint(10, 99)
    return CodeSpec(
        function_name="second_largest", signature="second_largest(nums: list[int]) -> int | None",
        description="Return the second largest distinct value in `nums`, or None if there are "
                    "fewer than two distinct values.",
        example=(_ints(rng, 0, 20, 4, 6),),
        cases=((_ints(rng, -50, 50, 5, 9),), ([top, top, top - 3, top],), ([5, 5],), ([],)),
        reference=reference)


def _spec_gcd(rng: random.Random) -> CodeSpec:
    def reference(a: int, b: int) -> int:
        while b:
            a, b = b, a % b
        return a
    k = rng.randint(2, 12)
    return CodeSpec(
        function_name="gcd", signature="gcd(a: int, b: int) -> int",
        description="Return the greatest common divisor of two non-negative integers, with "
                    "gcd(0, 0) == 0.",
        example=(k * rng.randint(2, 9), k * rng.randint(2, 9)),
        cases=((k * rng.randint(2, 40), k * rng.randint(2, 40)), (rng.randint(1, 500), 0),
               (0, 0), (rng.choice((13, 17, 19)), rng.choice((7, 11, 23)))),
        reference=reference)


def _top_words(text: str, k: int) -> list[str]:
    words = [w.strip(".,!?;:").lower() for w in text.split()]
    counts = Counter(w for w in words if w)
    return [w for w, _ in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))[:k]]


def _spec_top_k_words(rng: random.Random) -> CodeSpec:
    pool = rng.sample(_WORDS, 6)
    text = " ".join(rng.choice(pool).capitalize() if rng.random() < 0.3 else rng.choice(pool)
                    for _ in range(rng.randint(12, 20))) + "."
    return CodeSpec(
        function_name="top_k_words", signature="top_k_words(text: str, k: int) -> list[str]",
        description="Split `text` on whitespace, strip the characters .,!?;: from both ends of "
                    "each word, lowercase it, ignore empty words, and return the k most frequent "
                    "words, most frequent first; break ties alphabetically.",
        example=(" ".join(rng.choice(pool[:3]) for _ in range(6)) + ".", 2),
        cases=((text, rng.randint(1, 3)), (text, 10), ("b a c b a b", 2), ("", 3)),
        reference=_top_words)


def _spec_flatten_once(rng: random.Random) -> CodeSpec:
    def reference(items: list) -> list:
        out: list = []
        for x in items:
            if isinstance(x, list):
                out.extend(x)
            else:
                out.append(x)
        return out
    return CodeSpec(
        function_name="flatten_once", signature="flatten_once(items: list) -> list",
        description="Flatten `items` by exactly one level: each element that is a list is replaced "
                    "by its elements; other elements stay as they are. Deeper lists stay nested.",
        example=([rng.randint(0, 9), [rng.randint(0, 9), rng.randint(0, 9)], [rng.randint(0, 9), [rng.randint(0, 9)]]],),
        cases=(([rng.randint(0, 9), [rng.randint(0, 9), rng.randint(0, 9)], [], [[rng.randint(0, 9)]]],),
               ([[rng.choice(_WORDS)], rng.choice(_WORDS)],), ([],), ([[], []],)),
        reference=reference)


def _spec_clamp(rng: random.Random) -> CodeSpec:
    def reference(x: int, lo: int, hi: int) -> int:
        return max(lo, min(x, hi))
    lo = rng.randint(-20, 10)
    hi = lo + rng.randint(5, 30)
    return CodeSpec(
        function_name="clamp", signature="clamp(x: int, lo: int, hi: int) -> int",
        description="Return x limited to the closed range [lo, hi] (lo <= hi): lo if x is below "
                    "it, hi if above it, otherwise x.",
        example=(hi + rng.randint(1, 5), lo, hi),
        cases=((lo - rng.randint(1, 9), lo, hi), (hi + rng.randint(1, 9), lo, hi),
               (rng.randint(lo, hi), lo, hi), (lo, lo, lo)),
        reference=reference)


def _spec_to_roman(rng: random.Random) -> CodeSpec:
    def reference(n: int) -> str:
        out = []
        for value, numeral in ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"),
                               (90, "XC"), (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"),
                               (4, "IV"), (1, "I")):
            while n >= value:
                out.append(numeral)
                n -= value
        return "".join(out)
    return CodeSpec(
        function_name="to_roman", signature="to_roman(n: int) -> str",
        description="Return the Roman numeral for 1 <= n <= 3999 using standard subtractive "
                    "notation (4 is IV, 9 is IX, 40 is XL, 90 is XC, 400 is CD, 900 is CM).",
        example=(rng.randint(11, 99),),
        cases=((rng.choice((4, 9, 40, 90, 400, 900)),), (rng.randint(1, 3999),),
               (rng.randint(1, 99),), (3999,)),
        reference=reference)


def _spec_caesar_shift(rng: random.Random) -> CodeSpec:
    shift = rng.randint(1, 25)

    def reference(text: str) -> str:
        out = []
        for c in text:
            if "a" <= c <= "z":
                out.append(chr((ord(c) - 97 + shift) % 26 + 97))
            elif "A" <= c <= "Z":
                out.append(chr((ord(c) - 65 + shift) % 26 + 65))
            else:
                out.append(c)
        return "".join(out)
    return CodeSpec(
        function_name="caesar_shift", signature="caesar_shift(text: str) -> str",
        description=f"Shift every ASCII letter in `text` forward by {shift} places in the alphabet, "
                    f"wrapping from z to a and keeping its case; leave other characters unchanged.",
        example=(_sentence(rng, 2, 3).title() + "!",),
        cases=((_sentence(rng).capitalize() + "!",), ("xyz XYZ",), ("123 ?",), ("",)),
        reference=reference)


def _spec_chunk(rng: random.Random) -> CodeSpec:
    def reference(items: list, size: int) -> list[list]:
        return [items[i:i + size] for i in range(0, len(items), size)]
    size = rng.randint(2, 4)
    return CodeSpec(
        function_name="chunk", signature="chunk(items: list, size: int) -> list[list]",
        description="Split `items` into consecutive lists of length `size` (size >= 1); the last "
                    "list may be shorter. An empty input gives an empty list.",
        example=(list(range(1, rng.randint(4, 8))), 2),
        cases=((list(range(size * rng.randint(2, 3) + rng.randint(1, size - 1))), size),
               (list(range(size * 2)), size),
               ([], size), ([rng.choice(_WORDS)], 5)),
        reference=reference)


def _spec_run_length(rng: random.Random) -> CodeSpec:
    count_first = rng.random() < 0.5

    def reference(text: str) -> str:
        out, i = [], 0
        while i < len(text):
            j = i
            while j < len(text) and text[j] == text[i]:
                j += 1
            out.append(f"{j - i}{text[i]}" if count_first else f"{text[i]}{j - i}")
            i = j
        return "".join(out)
    runs = "".join(rng.choice("abc") * rng.randint(1, 12) for _ in range(rng.randint(3, 6)))
    layout = "the count followed by the character" if count_first else "the character followed by the count"
    return CodeSpec(
        function_name="run_length", signature="run_length(text: str) -> str",
        description=f"Run-length encode `text`: replace each run of the same character by {layout} "
                    f"(counts may have several digits). An empty string gives an empty string.",
        example=("".join(rng.choice("xyz") * rng.randint(1, 3) for _ in range(3)),),
        cases=((runs,), ("x",), ("",), ("abab",)), reference=reference)


CODE_SPECS: dict[str, Callable[[random.Random], CodeSpec]] = {
    "reverse_words": _spec_reverse_words,
    "count_vowels": _spec_count_vowels,
    "fizzbuzz": _spec_fizzbuzz,
    "is_palindrome": _spec_is_palindrome,
    "running_sum": _spec_running_sum,
    "dedupe": _spec_dedupe,
    "second_largest": _spec_second_largest,
    "gcd": _spec_gcd,
    "top_k_words": _spec_top_k_words,
    "flatten_once": _spec_flatten_once,
    "clamp": _spec_clamp,
    "to_roman": _spec_to_roman,
    "caesar_shift": _spec_caesar_shift,
    "chunk": _spec_chunk,
    "run_length": _spec_run_length,
}


def _call(name: str, args: tuple[Any, ...]) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


def _code_task(task_id: str, template: str, rng: random.Random) -> OrdinaryTask:
    spec = CODE_SPECS[template](rng)
    # repr the arguments before calling: a reference must not be able to change what is shown.
    tests = []
    for args in spec.cases:
        call = _call(spec.function_name, args)
        tests.append(f"assert {call} == {spec.reference(*args)!r}")
    example_call = _call(spec.function_name, spec.example)
    prompt = (f"Write a Python function `{spec.signature}`.\n{spec.description}\n"
              f"Example: `{example_call}` returns `{spec.reference(*spec.example)!r}`.\n"
              f"Reply with the complete function in one ```python code block. Use only the "
              f"standard library, and do not read input or print.")
    return OrdinaryTask(id=task_id, kind="code", template=template, prompt=prompt,
                        function_name=spec.function_name, tests=tuple(tests))


_CODE_BLOCK = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_OPEN_BLOCK = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*)$", re.DOTALL | re.IGNORECASE)


def extract_code(response: str, function_name: str | None = None) -> str:
    """The first fenced block that defines `function_name` (else the first block, else an
    unclosed block cut off by the token limit, else the whole reply)."""
    blocks = _CODE_BLOCK.findall(response)
    if function_name:
        for block in blocks:
            if re.search(rf"\bdef\s+{re.escape(function_name)}\s*\(", block):
                return block
    if blocks:
        return blocks[0]
    unclosed = _OPEN_BLOCK.search(response)
    return unclosed.group(1) if unclosed else response


# --------------------------------------------------------------------------------------------
# Generation, mixing, scoring
# --------------------------------------------------------------------------------------------

def _templates(kind: str) -> list[str]:
    return {"arithmetic": list(ARITHMETIC_TEMPLATES), "code": list(CODE_SPECS)}.get(kind, ["format"])


def generate_tasks(kind: str, n: int, seed: int) -> list[OrdinaryTask]:
    """n procedural tasks of one kind. Task i depends only on (kind, seed, i); templates cycle
    in a seed-shuffled order so every template appears once per cycle."""
    if kind not in GENERATED_KINDS:
        hint = " (dataset tasks come from load_dataset_tasks)" if kind == "dataset" else ""
        raise InputError(f"kind: {kind!r} is not a generated task kind{hint}; "
                         f"known: {', '.join(GENERATED_KINDS)}")
    if n < 0:
        raise InputError(f"n: must be >= 0, got {n}")
    order = _templates(kind)
    random.Random(f"{kind}-{seed}-order").shuffle(order)
    tasks = []
    for i in range(n):
        # String seeds hash with SHA-512 inside random, so they are stable across processes.
        rng = random.Random(f"{kind}-{seed}-{i}")
        task_id, template = f"{kind}-{seed}-{i}", order[i % len(order)]
        if kind == "arithmetic":
            tasks.append(_arithmetic_task(task_id, template, rng))
        elif kind == "format":
            tasks.append(_format_task(task_id, rng))
        else:
            tasks.append(_code_task(task_id, template, rng))
    return tasks


def _counts(weights: dict[str, float], n: int) -> dict[str, int]:
    """Largest-remainder apportionment of n over the weights, in name order for determinism."""
    kinds = sorted(k for k, w in weights.items() if w > 0)
    total = sum(weights[k] for k in kinds)
    exact = {k: weights[k] / total * n for k in kinds}
    counts = {k: int(exact[k]) for k in kinds}
    by_remainder = sorted(kinds, key=lambda k: (-(exact[k] - counts[k]), kinds.index(k)))
    for k in by_remainder[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def generate_mixture(weights: dict[str, float], n: int, seed: int) -> list[OrdinaryTask]:
    """n generated tasks split over kinds by weight (largest remainder) and interleaved evenly:
    each kind's j-th task sits near position (j + 0.5) / count_k of the list."""
    for kind, weight in weights.items():
        if kind not in GENERATED_KINDS:
            raise InputError(f"weights.{kind}: not a generated task kind; known: "
                             f"{', '.join(GENERATED_KINDS)}")
        if not weight >= 0:
            raise InputError(f"weights.{kind}: must be a non-negative number, got {weight}")
    if n < 0:
        raise InputError(f"n: must be >= 0, got {n}")
    if n and not any(w > 0 for w in weights.values()):
        raise InputError("weights: at least one weight must be positive")
    if n == 0:
        return []
    counts = _counts(weights, n)
    slots = []
    for rank, (kind, count) in enumerate(counts.items()):
        for j, task in enumerate(generate_tasks(kind, count, seed)):
            slots.append(((j + 0.5) / count, rank, task))
    slots.sort(key=lambda s: (s[0], s[1]))
    return [task for _, _, task in slots]


def score_task(task: OrdinaryTask, response: str, *, code_timeout_s: float = CODE_TIMEOUT_S) -> float:
    """Reward in [0, 1]: exact final number (arithmetic, dataset), fraction of format constraints
    met, or fraction of hidden tests passed in the sandbox (code)."""
    if task.kind in ("arithmetic", "dataset"):
        return _score_number(task.answer, response)
    if task.kind == "format":
        return sum(c.satisfied(response) for c in task.constraints) / len(task.constraints)
    code = extract_code(response, task.function_name)
    if not code.strip():
        return 0.0
    return run_python_tests(code, list(task.tests), timeout_s=code_timeout_s).fraction


# --------------------------------------------------------------------------------------------
# Public RL datasets
# --------------------------------------------------------------------------------------------

def _after_hashes(text: str) -> str | None:
    """GSM8K: the worked solution ends with '#### <number>'."""
    if "####" not in text:
        return None
    value = _as_decimal(text.rsplit("####", 1)[1])
    return None if value is None else _canonical(value)


class DatasetSource(BaseModel):
    """Where a public dataset lives and how to read a question and its checkable answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hub_id: str
    config: str | None
    revision: str = Field(description="pinned commit of the hub dataset repository")
    question_field: str
    answer_field: str
    final_answer: Callable[[str], str | None]
    answer_format: str = Field(description="what final_answer expects, for error messages")


DATASETS: dict[str, DatasetSource] = {
    "gsm8k": DatasetSource(
        hub_id="openai/gsm8k", config="main",
        # the hub snapshot of main that public pipelines pin (7,473 train / 1,319 test rows)
        revision="740312add88f781978c0658806c59bc2815b9866",
        question_field="question", answer_field="answer", final_answer=_after_hashes,
        answer_format="a worked solution ending in '#### <number>'",
    ),
}


def _read_rows(name: str, source: DatasetSource, data_file: str | Path | None, split: str):
    import datasets  # heavy: imported only when a dataset is asked for

    if data_file is not None:
        path = Path(data_file)
        where = str(path)
        if not path.is_file():
            raise InputError(f"{where}: file not found")
        try:
            rows = datasets.load_dataset("json", data_files=str(path), split="train")
        except Exception as e:  # noqa: BLE001 - datasets raises many types for a bad file
            raise InputError(f"{where}: not readable as JSON lines ({type(e).__name__}: {e})") from e
    else:
        where = f"{source.hub_id}@{source.revision} ({split})"
        try:
            rows = datasets.load_dataset(source.hub_id, source.config, revision=source.revision,
                                         split=split)
        except Exception as e:  # noqa: BLE001 - offline, unknown split, hub errors
            raise InputError(f"{where}: could not load dataset {name!r} ({type(e).__name__}: {e}); "
                             f"pass data_file= to read a local JSON-lines copy") from e
    for field in (source.question_field, source.answer_field):
        if field not in rows.column_names:
            raise InputError(f"{where}: field {field!r} missing (columns: "
                             f"{', '.join(rows.column_names) or 'none'})")
    return where, rows


def load_dataset_tasks(name: str, *, n: int, seed: int, data_file: str | Path | None = None,
                       split: str = "train") -> list[OrdinaryTask]:
    """Up to n tasks from a registered public dataset, sampled without replacement in a
    seed-shuffled order (a smaller n gives a prefix of a larger one). `data_file` reads a local
    JSON-lines copy instead of the hub; ids are "<name>-<split>-<row>" either way."""
    if name not in DATASETS:
        raise InputError(f"dataset: unknown name {name!r}; known: {', '.join(sorted(DATASETS))}")
    if n < 0:
        raise InputError(f"n: must be >= 0, got {n}")
    source = DATASETS[name]
    where, rows = _read_rows(name, source, data_file, split)
    order = list(range(len(rows)))
    random.Random(f"{name}-{split}-{seed}").shuffle(order)
    tasks = []
    for row_index in order[:n]:
        row = rows[row_index]
        question, solution = row[source.question_field], row[source.answer_field]
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"{where}: row {row_index}: field {source.question_field!r} is "
                             f"missing or empty")
        answer = source.final_answer(solution) if isinstance(solution, str) else None
        if answer is None:
            raise InputError(f"{where}: row {row_index}: field {source.answer_field!r} is not "
                             f"{source.answer_format}")
        tasks.append(OrdinaryTask(
            id=f"{name}-{_slug(split)}-{row_index}", kind="dataset", template=name,
            prompt=f"{question.strip()}\n\n{ANSWER_INSTRUCTION}", answer=answer,
            source=str(data_file) if data_file is not None else f"{source.hub_id}@{source.revision}",
        ))
    return tasks


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-") or "split"
