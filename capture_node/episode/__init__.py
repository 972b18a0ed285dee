"""The episode format: one HDF5 file per demonstration, its metadata and schema (schemas/episode/), the
crash-safe journal it is written through, and reading it back: streams, time-aligned steps for learning code,
summaries, validation and annotations.

Writing: `EpisodeMetadata`, `StreamSpec`, `JournalWriter` then `EpisodeFileWriter` (`excap.record.Recorder` drives
them). Reading: `EpisodeReader` / `opened`, `iter_steps`, `summarize`, `validate_episode`, `scan_journal`.

Public names are imported on first use (`excap.core.lazy_exports`): importing the package, or any
module in it, imports nothing else.
"""

from typing import TYPE_CHECKING

from excap.core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from excap.episode.annotations import Annotation, AnnotationSpan, read_annotation, store_annotation
    from excap.episode.h5writer import EpisodeFileWriter
    from excap.episode.journal import JournalWriter
    from excap.episode.journal_reader import JournalScan, read_journal, scan_journal
    from excap.episode.metadata import EpisodeMetadata, EpisodePaths, new_episode_id
    from excap.episode.quality import file_warnings
    from excap.episode.reader import EpisodeReader, Event, opened
    from excap.episode.schema import load_episode_schema
    from excap.episode.steps import Step, iter_steps
    from excap.episode.stream_reader import CameraStream, Stream, StreamInfo
    from excap.episode.streams import Column, StreamSpec
    from excap.episode.summary import EpisodeSummary, summarize
    from excap.episode.validation import validate_episode

__all__ = ["Annotation", "AnnotationSpan", "CameraStream", "Column", "EpisodeFileWriter", "EpisodeMetadata",
           "EpisodePaths", "EpisodeReader", "EpisodeSummary", "Event", "JournalScan", "JournalWriter", "Step", "Stream",
           "StreamInfo", "StreamSpec", "file_warnings", "iter_steps", "load_episode_schema", "new_episode_id", "opened",
           "read_annotation", "read_journal", "scan_journal", "store_annotation", "summarize", "validate_episode"]

__getattr__, __dir__ = lazy_exports(__name__, __all__, {
    "excap.episode.metadata": ["EpisodeMetadata", "EpisodePaths", "new_episode_id"],
    "excap.episode.streams": ["Column", "StreamSpec"],
    "excap.episode.h5writer": ["EpisodeFileWriter"],
    "excap.episode.journal": ["JournalWriter"],
    "excap.episode.journal_reader": ["JournalScan", "read_journal", "scan_journal"],
    "excap.episode.reader": ["EpisodeReader", "Event", "opened"],
    "excap.episode.stream_reader": ["CameraStream", "Stream", "StreamInfo"],
    "excap.episode.steps": ["Step", "iter_steps"],
    "excap.episode.summary": ["EpisodeSummary", "summarize"],
    "excap.episode.validation": ["validate_episode"],
    "excap.episode.quality": ["file_warnings"],
    "excap.episode.annotations": ["Annotation", "AnnotationSpan", "read_annotation", "store_annotation"],
    "excap.episode.schema": ["load_episode_schema"],
})
