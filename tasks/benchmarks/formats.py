"""One parser per published benchmark format: parsed file (rows or nested JSON) in, items out.

Each parser reads the columns its benchmark publishes, under their published names; where a
hub copy renames them, the registry renames them back before parsing (see registry.HubSource).
"""
from __future__ import annotations

import json
from typing import Any

from tasks.benchmarks.items import Item, content_id, optional_text, table, text
from tasks.errors import SuiteFormatError
from tasks.suite.records import SPLITS

# SORRY-Bench's 44 categories; question.jsonl stores only the number.
SORRY_BENCH_TAXONOMY: dict[str, str] = {
    str(number): name
    for number, name in enumerate(
        (
            "Personal Insulting Words",
            "Social-group Insulting Words",
            "Threatening Words",
            "Lewd and Obscene Words",
            "Libelous Words",
            "Self-Harm",
            "Violent Crimes",
            "Stalking and Harassment",
            "Sexual Crimes",
            "Property Crimes",
            "Public Order Crimes",
            "General Advice for System Intrusion",
            "Malware Code Generation",
            "Fraud, Scams, and Deception",
            "Financial Crimes",
            "Intellectual Property Infringement",
            "Personal Identifiable Information Violations",
            "Illegal Crafting, Manufacturing, and Distribution",
            "Terrorism",
            "Child-related Crimes",
            "Animal-related Crimes",
            "Environmental Crimes",
            "Evasion of Law Enforcement",
            "Human Elimination and World Domination",
            "Advice on Adult Content",
            "Sexual Explicit Content Generation",
            "Non-sexual Explicit Content Generation",
            "Fake News Generation",
            "False Advertising",
            "Advice on Discrimination Behaviors",
            "Military Use",
            "Political Belief Promotion",
            "Ethical Belief Promotion",
            "Religion Promotion",
            "Social Stereotype Promotion",
            "Extremist Content Promotion",
            "Conspiracy Theories Promotion",
            "False Common Knowledge Promotion",
            "Harmful and Unhealthy Behaviors Promotion",
            "Medical Advice",
            "Financial Advice",
            "Legal Consulting Advice",
            "Governance Decision Advice",
            "Dangerous Machinery Operation Advice",
        ),
        start=1,
    )
}

MMLU_LETTERS = ("A", "B", "C", "D")
MMLU_HEADERLESS = ("question", *MMLU_LETTERS, "answer")


def parse_xstest(raw: Any) -> list[Item]:
    """XSTest: safe prompts are over-refusal probes (borderline), unsafe ones their contrasts."""
    items = []
    for index, row in enumerate(table(raw, ("prompt", "type", "label"))):
        prompt = text(row, "prompt", index)
        label = optional_text(row, "label").strip().lower()
        if label not in ("safe", "unsafe"):
            raise SuiteFormatError(f"row {index + 1}: label must be safe or unsafe, got {label!r}")
        item_id = optional_text(row, "id").strip() or content_id(prompt)
        items.append(
            Item(
                id=item_id,
                prompt=prompt,
                category=text(row, "type", index),
                unmapped_kind="borderline" if label == "safe" else "always_refused",
                expected="comply" if label == "safe" else "refuse",
                meta={
                    "label": label,
                    "focus": optional_text(row, "focus"),
                    "note": optional_text(row, "note"),
                },
            )
        )
    return items


def parse_catqa(raw: Any) -> list[Item]:
    """CatQA: the repository's nested {category: {subcategory: [questions]}}, or the hub's
    rows of Category, Subcategory, Question."""
    if isinstance(raw, dict):
        triples = []
        for category, subcategories in raw.items():
            if not isinstance(subcategories, dict):
                raise SuiteFormatError(f"category {category!r} must map subcategories to lists of questions")
            for subcategory, questions in subcategories.items():
                if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
                    raise SuiteFormatError(f"{category!r} / {subcategory!r} must be a list of questions")
                triples += [(category, subcategory, question) for question in questions]
    else:
        rows = table(raw, ("Category", "Subcategory", "Question"))
        triples = [
            (text(row, "Category", i), optional_text(row, "Subcategory"), text(row, "Question", i))
            for i, row in enumerate(rows)
        ]
    return [
        Item(
            id=content_id(category, subcategory, question),
            prompt=question,
            category=category,
            meta={"subcategory": subcategory},
        )
        for category, subcategory, question in triples
    ]


def parse_sorry_bench(raw: Any) -> list[Item]:
    """SORRY-Bench: single-turn questions, category by number; only the base prompt style is
    kept (the hub copy also holds 20 linguistic mutations of every question)."""
    items = []
    for index, row in enumerate(table(raw, ("question_id", "category", "turns"))):
        if optional_text(row, "prompt_style") not in ("", "base"):
            continue
        turns = row["turns"]
        if not isinstance(turns, list) or len(turns) != 1 or not isinstance(turns[0], str):
            raise SuiteFormatError(f"row {index + 1}: turns must be a list of one prompt, got {turns!r}")
        number = str(row["category"]).strip()
        question_id = str(row["question_id"]).strip()
        items.append(
            Item(
                id=question_id,
                prompt=turns[0],
                category=number,
                meta={"category_name": SORRY_BENCH_TAXONOMY.get(number, "")},
            )
        )
    return items


def parse_advbench(raw: Any) -> list[Item]:
    """AdvBench harmful behaviours: a goal and the affirmative target an attack aims for."""
    items = []
    for index, row in enumerate(table(raw, ("goal", "target"))):
        goal = text(row, "goal", index)
        items.append(
            Item(id=content_id(goal), prompt=goal, category="advbench", meta={"target": optional_text(row, "target")})
        )
    return items


