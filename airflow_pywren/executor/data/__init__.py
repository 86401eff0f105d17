"""Maps over data where it lives: objects in storage, URLs and local files, split into chunks.

``locations`` parses the forms of ``iterdata``; ``discovery`` finds the objects (listings,
no reads); ``partitioner`` splits them into byte ranges; ``plan`` turns that into the
job's items; ``reader`` and ``calls`` are the function side (aligned, streaming reads).
"""

from airflow_pywren.executor.data.calls import DATA_PARAMETERS, DataChunk, wants_data
from airflow_pywren.executor.data.partitioner import DataObject, DataPart, check_chunking, split_object
from airflow_pywren.executor.data.plan import DataPlan, plan_data

__all__ = [
    "DATA_PARAMETERS",
    "DataChunk",
    "DataObject",
    "DataPart",
    "DataPlan",
    "check_chunking",
    "plan_data",
    "split_object",
    "wants_data",
]
