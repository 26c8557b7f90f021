"""Shared data layer: one record model for every input format, streaming loaders."""

from tunerail.data.records import FORMATS, RawRow, Record, Rejection
from tunerail.data.layout import detect_format, to_record
from tunerail.data.loaders import iter_raw_rows, load_records

__all__ = ["FORMATS", "RawRow", "Record", "Rejection", "detect_format", "iter_raw_rows", "load_records", "to_record"]
