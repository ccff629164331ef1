"""Evaluation datasets: Spider, BIRD, Defog SQL-Eval and your own JSONL/CSV files.

    dataset = load_dataset("spider", Path("../shared/data/spider"))
    for example in dataset.examples:
        url = dataset.database_url(example.db)

Each kind is a registered `Dataset` subclass (see base.py); `read_predictions` reads another system's
predictions in the Spider, BIRD or JSONL format.
"""

from sqlwright.errors import DatasetError
from sqlwright.eval.datasets.base import Dataset, dataset_class, dataset_kinds, load_dataset
from sqlwright.eval.datasets.hardness import HARDNESS_LEVELS, spider_hardness
from sqlwright.eval.datasets.predictions import read_predictions

__all__ = [
    "HARDNESS_LEVELS",
    "Dataset",
    "DatasetError",
    "dataset_class",
    "dataset_kinds",
    "load_dataset",
    "read_predictions",
    "spider_hardness",
]
