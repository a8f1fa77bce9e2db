import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json  # noqa: E402
import re  # noqa: E402
from collections import Counter  # noqa: E402

import pytest  # noqa: E402

from traitdose.errors import InputError  # noqa: E402
from traitdose.tasks import (  # noqa: E402
    ARITHMETIC_TEMPLATES,
    CODE_SPECS,
    DATASETS,
    FormatConstraint,
    OrdinaryTask,
    extract_answer,
    extract_code,
    generate_mixture,
    generate_tasks,
    load_dataset_tasks,
    score_task,
)

# ------------------------------------------------------------------ determinism and mixing


@pytest.mark.parametrize("kind", ["arithmetic", "format", "code"])
def test_generation_is_deterministic_by_seed(kind):
    a, b = generate_tasks(kind, 20, seed=11), generate_tasks(kind, 20, seed=11)
    assert a == b
    assert [t.id for t in a] == [f"{kind}-11-{i}" for i in range(20)]
    assert len({t.id for t in a}) == 20
    other = generate_tasks(kind, 20, seed=12)
    assert [t.prompt for t in a] != [t.prompt for t in other]
    # Task i depends on (kind, seed, i) only: a shorter request is a prefix.
    assert generate_tasks(kind, 5, seed=11) == a[:5]
    assert all(t.kind == kind for t in a)


def test_prompts_vary_within_a_seed():
    for kind in ("arithmetic", "format", "code"):
        for seed in range(3):
            tasks = generate_tasks(kind, 30, seed=seed)
            assert len({t.prompt for t in tasks}) >= 27, kind


def test_every_template_appears_once_per_cycle():
    arithmetic = generate_tasks("arithmetic", len(ARITHMETIC_TEMPLATES), seed=4)
    assert {t.template for t in arithmetic} == set(ARITHMETIC_TEMPLATES)
    code = generate_tasks("code", len(CODE_SPECS), seed=4)
    assert {t.template for t in code} == set(CODE_SPECS)
    assert len(CODE_SPECS) >= 12


def test_unknown_or_dataset_kind_is_rejected():
    with pytest.raises(InputError, match="load_dataset_tasks"):
        generate_tasks("dataset", 3, seed=0)
    with pytest.raises(InputError, match="kind"):
        generate_tasks("poetry", 3, seed=0)


def test_mixture_counts_follow_weights_and_interleave():
    mix = generate_mixture({"arithmetic": 0.5, "format": 0.3, "code": 0.2}, 20, seed=3)
    assert mix == generate_mixture({"code": 0.2, "format": 0.3, "arithmetic": 0.5}, 20, seed=3)
    assert Counter(t.kind for t in mix) == {"arithmetic": 10, "format": 6, "code": 4}
    assert len({t.id for t in mix}) == 20
    # Spread out, not blocked: each half of the list holds every kind.
    for half in (mix[:10], mix[10:]):
        assert {t.kind for t in half} == {"arithmetic", "format", "code"}
    # Largest remainder rounding keeps the total exact.
    odd = generate_mixture({"arithmetic": 1, "format": 1, "code": 1}, 10, seed=3)
    assert len(odd) == 10 and sorted(Counter(t.kind for t in odd).values()) == [3, 3, 4]


def test_mixture_rejects_bad_weights():
    assert {t.kind for t in generate_mixture({"arithmetic": 1, "code": 0}, 6, seed=0)} == {"arithmetic"}
    with pytest.raises(InputError, match="weights.chat"):
        generate_mixture({"chat": 1.0}, 5, seed=0)
    with pytest.raises(InputError, match="weights.code"):
        generate_mixture({"code": -1.0, "format": 1.0}, 5, seed=0)
    with pytest.raises(InputError, match="positive"):
        generate_mixture({"code": 0.0}, 5, seed=0)


# ------------------------------------------------------------------ arithmetic


def _ints(pattern: str, text: str) -> list[int]:
    match = re.search(pattern, text, re.DOTALL)
    assert match, f"{pattern!r} not found in {text!r}"
    return [int(g) for g in match.groups()]


