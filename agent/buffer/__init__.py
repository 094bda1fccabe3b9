"""The durable buffer: every reading the agent acknowledged to the broker lives here until
the hub has confirmed it.

One SQLite file in WAL mode, written by one connection on the agent's event loop thread (the
ingest and sync tasks never run a statement at the same time, so there is no lock to contend
for). ``edge-agent status`` opens the same file read-only from another process; WAL lets it
read while the agent writes.

Durability, by ``[buffer] durability`` (docs/reliability.md says what each one promises):

* ``"process"`` (the default, ``synchronous=NORMAL`` in WAL mode): a commit is appended to the
  ``-wal`` file with ``write()`` but not fsynced; the WAL is fsynced only when it is
  checkpointed. A process crash / ``kill -9`` loses nothing committed - the bytes are in the OS
  page cache and the next open replays the WAL; that is the case ack-after-commit is designed
  for. A power loss / kernel panic may roll back the last transactions since the previous WAL
  sync, so messages already acknowledged to the broker can be lost.
* ``"power"`` (``synchronous=FULL``): every commit fsyncs the WAL before it returns, so before
  the PUBACKs of its batch go out; one fsync per batch of messages (milliseconds on SSDs, tens
  on SD cards/eMMC).

Either way a seq that the hub has already stored is never handed out again after such a
rollback (the hub would take the new reading for a duplicate and drop it): ``Buffer.make_durable``
fsyncs the WAL before any seq is sent to the hub.

The modules, one job each (each states the invariants it keeps in its docstring):

* ``outbox``     - :class:`Buffer`: append, claim, ack, reject; durability of seqs
* ``db``         - the connections, the one transaction helper, the ``state`` table
* ``schema``     - the tables, created or migrated at every open
* ``budget``     - ``max_bytes``: what counts, what fits, eviction for ``drop_oldest``
* ``redelivery`` - which MQTT messages are committed (DUP redeliveries are not stored twice)
* ``alerts``     - the alert outbox
* ``status``     - :class:`Status`, what ``edge-agent status``, drain and metrics read
* ``recovery``   - a damaged file found at open, and every readable row salvaged from it
"""

from agent.buffer.alerts import AlertRow
from agent.buffer.outbox import AppendResult, Buffer, DeadLetter, Reading, Row
from agent.buffer.redelivery import MessageId
from agent.buffer.status import Status, read_status

__all__ = [
    "AlertRow",
    "AppendResult",
    "Buffer",
    "DeadLetter",
    "MessageId",
    "Reading",
    "Row",
    "Status",
    "read_status",
]
