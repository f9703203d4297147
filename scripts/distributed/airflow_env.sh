# shellcheck shell=bash
# Configuration of a distributed Airflow 3 deployment (CeleryExecutor + PostgreSQL + Redis, several
# workers and triggerers), as `make e2e-distributed` runs it on 127.0.0.1.
#
# Every Airflow component reads the SAME environment: scheduler, api-server, dag-processor, each
# Celery worker and each triggerer. In a real deployment put these variables into every container /
# unit (secrets from your secret store, never baked into an image).
#
# Inputs (the driver, scripts/distributed/run_e2e.py, sets them before sourcing this file):
#   AIRFLOW_HOME        per-run directory (logs, passwords file)
#   DIST_DAGS_FOLDER    the DAG files every component parses (same content everywhere)
#   DIST_PG_PORT, DIST_PG_PASSWORD        the PostgreSQL metadata database (role and database "airflow")
#   DIST_REDIS_PORT, DIST_REDIS_PASSWORD  the Redis broker / result backend
#   DIST_API_PORT       the api-server's port
#   DIST_JWT_SECRET     shared JWT signing secret (random per run)
#   DIST_FERNET_KEY     shared Fernet key (random per run)
#   DIST_TRIGGERER_CAPACITY, DIST_TRIGGERER_HEALTH_CHECK_THRESHOLD, DIST_WORKER_CONCURRENCY
#   DIST_TASK_HEARTBEAT_TIMEOUT           seconds without a task heartbeat before the task is failed
#
# Use: set -a; source airflow_env.sh; set +a

: "${AIRFLOW_HOME:?}" "${DIST_DAGS_FOLDER:?}" "${DIST_PG_PORT:?}" "${DIST_PG_PASSWORD:?}"
: "${DIST_REDIS_PORT:?}" "${DIST_REDIS_PASSWORD:?}" "${DIST_API_PORT:?}" "${DIST_JWT_SECRET:?}"
: "${DIST_FERNET_KEY:?}"
DIST_TRIGGERER_CAPACITY="${DIST_TRIGGERER_CAPACITY:-1000}"
DIST_TRIGGERER_HEALTH_CHECK_THRESHOLD="${DIST_TRIGGERER_HEALTH_CHECK_THRESHOLD:-30}"
DIST_WORKER_CONCURRENCY="${DIST_WORKER_CONCURRENCY:-16}"
DIST_TASK_HEARTBEAT_TIMEOUT="${DIST_TASK_HEARTBEAT_TIMEOUT:-300}"

export AIRFLOW_HOME
export PYTHONUNBUFFERED=1

# ---------------------------------------------------------------------------------------------
# Executor, metadata database, broker
# ---------------------------------------------------------------------------------------------
# Tasks leave the scheduler through Redis and run on whichever Celery worker takes them: no task
# may rely on local state of the machine that ran its previous try. (The Seedance operator keeps
# the request id in the metadata DB - task state store, XCom, trigger kwargs - for this reason.)
export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
# One PostgreSQL database for every component. SQLite cannot be shared between processes on
# several machines and does not support the row locks the scheduler and triggerers rely on
# (triggers are claimed with UPDATE ... WHERE triggerer_id NOT IN alive triggerers).
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://airflow:${DIST_PG_PASSWORD}@127.0.0.1:${DIST_PG_PORT}/airflow"
# The broker carries "run this task" messages from the scheduler to the workers.
export AIRFLOW__CELERY__BROKER_URL="redis://:${DIST_REDIS_PASSWORD}@127.0.0.1:${DIST_REDIS_PORT}/0"
# Where Celery stores task outcomes for the scheduler's executor to read (Airflow's default is the
# metadata DB, `db+postgresql://...`; Redis keeps that load off PostgreSQL).
export AIRFLOW__CELERY__RESULT_BACKEND="redis://:${DIST_REDIS_PASSWORD}@127.0.0.1:${DIST_REDIS_PORT}/1"
# Slots per worker. Deferred tasks hold no slot: 50 generations waiting in the triggerers need none.
export AIRFLOW__CELERY__WORKER_CONCURRENCY="${DIST_WORKER_CONCURRENCY}"
# A message whose worker died without acknowledging it (acks_late) is redelivered after this many
# seconds. Keep it long: Airflow itself notices the dead task (heartbeat timeout below) and retries
# it as a new try; an early redelivery would start the old try a second time.
export AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT=21600