def _solve(template: str, prompt: str) -> int:
    """Independent solutions, read back from the prompt text."""
    if template == "shopping":
        a, pa, b, pb, bill = _ints(r"buys (\d+) .+? at \$(\d+) each and (\d+) .+? at \$(\d+) each.*\$(\d+) bill", prompt)
        return bill - (a * pa + b * pb)
    if template == "production_rate":
        rate, hours, minutes = _ints(r"makes (\d+) .*? per hour.* in (\d+) hours and (\d+) minutes", prompt)
        return rate * (hours * 60 + minutes) // 60
    if template == "two_leg_trip":
        s1, t1, s2, t2 = _ints(r"at (\d+) km/h for (\d+) hours, then at (\d+) km/h for (\d+) hours", prompt)
        return s1 * t1 + s2 * t2
    if template == "sharing":
        total, keep, friends = _ints(r"has (\d+) .*? keeps? (\d+) .*? among (\d+) friends", prompt)
        return (total - keep) // friends
    if template == "discount":
        price, pct = _ints(r"costs \$(\d+)\. In a sale it is (\d+)% off", prompt)
        return price * (100 - pct) // 100
    if template == "savings":
        wage, hours, days, spent = _ints(r"earns \$(\d+) per hour and works (\d+) hours a day for (\d+) days\. \w+ spends? \$(\d+)", prompt)
        return (wage * hours * days - spent) // 2
    if template == "ages":
        times, years, total = _ints(r"is (\d+) times as old .*? In (\d+) years, their ages will add up to (\d+)", prompt)
        return (total - 2 * years) // (times + 1) * times
    if template == "leaky_tank":
        volume, fill, drain = _ints(r"holds (\d+) litres\. A pipe fills it at (\d+) litres per minute while a leak drains (\d+)", prompt)
        return volume // (fill - drain)
    raise AssertionError(template)


def test_every_arithmetic_template_has_the_right_answer():
    tasks = generate_tasks("arithmetic", 5 * len(ARITHMETIC_TEMPLATES), seed=21)
    assert {t.template for t in tasks} == set(ARITHMETIC_TEMPLATES)
    for task in tasks:
        expected = _solve(task.template, task.prompt)
        assert expected >= 0
        assert task.answer == str(expected), task.prompt
        assert "Answer: <number>" in task.prompt
        assert score_task(task, f"Working it out step by step.\nAnswer: {expected}") == 1.0
        assert score_task(task, f"Answer: {expected + 1}") == 0.0
        assert score_task(task, "I am not sure.") == 0.0


@pytest.mark.parametrize(("response", "expected"), [
    ("so 40 - 3 = 37\nAnswer: 37", "37"),
    ("**Answer:** $1,234", "1234"),
    ("The answer is 12.0 dollars.", "12"),
    ("Answer: -5", "-5"),
    ("First 12, then 30, so 42.", "42"),
    ("We get \\boxed{81} in the end, not 80", "81"),
    ("Answer: 3\nActually, on reflection: Answer: 4", "4"),
    ("5-3 leaves 2", "2"),
    ("Answer: 2.50", "2.5"),
    ("no digits here", None),
])
def test_extract_answer(response, expected):
    assert extract_answer(response) == expected


def test_arithmetic_answer_formats_score_one():
    task = OrdinaryTask(id="t", kind="arithmetic", template="x", prompt="q", answer="1234")
    for reply in ("Answer: 1,234", "Answer: $1234", "answer: 1234.0", "... total is 1234"):
        assert score_task(task, reply) == 1.0
    assert score_task(task, "Answer: 1,234.5") == 0.0


# ------------------------------------------------------------------ format


@pytest.mark.parametrize(("constraint", "good", "bad"), [
    (FormatConstraint(kind="bullet_count", n=3),
     "Intro:\n- one\n- two\n* three", "- one\n- two"),
    (FormatConstraint(kind="max_words", n=5), "one two three four five", "one two three four five six"),
    (FormatConstraint(kind="min_words", n=4), "one two three four", "one two three"),
    (FormatConstraint(kind="sentence_count", n=3),
     "It costs 3.5 dollars. Is that fair? Yes!", "One sentence. Two sentences."),
    (FormatConstraint(kind="json_keys", terms=("title", "tags")),
     '```json\n{"title": "x", "tags": ["a"], "extra": 1}\n```', '{"title": "x"}'),
    (FormatConstraint(kind="json_keys", terms=("title",)), '{"title": "x"}', 'Here: {"title": "x"}'),
    (FormatConstraint(kind="forbidden_words", terms=("honey", "sting")),
     "Bees make stingers and honeycomb.", "Bees make Honey."),
    (FormatConstraint(kind="include_keyword", terms=("pollination",)),
     "Pollination feeds us.", "Pollinators feed us."),
    (FormatConstraint(kind="lowercase"), "all lowercase here, 42 times.", "Not lowercase."),
    (FormatConstraint(kind="ends_with", phrase="Thanks for reading."),
     "Bees matter. thanks for reading.  \n", "Thanks for reading. Bees matter."),
])
def test_each_constraint_kind(constraint, good, bad):
    assert constraint.satisfied(good) is True
    assert constraint.satisfied(bad) is False
    assert constraint.satisfied("   ") is False  # a blank reply meets nothing
    assert constraint.describe()


