"""The ask pipeline: prompt, generate, execute, repair, vote, abstain (see ask.py for the flow).

    engine = Engine(load_llm("qwen2.5-coder-1.5b"))
    answer = engine.ask(open_database("sqlite:///shop.db"), "How many orders shipped in May?")
"""

from sqlwright.pipeline.ask import AskOptions, Engine
from sqlwright.pipeline.conversation import Turn
from sqlwright.pipeline.types import Answer, Candidate

__all__ = ["Answer", "AskOptions", "Candidate", "Engine", "Turn"]