# ---------------------------------------------------------------------------------------------
# api-server, Execution API, authentication
# ---------------------------------------------------------------------------------------------
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="${DIST_API_PORT}"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:${DIST_API_PORT}"
export AIRFLOW__API__WORKERS=1
# Airflow 3 workers and triggerers never open the metadata DB for task work: the task runner talks
# to the api-server's Execution API (XCom, task state store, Variables, Connections, heartbeats).
# Every worker must reach this URL.
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:${DIST_API_PORT}/execution/"
# The scheduler signs a short-lived token into every task it queues; the api-server checks it. Both
# (and the triggerers) must share this secret, otherwise every task fails with 403 at its first
# Execution API call. (Asymmetric keys, [api_auth] jwt_private_key_path, restrict signing further.)
export AIRFLOW__API_AUTH__JWT_SECRET="${DIST_JWT_SECRET}"
# Connections/Variables stored in the DB are encrypted with it: identical on every component.
export AIRFLOW__CORE__FERNET_KEY="${DIST_FERNET_KEY}"
# REST API users (simple auth manager; a development auth manager - use FAB/Keycloak in production).
# The driver writes the passwords file and gets a JWT from POST /auth/token.
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="${AIRFLOW_HOME}/passwords.json"

# ---------------------------------------------------------------------------------------------
# Triggerers: where deferred Seedance generations wait
# ---------------------------------------------------------------------------------------------
# Triggers one triggerer runs at once. Each waiting generation is one small coroutine polling the
# vendor through a shared HTTP session, so one triggerer holds thousands; run two or more for
# availability, with enough capacity that the survivors can absorb a dead one's triggers.
export AIRFLOW__TRIGGERER__CAPACITY="${DIST_TRIGGERER_CAPACITY}"
# How often a triggerer writes its heartbeat into the job table.
export AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC=2
# A triggerer whose last heartbeat is older than this counts as dead, and the other triggerers take
# its triggers over on their next loop (about every second). This is the failover delay of waiting
# generations; it must stay well above job_heartbeat_sec so a busy triggerer is not declared dead.
export AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD="${DIST_TRIGGERER_HEALTH_CHECK_THRESHOLD}"
# Triggers one triggerer claims per loop (default 50): lower than the capacity so a burst of
# deferrals spreads over all triggerers instead of landing on whichever polled first.
export AIRFLOW__TRIGGERER__MAX_TRIGGER_TO_SELECT_PER_LOOP=10

# ---------------------------------------------------------------------------------------------
# Scheduler: noticing dead workers
# ---------------------------------------------------------------------------------------------
# A task whose supervisor stops heartbeating (its worker died) is failed after this many seconds
# and, when it has retries left, retried on another worker. Default 300 s; shorter here so the
# worker-kill scenario fits the CI budget. Workers heartbeat every [workers] min_heartbeat_interval (5 s).
export AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="${DIST_TASK_HEARTBEAT_TIMEOUT}"
export AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL=5
export AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC=2
# Deferred tasks are not "running or queued": they do not count against these two.
export AIRFLOW__CORE__PARALLELISM=16
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=16

# ---------------------------------------------------------------------------------------------
# DAG files and the rest
# ---------------------------------------------------------------------------------------------
export AIRFLOW__CORE__DAGS_FOLDER="${DIST_DAGS_FOLDER}"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# Paused at creation so nothing runs before the driver unpauses it.
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
# Pick up the DAG files within seconds (defaults: 300 s listing, 30 s re-parse).
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5
export AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL=60
export AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES=1
export AIRFLOW__LOGGING__LOGGING_LEVEL=INFO