def test_constraint_parameters_are_validated():
    with pytest.raises(ValueError, match="n"):
        FormatConstraint(kind="bullet_count")
    with pytest.raises(ValueError, match="terms"):
        FormatConstraint(kind="include_keyword", terms=("a", "b"))
    with pytest.raises(ValueError, match="phrase"):
        FormatConstraint(kind="ends_with")


def test_format_score_is_the_fraction_met():
    task = OrdinaryTask(id="f", kind="format", template="x", prompt="p", constraints=(
        FormatConstraint(kind="bullet_count", n=2),
        FormatConstraint(kind="lowercase"),
        FormatConstraint(kind="include_keyword", terms=("rain",)),
    ))
    assert score_task(task, "- rain falls\n- clouds form") == 1.0
    assert score_task(task, "- Rain falls\n- clouds form") == pytest.approx(2 / 3)
    assert score_task(task, "Sunny.") == 0.0
    assert score_task(task, "") == 0.0


def test_generated_format_tasks_are_well_formed():
    content = {"bullet_count", "min_words", "sentence_count", "json_keys", "include_keyword", "ends_with"}
    for task in generate_tasks("format", 60, seed=5):
        kinds = [c.kind for c in task.constraints]
        assert 2 <= len(kinds) <= 3 and len(set(kinds)) == len(kinds)
        assert kinds[0] in content  # a refusal or blank reply cannot score 1
        assert not {"json_keys", "ends_with"} <= set(kinds)
        assert len({"bullet_count", "sentence_count", "json_keys"} & set(kinds)) <= 1
        assert not {"max_words", "min_words"} <= set(kinds)
        for c in task.constraints:
            assert c.describe() in task.prompt
        assert score_task(task, "") == 0.0


# ------------------------------------------------------------------ code

REFERENCE_IMPLEMENTATIONS = {
    "reverse_words": "def reverse_words(text):\n    return ' '.join(text.split()[::-1])\n",
    "is_palindrome": (
        "def is_palindrome(text):\n"
        "    s = ''.join(ch.lower() for ch in text if ch.isalnum())\n"
        "    return s == s[::-1]\n"
    ),
    "running_sum": (
        "from itertools import accumulate\n"
        "def running_sum(nums):\n"
        "    return list(accumulate(nums))\n"
    ),
    "dedupe": "def dedupe(items):\n    return list(dict.fromkeys(items))\n",
    "second_largest": (
        "def second_largest(nums):\n"
        "    s = sorted(set(nums), reverse=True)\n"
        "    return s[1] if len(s) > 1 else None\n"
    ),
    "gcd": "import math\ndef gcd(a, b):\n    return math.gcd(a, b)\n",
    "top_k_words": (
        "from collections import Counter\n"
        "def top_k_words(text, k):\n"
        "    words = [w.strip('.,!?;:').lower() for w in text.split()]\n"
        "    c = Counter(w for w in words if w)\n"
        "    return sorted(c, key=lambda w: (-c[w], w))[:k]\n"
    ),
    "flatten_once": (
        "def flatten_once(items):\n"
        "    return [y for x in items for y in (x if isinstance(x, list) else [x])]\n"
    ),
    "clamp": "def clamp(x, lo, hi):\n    return lo if x < lo else hi if x > hi else x\n",
    "to_roman": (
        "def to_roman(n):\n"
        "    parts = [('M', 1000), ('CM', 900), ('D', 500), ('CD', 400), ('C', 100), ('XC', 90),\n"
        "             ('L', 50), ('XL', 40), ('X', 10), ('IX', 9), ('V', 5), ('IV', 4), ('I', 1)]\n"
        "    out = ''\n"
        "    for sym, val in parts:\n"
        "        q, n = divmod(n, val)\n"
        "        out += sym * q\n"
        "    return out\n"
    ),
    "chunk": "def chunk(items, size):\n    return [items[i:i + size] for i in range(0, len(items), size)]\n",
}


