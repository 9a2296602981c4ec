"""The query of an hourly usage report, shared by ``GET /admin/v1/usage`` and
``GET /admin/v1/me/usage`` (imports api, core, platform).

Query parameters (every one optional)::

    since=24h  until=2025-11-26T08:00Z  model=qwen-plus  key=key_1a2b  workspace=ws1  by=key,mode

Times as ``platform.report.parse_time`` reads them; each text must fit the column it is matched
against. Anything else is a 400 ``invalid_parameter_error`` naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import QueryParams

from thinkserve.core.errors import InvalidParameter
from thinkserve.platform import report
from thinkserve.platform.administration import KeyFieldError, check_text
from thinkserve.platform.columns import KEY_ID_LENGTH, NAME_LENGTH
from thinkserve.platform.port import Administration


@dataclass(frozen=True, slots=True)
class UsageQuery:
    since: float
    until: float | None
    model: str | None
    key_id: str | None
    workspace: str | None
    by: list[str]

    @classmethod
    def parse(cls, q: QueryParams) -> UsageQuery:
        """Raises ``InvalidParameter``."""
        return cls(
            since=_time(q.get("since", "24h"), "since"),
            until=None if "until" not in q else _time(q["until"], "until"),
            model=text_query(q.get("model"), "model", NAME_LENGTH),
            key_id=text_query(q.get("key"), "key", KEY_ID_LENGTH),
            workspace=text_query(q.get("workspace"), "workspace", NAME_LENGTH),
            by=[b for b in q.get("by", "").split(",") if b],
        )

    async def rows(self, admin: Administration, *, scope: str | None) -> list[report.Hourly]:
        """The report's rows; raises ``InvalidParameter`` for a grouping it does not know."""
        try:
            return await admin.usage(
                self.since,
                self.until,
                model=self.model,
                key_id=self.key_id,
                by=self.by,
                scope=scope,
                workspace=self.workspace,
            )
        except ValueError as exc:
            raise InvalidParameter(str(exc), param="by") from exc


def _time(text: str, name: str) -> float:
    try:
        return report.parse_time(text)
    except ValueError as exc:
        raise InvalidParameter(f"{name}: {exc}", param=name) from exc


def text_query(value: str | None, name: str, limit: int) -> str | None:
    """A query parameter matched against a stored column: no longer than it, no control characters."""
    try:
        return None if value is None else check_text(value, name, limit)
    except KeyFieldError as exc:
        raise InvalidParameter(str(exc), param=name) from exc
