"""Word count with map_reduce: one PyWren call counts the words of one text file, a reducer merges the counts.

The texts in ``dags/data/`` are read inside the calls (the paths are all that passes through
Airflow), so this example needs compute that shares this machine's files: the embedded
default (no ``pywren_default`` connection) does. The ``top_words`` task reads the merged
counts from storage through the hook and prints the most frequent words.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

from airflow_pywren.hooks.pywren import PyWrenHook
from airflow_pywren.operators.pywren import PyWrenMapReduceOperator

DATA_DIR = Path(__file__).resolve().parent / "data"
STOP_WORDS = {"the", "a", "and", "of", "to", "in", "it", "its", "is", "by", "as", "on", "that", "then", "his", "him"}


def count_words(path: str) -> dict[str, int]:
    """Map: word counts of one text file."""
    words = re.findall(r"[a-z']+", Path(path).read_text(encoding="utf-8").lower())
    return dict(Counter(word for word in words if word not in STOP_WORDS))


def merge_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    """Reduce: the sum of the per-file counts."""
    total: Counter[str] = Counter()
    for part in counts:
        total.update(part)
    return dict(total)


@dag(
    dag_id="pywren_word_count",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["pywren", "example"],
    doc_md=__doc__,
)
def pywren_word_count():
    @task
    def list_texts() -> list[str]:
        """The text files to count, one map call each."""
        return sorted(str(path) for path in DATA_DIR.glob("*.txt"))

    counted = PyWrenMapReduceOperator(
        task_id="count_words",
        map_function=count_words,
        iterdata=list_texts(),
        reduce_function=merge_counts,
    )

    @task
    def top_words(job_ref: dict, n: int = 10) -> list[list]:
        """Read the merged counts from storage and print the ``n`` most frequent words."""
        (counts,) = PyWrenHook().get_results(job_ref)
        top = Counter(counts).most_common(n)
        print(f"{sum(counts.values())} words, {len(counts)} distinct; top {n}:")
        for word, count in top:
            print(f"  {word:<12} {count}")
        return [[word, count] for word, count in top]

    top_words(counted.output)


pywren_word_count()