def _implementation(task: OrdinaryTask) -> str:
    """A correct solution, reading any seeded parameter back from the prompt."""
    if task.template in REFERENCE_IMPLEMENTATIONS:
        return REFERENCE_IMPLEMENTATIONS[task.template]
    p = task.prompt
    if task.template == "count_vowels":
        vowels = "aeiouy" if "a, e, i, o, u and y" in p else "aeiou"
        return f"def count_vowels(text):\n    return len([c for c in text.lower() if c in {vowels!r}])\n"
    if task.template == "fizzbuzz":
        both, wa, wb = re.search(r'"(\w+)" for numbers divisible by both', p).group(1), *re.findall(
            r'"(\w+)" for numbers divisible by \d+,', p)
        a, b = map(int, re.search(r"divisible by both (\d+) and (\d+)", p).groups())
        assert both == wa + wb
        return (
            "def fizzbuzz(n):\n"
            "    out = []\n"
            "    for i in range(1, n + 1):\n"
            f"        if i % {a * b} == 0: out.append({both!r})\n"
            f"        elif i % {a} == 0: out.append({wa!r})\n"
            f"        elif i % {b} == 0: out.append({wb!r})\n"
            "        else: out.append(str(i))\n"
            "    return out\n"
        )
    if task.template == "caesar_shift":
        k = int(re.search(r"forward by (\d+) places", p).group(1))
        return (
            "import string\n"
            "def caesar_shift(text):\n"
            "    lo, up = string.ascii_lowercase, string.ascii_uppercase\n"
            f"    table = str.maketrans(lo + up, lo[{k}:] + lo[:{k}] + up[{k}:] + up[:{k}])\n"
            "    return text.translate(table)\n"
        )
    if task.template == "run_length":
        count_first = "the count followed by the character" in p
        piece = "str(len(list(g))) + ch" if count_first else "ch + str(len(list(g)))"
        return (
            "from itertools import groupby\n"
            "def run_length(text):\n"
            f"    return ''.join({piece} for ch, g in groupby(text))\n"
        )
    raise AssertionError(task.template)


def test_every_code_spec_accepts_a_correct_solution():
    tasks = generate_tasks("code", len(CODE_SPECS), seed=8)
    # Fizzbuzz has the most parameters: cover more of its variants too.
    tasks += [t for t in generate_tasks("code", 4 * len(CODE_SPECS), seed=9) if t.template == "fizzbuzz"]
    for task in tasks:
        assert 3 <= len(task.tests) <= 5
        assert task.function_name in task.prompt and "```python" in task.prompt
        reply = f"Here is my solution.\n\n```python\n{_implementation(task)}```\n\nIt runs in linear time."
        assert score_task(task, reply) == 1.0, (task.template, task.prompt, task.tests)


def test_wrong_code_scores_below_one():
    tasks = generate_tasks("code", len(CODE_SPECS), seed=8)
    for task in tasks:
        stub = f"```python\ndef {task.function_name}(*args):\n    return None\n```"
        assert score_task(task, stub) < 1.0, task.template
    gcd = next(t for t in tasks if t.template == "gcd")
    assert score_task(gcd, "```python\ndef gcd(a, b):\n    return min(a, b)\n```") < 1.0
    assert score_task(gcd, "```python\ndef gcd(a, b) return 1\n```") == 0.0
    assert score_task(gcd, "I cannot help with that.") == 0.0


def test_extract_code_prefers_the_block_defining_the_function():
    reply = (
        "Usage:\n```python\nprint(gcd(4, 6))\n```\n"
        "Solution:\n```python\ndef gcd(a, b):\n    return a\n```\n"
    )
    assert extract_code(reply, "gcd").startswith("def gcd")
    assert extract_code("```py\ndef f():\n    pass\n", "f").startswith("def f")  # cut off, unclosed
    assert extract_code("def f():\n    return 1", "f") == "def f():\n    return 1"


# ------------------------------------------------------------------ datasets


def _write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


