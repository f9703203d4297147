"""A warning for the pool trap of ``airflow dags test``: it runs every task whatever its pool says.

Under a scheduler, a task whose pool does not exist is never started: it stays ``scheduled`` with no
error. ``airflow dags test`` ignores pools, so the same DAG passes there. The Task SDK has no pool
lookup (the execution API offers none), so a task cannot ask in general; but ``dags test`` (and
``dag.test()``) runs each task *in its own process*, through
``airflow.sdk.execution_time.supervisor.InProcessTestSupervisor``, where the metadata database that
the CLI itself uses is reachable (the ORM is blocked only in a real worker's task process). There, and
only there, the pool is looked up and a missing one is reported. Everywhere else nothing is checked:
the scheduler enforces pools itself.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["missing_pool_message", "running_under_dag_test", "warn_if_pool_missing"]

_SUPERVISOR_MODULE = "airflow.sdk.execution_time.supervisor"
_TASK_RUNNER_MODULE = "airflow.sdk.execution_time.task_runner"


def running_under_dag_test() -> bool:
    """True when this task runs in-process under ``airflow dags test`` / ``dag.test()``.

    Both run tasks through ``InProcessTestSupervisor``, which installs ``InProcessSupervisorComms`` as
    the task runner's ``SUPERVISOR_COMMS``; a worker's task process has a socket-based comms object.
    """
    # sys.modules, not an import: in-process runs have already loaded both modules, and a worker's task
    # process must not pay for loading the supervisor just to learn it is not in a test.
    supervisor = sys.modules.get(_SUPERVISOR_MODULE)
    task_runner = sys.modules.get(_TASK_RUNNER_MODULE)
    comms_type = getattr(supervisor, "InProcessSupervisorComms", None)
    if comms_type is None or task_runner is None:
        return False
    return isinstance(getattr(task_runner, "SUPERVISOR_COMMS", None), comms_type)


def missing_pool_message(pool: str) -> str:
    """The warning for a pool that does not exist, with the command that creates it.

    :param pool: the pool's name.
    """
    return (
        f"Pool {pool!r} does not exist. `airflow dags test` ignores pools, so this run goes on; under a "
        f"scheduler this task would never start (it would stay 'scheduled'). Create the pool first: "
        f"airflow pools set {pool} <slots> '<description>' --include-deferred"
    )


def warn_if_pool_missing(pool: str | None, log: Any) -> bool | None:
    """Under ``airflow dags test``, log a warning when ``pool`` does not exist.

    :param pool: the task's pool (None or the default pool: nothing to check).
    :param log: the task's logger.
    :return: True when the pool exists, False when it is missing (and a warning was logged), None when
        it was not checked (not under ``dags test``, the default pool, or the lookup failed).
    """
    if not pool or not running_under_dag_test():
        return None
    try:
        # airflow-core, reachable here: an in-process dags test shares the CLI's metadata database.
        from airflow.models.pool import Pool

        if pool == Pool.DEFAULT_POOL_NAME:
            return None
        exists = Pool.get_pool(pool) is not None
    except Exception as exc:  # a check that cannot run must never fail the task
        log.debug("Could not look up pool %r under dags test: %s", pool, exc)
        return None
    if not exists:
        log.warning("%s", missing_pool_message(pool))
    return exists