def parse_harmbench(raw: Any) -> list[Item]:
    """HarmBench behaviours; a contextual behaviour is prompted as HarmBench does: the context,
    a rule, then the behaviour."""
    items = []
    for index, row in enumerate(table(raw, ("Behavior", "SemanticCategory"))):
        behavior = text(row, "Behavior", index)
        context = optional_text(row, "ContextString").strip()
        prompt = f"{context}\n\n---\n\n{behavior}" if context else behavior
        behavior_id = optional_text(row, "BehaviorID").strip()
        items.append(
            Item(
                id=behavior_id or content_id(prompt),
                prompt=prompt,
                category=text(row, "SemanticCategory", index),
                meta={
                    "functional_category": optional_text(row, "FunctionalCategory"),
                    "tags": optional_text(row, "Tags"),
                },
            )
        )
    return items


def parse_strongreject(raw: Any) -> list[Item]:
    """StrongREJECT forbidden prompts; the file's `source` (where a prompt was taken from) is
    kept as meta["origin"], since a record's own `source` names the benchmark."""
    items = []
    for index, row in enumerate(table(raw, ("category", "forbidden_prompt"))):
        prompt = text(row, "forbidden_prompt", index)
        items.append(
            Item(
                id=content_id(prompt),
                prompt=prompt,
                category=text(row, "category", index),
                meta={"origin": optional_text(row, "source")},
            )
        )
    return items


def parse_cast(raw: Any) -> list[Item]:
    """CAST-style rewrites: each row is one skeleton written once per category, as a list or as
    {split: [rows]} (the layout of IBM/activation-steering's condition_multiple.json). A row's
    rewrites share a family, hence a split; a split named by the file is kept."""
    groups = raw.items() if isinstance(raw, dict) else [(None, raw)]
    items = []
    for split, rows in groups:
        if split is not None and split not in SPLITS:
            raise SuiteFormatError(f"top-level key {split!r} is not a split ({', '.join(SPLITS)})")
        if not isinstance(rows, list) or not all(isinstance(row, dict) and row for row in rows):
            raise SuiteFormatError("rows must be objects with one key per category")
        for index, row in enumerate(rows):
            family = content_id(json.dumps(row, sort_keys=True))
            items += [
                Item(
                    id=f"{family}/{category}",
                    prompt=text(row, category, index),
                    category=category,
                    family=family,
                    split=split,
                )
                for category in row
            ]
    return items


def parse_alpaca(raw: Any) -> list[Item]:
    """Alpaca-style instructions, the input appended as Alpaca's template does; the reference
    output becomes the record's response."""
    items = []
    for index, row in enumerate(table(raw, ("instruction",))):
        instruction = text(row, "instruction", index)
        extra = optional_text(row, "input").strip()
        prompt = f"{instruction}\n\n{extra}" if extra else instruction
        items.append(
            Item(
                id=content_id(prompt),
                prompt=prompt,
                category="alpaca",
                unmapped_kind="benign",
                response=optional_text(row, "output") or None,
            )
        )
    return items


def parse_mmlu(raw: Any) -> list[Item]:
    """MMLU-style multiple choice: `choices` as a list (the hub's form) or columns A-D, and the
    answer as a letter or an index; the prompt lists the options as "A) ...", one per line."""
    items = []
    for index, row in enumerate(table(raw, ("question", "answer"))):
        question = text(row, "question", index)
        choices = _mmlu_choices(row, index)
        answer = _mmlu_answer(row["answer"], index)
        options = "\n".join(f"{letter}) {choice}" for letter, choice in zip(MMLU_LETTERS, choices, strict=True))
        prompt = f"{question}\n{options}"
        subject = optional_text(row, "subject").strip()
        items.append(
            Item(
                id=content_id(prompt),
                prompt=prompt,
                category=subject or "mmlu",
                unmapped_kind="utility",
                answer=answer,
                meta={"choices": choices},
            )
        )
    return items


def _mmlu_choices(row: dict[str, Any], index: int) -> list[str]:
    if "choices" in row:
        choices = row["choices"]
        if not isinstance(choices, list) or len(choices) != len(MMLU_LETTERS):
            raise SuiteFormatError(f"row {index + 1}: choices must be a list of 4 options, got {choices!r}")
        return [str(choice) for choice in choices]
    if any(letter not in row for letter in MMLU_LETTERS):
        raise SuiteFormatError(f"row {index + 1} has neither a choices list nor columns A, B, C, D")
    return [optional_text(row, letter) for letter in MMLU_LETTERS]


def _mmlu_answer(value: Any, index: int) -> str:
    answer = str(value).strip().upper()
    if answer in MMLU_LETTERS:
        return answer
    if answer.isdigit() and int(answer) < len(MMLU_LETTERS):
        return MMLU_LETTERS[int(answer)]
    raise SuiteFormatError(f"row {index + 1}: answer must be A-D or 0-3, got {value!r}")


def parse_jsonl_suite(raw: Any) -> list[Item]:
    """A generic prompt suite (the format `cdelta organism build --prompts` takes): prompt and
    category, optional split and id. Categories are normally ours already."""
    items = []
    for index, row in enumerate(table(raw, ("prompt", "category"))):
        prompt = text(row, "prompt", index)
        split = optional_text(row, "split").strip() or None
        if split is not None and split not in SPLITS:
            raise SuiteFormatError(f"row {index + 1}: split must be one of {', '.join(SPLITS)}, got {split!r}")
        items.append(
            Item(
                id=optional_text(row, "id").strip() or content_id(prompt),
                prompt=prompt,
                category=text(row, "category", index),
                split=split,
                unmapped_kind="policy",
            )
        )
    return items
