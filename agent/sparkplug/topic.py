"""Sparkplug B topics (spec §4.1):
``spBv1.0/{group_id}/{message_type}/{edge_node_id}[/{device_id}]`` and the host
application's ``spBv1.0/STATE/{host_id}``."""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "spBv1.0"
NODE_TYPES = frozenset({"NBIRTH", "NDEATH", "NDATA", "NCMD"})
DEVICE_TYPES = frozenset({"DBIRTH", "DDEATH", "DDATA", "DCMD"})
# Sent to edge nodes, not by them: the host (we) publishes these; they carry no readings.
COMMAND_TYPES = frozenset({"NCMD", "DCMD"})


class SparkplugTopicError(ValueError):
    """A topic under spBv1.0/ that is not a Sparkplug B topic (a dead-letter reason)."""


@dataclass(frozen=True, slots=True)
class Topic:
    group_id: str
    message_type: str
    edge_node_id: str
    device_id: str | None = None

    @property
    def node(self) -> tuple[str, str]:
        """The edge node this message is from or for: (group_id, edge_node_id)."""
        return self.group_id, self.edge_node_id

    def __str__(self) -> str:
        parts = [NAMESPACE, self.group_id, self.message_type, self.edge_node_id]
        if self.device_id is not None:
            parts.append(self.device_id)
        return "/".join(parts)


def is_sparkplug(topic: str) -> bool:
    return topic.startswith(NAMESPACE + "/")


def is_state(topic: str) -> bool:
    """A primary host's STATE topic (``spBv1.0/STATE/{host_id}``), ours or another host's."""
    return topic.startswith(NAMESPACE + "/STATE/")


def state_topic(host_id: str) -> str:
    return f"{NAMESPACE}/STATE/{host_id}"


def parse_topic(topic: str) -> Topic:
    """A Sparkplug B edge-node or device topic -> its parts, or SparkplugTopicError."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE:
        raise SparkplugTopicError(
            f"topic {topic!r} is not {NAMESPACE}/group/type/edge_node[/device]"
        )
    if not all(parts):
        raise SparkplugTopicError(f"topic {topic!r} has an empty level")
    _, group, mtype, node, *device = parts
    if len(parts) == 4 and mtype not in NODE_TYPES:
        if mtype in DEVICE_TYPES:
            raise SparkplugTopicError(f"topic {topic!r}: {mtype} needs a device_id level")
        raise SparkplugTopicError(f"topic {topic!r}: unknown message type {mtype!r}")
    if len(parts) == 5 and mtype not in DEVICE_TYPES:
        raise SparkplugTopicError(f"topic {topic!r}: {mtype} takes no device_id level")
    return Topic(group, mtype, node, device[0] if device else None)
