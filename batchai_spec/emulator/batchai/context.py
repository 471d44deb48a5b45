"""What the Batch AI scheduler's steps share: the state, the configuration, node paths and the task processes."""

from __future__ import annotations

from dataclasses import dataclass, field

from batchai_spec.emulator.batchai.config import BatchAIConfig
from batchai_spec.emulator.batchai.environment import host_environment
from batchai_spec.emulator.batchai.layout import Layout
from batchai_spec.emulator.batchai.processes import ProcessTable
from batchai_spec.emulator.state import State


@dataclass
class Context:
    state: State
    config: BatchAIConfig
    layout: Layout
    processes: ProcessTable = field(default_factory=ProcessTable)
    host_env: dict[str, str] = field(default_factory=host_environment)

    @classmethod
    def create(cls, state: State, config: BatchAIConfig) -> Context:
        return cls(state=state, config=config, layout=Layout(state.root / "batchai"))
