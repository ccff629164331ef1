"""Stage 2: back-translation into styled questions, explanation first; the candidate nearest the centroid."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from synth_helpers import make_db

from sqlwright.db import open_database
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.synth.prompts import LEVELS, STYLE_NAMES, get_style, parse_question_reply
from sqlwright.synth.questions import (
    choose_style,
    nearest_to_centroid,
    question_schema_text,
    synthesize_question,
    tables_of,
)
from sqlwright.synth.sql import database_context

SQL = "SELECT name FROM singer WHERE age > 40"


def reply(question: str, knowledge: str | None = None) -> str:
    text = (f"[EXPLANATION-START]\nIt lists the names of singers older than 40.\n[EXPLANATION-END]\n"
            f"[QUESTION-START]\n{question}\n[QUESTION-END]")
    if knowledge:
        text += f"\n[EXTERNAL-KNOWLEDGE-START]\n{knowledge}\n[EXTERNAL-KNOWLEDGE-END]"
    return text


@pytest.fixture()
def ctx(tmp_path: Path):
    with open_database(f"sqlite:///{make_db(tmp_path / 'c.sqlite')}") as db:
        yield database_context(db, "concerts")


class FakeEmbedder:
    """Embeds a text as the unit vector its first word names (texts must start with a known word)."""

    name = "fake-embedder"
    AXES = {"old": [1.0, 0.0], "aged": [0.7, 0.7], "weather": [0.0, 1.0]}

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        vectors = np.array([self.AXES[t.split()[0].lower()] for t in texts], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# --- parsing --------------------------------------------------------------------------------------------
def test_the_question_section_is_read_with_its_explanation() -> None:
    parsed = parse_question_reply(reply("Which singers are older than 40?"), get_style("formal"))
    assert parsed.question == "Which singers are older than 40?"
    assert parsed.explanation == "It lists the names of singers older than 40."
    assert parsed.evidence is None


def test_labelled_lines_carry_question_and_knowledge() -> None:
    parsed = parse_question_reply("Question: Who are the older singers?\nKnowledge: older means over 40",
                                  get_style("vague"))
    assert (parsed.question, parsed.evidence) == ("Who are the older singers?", "older means over 40")
    assert parse_question_reply("Knowledge: older means over 40", get_style("vague")) is None


def test_vague_and_metaphorical_questions_carry_their_knowledge() -> None:
    text = reply("Who are the veterans of the stage?", "'veterans' means older than 40")
    assert parse_question_reply(text, get_style("metaphorical")).evidence == "'veterans' means older than 40"
    assert parse_question_reply(text, get_style("formal")).evidence is None  # only those styles keep it


@pytest.mark.parametrize(("text", "expected"), [
    ("[QUESTION-START]\n  Which singers are   older than 40?  \n[QUESTION-END]", "Which singers are older than 40?"),
    ("[QUESTION-START] \"Which singers are older than 40?\"", "Which singers are older than 40?"),  # no end marker
    ("Explanation: it filters.\nQuestion: Which singers are older than 40?", "Which singers are older than 40?"),
    ("**Question**: Which singers are older than 40?", "Which singers are older than 40?"),
    ("**Explanation**\nIt filters.\n\n**Question**\nWhich singers are older than 40?", "Which singers are older than 40?"),
    ("[QUESTION-START]\nThe question asks for the singers over 40.\n[QUESTION-END]", None),  # a description
    ("I cannot help with that.", None),
    ("Sure! Here is the question:\nWhich singers are older than 40?", "Which singers are older than 40?"),
    ("Which singers are older than 40?", "Which singers are older than 40?"),
    ("I want to know which singers are older than 40.", "I want to know which singers are older than 40."),
    ("Sure! Here is the question:", None),
    ("What is the SQL to list singers older than 40?", None),  # about SQL, not the data
    ("What query would list the singers older than 40?", None),
    ("[QUESTION-START]\nSingers?\n[QUESTION-END]", None),  # too short to be a question
    ("[QUESTION-START]\nSELECT name FROM singer WHERE age > 40\n[QUESTION-END]", None),  # SQL, not a question
    ("[QUESTION-START]\n```sql\nx\n```\n[QUESTION-END]", None),
])
def test_replies_of_small_models_are_read_or_refused(text: str, expected: str | None) -> None:
    parsed = parse_question_reply(text, get_style("formal"))
    assert (parsed.question if parsed else None) == expected


def test_a_dialogue_keeps_its_turns_and_needs_a_user_turn() -> None:
    style = get_style("multi-turn")
    dialogue = "User: I need singer data.\nAssistant: Which singers?\nUser: Those older than 40, their names."
    assert parse_question_reply(reply(dialogue), style).question == dialogue
    assert parse_question_reply(reply("Which singers are older than 40?"), style) is None
    # the dialogue ends with the user's question: the assistant's answer after it (often SQL) is dropped
    answered = "User: Which singers are over 40?\nAssistant: Use this SQL:\n```sql\nSELECT name FROM singer\n```"
    assert parse_question_reply(answered, style).question == "User: Which singers are over 40?"
    # small models drop the markers, or bracket each turn
    unmarked = "Here is a dialogue:\n[User: I need singer data.]\n[Assistant: Which singers?]\n[User: Those over 40.]"
    assert parse_question_reply(unmarked, style).question == (
        "User: I need singer data.\nAssistant: Which singers?\nUser: Those over 40.")


# --- styles ---------------------------------------------------------------------------------------------
def test_the_style_is_drawn_reproducibly_and_covers_all_nine() -> None:
    assert len(STYLE_NAMES) == 9
    styles = [choose_style(0, "concerts", level, i) for level in LEVELS for i in range(50)]
    assert styles == [choose_style(0, "concerts", level, i) for level in LEVELS for i in range(50)]
    assert set(styles) == set(STYLE_NAMES)
    assert max(Counter(styles).values()) < 50  # spread, not one style
    assert styles != [choose_style(1, "concerts", level, i) for level in LEVELS for i in range(50)]


# --- centroid -------------------------------------------------------------------------------------------
def test_nearest_to_centroid_picks_the_most_typical_vector() -> None:
    v = np.array([[1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert nearest_to_centroid(v) == 1
    assert nearest_to_centroid(np.array([[1, 0], [-1, 0]], dtype=np.float32)) == 0  # a zero centroid


def test_the_schema_shown_is_that_of_the_tables_the_query_reads(ctx) -> None:
    assert tables_of("WITH t AS (SELECT * FROM singer) SELECT * FROM t JOIN concert ON 1 = 1", "sqlite") == {
        "singer", "concert"}
    text = question_schema_text(ctx, SQL)
    assert "singer" in text and "concert_name" not in text
    assert question_schema_text(ctx, "not sql at all ((") == ctx.schema_text


# --- the stage ------------------------------------------------------------------------------------------
EXPLANATION = "It lists the names of the singers older than 40."


def test_explanation_first_then_k_candidates_and_the_one_nearest_their_centroid(ctx) -> None:
    llm = ScriptedLLM([f"Explanation: {EXPLANATION}", reply("Old singers: which are over 40?"),
                       reply("Weather today, singers over 40?"), reply("Aged singers over 40, who are they?")])
    embedder = FakeEmbedder()
    result = synthesize_question(llm, ctx, SQL, style="interrogative", seed=11, k=3, embedder=embedder)
    explain, ask = llm.requests  # the explanation first, then the questions given it
    assert explain["n"] == 1 and explain["temperature"] == 0.0 and SQL in explain["messages"][-1]["content"]
    assert ask["n"] == 3 and ask["temperature"] > 0 and ask["seed"] == 11
    prompt = ask["messages"][-1]["content"]
    assert EXPLANATION in prompt and get_style("interrogative").description in prompt
    assert SQL not in prompt  # the question is written from the explanation (small models copy SQL)
    assert "concert_name" not in explain["messages"][-1]["content"]  # the explanation sees the tables it reads
    assert result.explanation == EXPLANATION
    assert result.candidates == ("Old singers: which are over 40?", "Weather today, singers over 40?",
                                 "Aged singers over 40, who are they?")
    assert embedder.calls == [list(result.candidates)]
    assert result.question == "Aged singers over 40, who are they?"  # between the other two
    assert (result.chosen, result.selection, result.reason) == (2, "centroid", None)
    assert result.completion_tokens > 0


def test_without_an_embedder_the_first_usable_candidate_is_kept(ctx) -> None:
    llm = ScriptedLLM([EXPLANATION, "I am not sure what you mean, could you say it again, with more words?",
                       reply("Which singers are older than 40?"), reply("Singers over 40, please.")])
    result = synthesize_question(llm, ctx, SQL, style="formal", seed=0, k=3, embedder=None)
    assert (result.question, result.selection) == ("Which singers are older than 40?", "first")
    assert len(result.replies) == 3 and len(result.candidates) == 2


def test_no_usable_candidate_means_no_question(ctx) -> None:
    llm = ScriptedLLM([EXPLANATION, "no", "[QUESTION-START]\nThe question asks for names.\n[QUESTION-END]"])
    result = synthesize_question(llm, ctx, SQL, style="formal", seed=0, k=2, embedder=FakeEmbedder())
    assert result.question is None and result.reason == "no_question" and len(result.replies) == 2
    assert result.explanation == EXPLANATION


def test_a_metaphorical_question_keeps_its_knowledge(ctx) -> None:
    llm = ScriptedLLM([EXPLANATION, "Who are the veterans of the stage?\nKnowledge: 'veterans' are over 40",
                       reply("Who are the veterans of the stage?", "'veterans' are over 40")])
    result = synthesize_question(llm, ctx, SQL, style="metaphorical", seed=0, k=2, embedder=None)
    assert "'Knowledge: '" in llm.requests[1]["messages"][-1]["content"]
    assert result.candidates == ("Who are the veterans of the stage?",) * 2
    assert (result.question, result.evidence, result.selection) == (
        "Who are the veterans of the stage?", "'veterans' are over 40", "first")


def test_the_bundled_embedding_model_picks_a_typical_paraphrase(ctx) -> None:
    from sqlwright.pipeline.embeddings import load_default_embedder

    embedder = load_default_embedder()
    if embedder is None:
        pytest.skip("the bundled MiniLM model is not installed")
    llm = ScriptedLLM([EXPLANATION, reply("Which singers are older than 40?"),
                       reply("What is the capital city of France?"), reply("Which singers are over 40 years old?")])
    result = synthesize_question(llm, ctx, SQL, style="formal", seed=0, k=3, embedder=embedder)
    assert result.selection == "centroid"
    assert result.question != "What is the capital city of France?"
