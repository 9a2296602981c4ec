"""Everything a request handler needs, built once by the app factory (imports service, platform)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thinkserve.config import Settings
from thinkserve.platform.port import Gate
from thinkserve.service import GenerationService


@dataclass(slots=True)
class AppState:
    settings: Settings
    service: GenerationService
    gate: Gate
    created: int
    model_files: dict[str, str]
    """Engine name -> the model file it serves (shown in /models)."""

    def model_card(self, name: str) -> dict[str, Any]:
        spec = self.service.models[name]
        chat = self.service.runtime_for(spec).chat
        return {
            "id": name,
            "object": "model",
            "created": self.created,
            "owned_by": "thinkserve",
            "thinkserve": {
                "mode": spec.mode,
                "thinking_default": spec.thinks_by_default(),
                "soft_switch": spec.soft_switch,
                "non_stream": spec.non_stream,
                "max_cot": spec.max_cot,
                "max_input": spec.max_input,
                "max_output": spec.max_output,
                "served_by": self.model_files.get(spec.engine, spec.engine),
                # Prompted thinking: the model file has no native thinking; thinking is asked for
                # by a system instruction and an opened <think> block.
                "thinking": "prompted" if chat.prompted else "native",
            },
        }
