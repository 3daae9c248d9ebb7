"""What a run leaves: the journal as typed records, its schema version, run ids, verdict words.

The runner writes a `RunRecord` (`to_json`); reports, game days and the Chaos Toolkit layer read
one (`RunRecord.from_json`) and never the runner's own objects. docs/journal.md is the format.
A game day's aggregate journal is a `GameDayRecord` (docs/gamedays.md).
"""

from __future__ import annotations

from chaos.records.experiment import ExperimentSummary, FaultSummary, ServiceSummary, SloSummary
from chaos.records.gameday import GameDayExperiment, GameDayRecord, Schedule
from chaos.records.journal import (Capacity, CapacityStep, CheckVerdict, Event, FineSeries,
                                   Injection, Phase, SeriesPoint)
from chaos.records.layout import JsonObject, JsonValue
from chaos.records.run import Detection, Recovery, RunRecord, Tool, refuse_damaged
from chaos.records.vocabulary import (FAILING, GAMEDAY_SCHEMA, SCHEMA, VERDICTS, Status,
                                      new_run_id)

__all__ = ["FAILING", "GAMEDAY_SCHEMA", "SCHEMA", "VERDICTS", "Capacity", "CapacityStep",
           "CheckVerdict", "Detection", "Event", "ExperimentSummary", "FaultSummary",
           "FineSeries", "GameDayExperiment", "GameDayRecord", "Injection", "JsonObject",
           "JsonValue", "Phase", "Recovery", "RunRecord", "Schedule", "SeriesPoint",
           "ServiceSummary", "SloSummary", "Status", "Tool", "new_run_id", "refuse_damaged"]
