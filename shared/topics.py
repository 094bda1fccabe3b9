"""MQTT topic -> sensor key, by a template such as ``factory/{line}/{machine}/{sensor}``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared import sensor_key
from shared.text import nfc

REQUIRED = ("line", "machine", "sensor")
_PLACEHOLDER = re.compile(r"^\{([a-z_]+)\}$")


class TopicError(ValueError):
    """The topic does not fit the template (a dead-letter reason)."""


@dataclass(frozen=True, slots=True)
class TopicTemplate:
    """A compiled topic template.

    Each ``/``-separated level is a literal or one ``{name}`` placeholder. The sensor key is
    ``line/machine/sensor``; other placeholders (``{site}``, ``{_}``) match one level and are
    not part of the key.
    """

    template: str
    _levels: tuple[tuple[str, str | None], ...]

    @classmethod
    def compile(cls, template: str) -> TopicTemplate:
        levels: list[tuple[str, str | None]] = []
        seen: set[str] = set()
        for level in template.split("/"):
            match = _PLACEHOLDER.match(level)
            if match:
                name = match.group(1)
                if name in seen:
                    raise ValueError(f"topic_template {template!r}: {{{name}}} appears twice")
                seen.add(name)
                levels.append(("", name))
            elif "{" in level or "}" in level or "+" in level or "#" in level:
                raise ValueError(
                    f"topic_template {template!r}: level {level!r} must be a literal "
                    "or exactly one {placeholder}"
                )
            else:
                levels.append((level, None))
        missing = [name for name in REQUIRED if name not in seen]
        if missing:
            raise ValueError(
                f"topic_template {template!r} lacks {', '.join('{' + m + '}' for m in missing)}"
            )
        return cls(template, tuple(levels))

    def key(self, topic: str) -> str:
        """The sensor key ``line/machine/sensor`` for ``topic``, or TopicError."""
        parts = topic.split("/")
        if len(parts) != len(self._levels):
            raise TopicError(f"topic {topic!r} does not fit template {self.template!r}")
        values: dict[str, str] = {}
        for part, (literal, name) in zip(parts, self._levels, strict=True):
            if name is None:
                if part != literal:
                    raise TopicError(f"topic {topic!r} does not fit template {self.template!r}")
            elif not part:
                raise TopicError(f"topic {topic!r} has an empty {{{name}}} level")
            else:
                values[name] = part
        key = nfc("/".join(values[name] for name in REQUIRED))
        problem = sensor_key.key_problem(key)
        if problem is not None:
            raise TopicError(f"topic {topic!r}: {problem}")
        return key

    def topic_for(self, line: str, machine: str, sensor: str, **other: str) -> str:
        values = {"line": line, "machine": machine, "sensor": sensor, **other}
        return "/".join(
            literal if name is None else values.get(name, "_") for literal, name in self._levels
        )


def split_key(key: str) -> tuple[str, str, str]:
    """``line/machine/sensor`` -> its three parts (ValueError when malformed: the rule is
    shared.sensor_key's, the same at the agent and at the hub)."""
    return sensor_key.split_key(key)
