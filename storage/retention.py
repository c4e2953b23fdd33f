"""Pruning: what the bot stores is dropped once it is old and nobody can use it any more."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database

# The tasks pruned: created before the cutoff, finished, not waiting for delivery, and without
# a delivered result Telegram holds for us (`result_file_id`). Those are what /history lists
# with a button to get them again, and their buttons under the result keep working, so they
# are kept however old. Failed jobs, describe texts and results never delivered go.
_DOOMED_TASKS = """
    SELECT id FROM tasks
    WHERE created_at < :cutoff
      AND status_rank >= 4
      AND delivery NOT IN ('pending', 'sending')
      AND result_file_id IS NULL
"""

# Ids per statement: well under SQLite's and asyncpg's limits on bound parameters.
_BATCH = 500


@dataclass(frozen=True, slots=True)
class Pruned:
    """How many rows of each kind one pruning removed."""

    tasks: int = 0
    prompt_requests: int = 0
    uploads: int = 0
    waiting_states: int = 0

    @property
    def total(self) -> int:
        """All rows removed."""
        return self.tasks + self.prompt_requests + self.uploads + self.waiting_states


async def prune(db: Database, cutoff: float) -> Pruned:
    """Remove what is older than `cutoff` (a UNIX time) and no longer of use; see _DOOMED_TASKS.

    Also removed when older than the cutoff: questions for a prompt nobody answered, records
    of uploaded images (their Discord links expired long ago), and waiting states (a /describe
    nobody sent a photo for). Charged usage goes with its task; kept tasks keep theirs.
    """
    params = {"cutoff": cutoff}
    # One transaction: the doomed set is read first and can't grow while it is removed, and
    # the order keeps every foreign key valid after each step.
    async with db.transaction() as statements:
        doomed = [row["id"] for row in await statements.fetch_all(_DOOMED_TASKS, params)]
        requests = await statements.execute(
            "DELETE FROM prompt_requests WHERE created_at < :cutoff", params
        )
        tasks = 0
        for start in range(0, len(doomed), _BATCH):
            ids = {"ids": doomed[start : start + _BATCH]}
            requests += await statements.execute(
                "DELETE FROM prompt_requests WHERE task_id IN :ids", ids
            )
            await statements.execute("DELETE FROM usage WHERE task_id IN :ids", ids)
            # A kept child of a pruned task only used the link to find repeated presses.
            await statements.execute(
                "UPDATE tasks SET parent_id = NULL WHERE parent_id IN :ids", ids
            )
            tasks += await statements.execute("DELETE FROM tasks WHERE id IN :ids", ids)
        uploads = await statements.execute(
            "DELETE FROM uploads WHERE created_at < :cutoff", params
        )
        states = await statements.execute(
            "DELETE FROM fsm_states WHERE updated_at < :cutoff", params
        )
    return Pruned(tasks=tasks, prompt_requests=requests, uploads=uploads, waiting_states=states)