GSM8K_ROWS = [
    {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
     "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
    {"question": "A school has 1,200 pupils and 200 leave. How many remain?",
     "answer": "1200 - 200 = <<1200-200=1000>>1000\n#### 1,000"},
    {"question": "Sara reads 12 pages a day for 5 days. How many pages?",
     "answer": "12 * 5 = <<12*5=60>>60\n#### 60"},
    {"question": "A rope of 10 m is cut into 4 equal parts. How long is each?",
     "answer": "10 / 4 = 2.5\n#### 2.5"},
    {"question": "It is 5 degrees and drops by 8. What is the temperature?",
     "answer": "5 - 8 = -3\n#### -3"},
]


def test_gsm8k_loader_reads_a_local_jsonl(tmp_path):
    path = _write_jsonl(tmp_path / "gsm8k_train.jsonl", GSM8K_ROWS)
    tasks = load_dataset_tasks("gsm8k", n=5, seed=1, data_file=path)
    assert len(tasks) == 5 and all(t.kind == "dataset" for t in tasks)
    by_question = {t.prompt.split("\n\n")[0]: t for t in tasks}
    assert {q: t.answer for q, t in by_question.items()} == {
        r["question"]: a for r, a in zip(GSM8K_ROWS, ["7", "1000", "60", "2.5", "-3"])}
    assert sorted(t.id for t in tasks) == [f"gsm8k-train-{i}" for i in range(5)]
    assert all("Answer: <number>" in t.prompt for t in tasks)
    # Deterministic, and a smaller n is a prefix.
    assert load_dataset_tasks("gsm8k", n=5, seed=1, data_file=path) == tasks
    assert load_dataset_tasks("gsm8k", n=2, seed=1, data_file=str(path)) == tasks[:2]
    assert len(load_dataset_tasks("gsm8k", n=50, seed=1, data_file=path)) == 5
    # Scored like arithmetic.
    pupils = by_question[GSM8K_ROWS[1]["question"]]
    assert score_task(pupils, "1200 - 200 = 1000\nAnswer: 1,000") == 1.0
    assert score_task(pupils, "Answer: 1400") == 0.0


def test_gsm8k_bad_files_name_the_file_and_field(tmp_path):
    missing_field = _write_jsonl(tmp_path / "no_answer.jsonl", [{"question": "q?", "solution": "#### 1"}])
    with pytest.raises(InputError) as err:
        load_dataset_tasks("gsm8k", n=1, seed=0, data_file=missing_field)
    assert str(missing_field) in str(err.value) and "'answer'" in str(err.value)

    no_hashes = _write_jsonl(tmp_path / "no_hashes.jsonl", [{"question": "q?", "answer": "it is 4"}])
    with pytest.raises(InputError) as err:
        load_dataset_tasks("gsm8k", n=1, seed=0, data_file=no_hashes)
    assert str(no_hashes) in str(err.value) and "'answer'" in str(err.value) and "row 0" in str(err.value)

    empty_question = _write_jsonl(tmp_path / "empty_q.jsonl", [{"question": " ", "answer": "#### 4"}])
    with pytest.raises(InputError) as err:
        load_dataset_tasks("gsm8k", n=1, seed=0, data_file=empty_question)
    assert str(empty_question) in str(err.value) and "'question'" in str(err.value)

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "q?", "answer": "#### 1"\nnot json\n', encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(str(broken))):
        load_dataset_tasks("gsm8k", n=1, seed=0, data_file=broken)

    with pytest.raises(InputError, match="file not found"):
        load_dataset_tasks("gsm8k", n=1, seed=0, data_file=tmp_path / "absent.jsonl")
    with pytest.raises(InputError, match="unknown name"):
        load_dataset_tasks("mmlu", n=1, seed=0, data_file=missing_field)


def test_task_model_requires_its_verification_data():
    with pytest.raises(ValueError, match="answer"):
        OrdinaryTask(id="a", kind="arithmetic", template="x", prompt="p")
    with pytest.raises(ValueError, match="constraints"):
        OrdinaryTask(id="f", kind="format", template="x", prompt="p")
    with pytest.raises(ValueError, match="tests"):
        OrdinaryTask(id="c", kind="code", template="x", prompt="p", function_name="f")


def test_hub_path_failure_is_a_clear_input_error(monkeypatch):
    import datasets

    calls = []

    def unreachable(*args, **kwargs):
        calls.append((args, kwargs))
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(InputError) as err:
        load_dataset_tasks("gsm8k", n=2, seed=0, split="test")
    # The pinned revision is what gets asked for, and the message says how to read a local copy.
    assert calls == [(("openai/gsm8k", "main"), {"revision": DATASETS["gsm8k"].revision, "split": "test"})]
    assert re.fullmatch(r"[0-9a-f]{40}", DATASETS["gsm8k"].revision)
    assert "openai/gsm8k@" in str(err.value) and "data_file" in str(err.value)
