"""Synthesis of training data: databases, SQL, questions, verification, chain of thought (one module per stage)."""
