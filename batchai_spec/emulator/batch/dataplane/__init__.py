"""The Azure Batch data plane (`{account}.{region}.batch.azure.com` on Azure), served on its own HTTPS port:
`BatchClient(endpoint=f"{endpoint.batch_url}/{account}", credential=...)`, the account the first path segment.

Modules: `app` (routing, body bound), `auth` (SharedKey and bearer), `wire` (headers, OData errors, durations,
conditional headers), `odata` (`$filter`, `$select`, paging), `jobs`, `tasks`, `files` (task and node files),
`pools` (pool and node views, pool operations).

Contract with the task runner (tasks_runner.py) and the pool and node steps (pools.py, nodes.py)
=================================================================================================

The data plane renders what the rows hold and writes what requests ask for; it runs nothing. JSON columns in the
data plane's spelling, times as ISO 8601 strings (`clock.iso8601`). What each side writes:

`batch_jobs`
  body     (data plane) the job as the service answers it minus the server fields: the request normalised with
           the service's defaults (durations rewritten, enums lower-cased): `poolInfo.poolId`, `priority`,
           `maxParallelTasks`, `constraints{maxWallClockTime, maxTaskRetryCount}`, `jobManagerTask`,
           `jobPreparationTask` (`id` default `jobpreparation`), `jobReleaseTask` (`jobrelease`),
           `commonEnvironmentSettings`, `usesTaskDependencies`, `onAllTasksComplete`, `onTaskFailure`, `metadata`.
  status   `state` active | disabling | disabled | enabling | terminating | completed | deleting,
           `stateTransitionTime`, `previousState`, `previousStateTransitionTime`, `executionInfo{startTime, poolId,
           endTime?, terminateReason?, schedulingError?}`, `stats?`. The data plane writes the requested states
           (and `executionInfo.terminateReason` of a terminate request, `UserTerminate` by default); the runner
           the rest.
  runtime  (data plane) `disableTasks` requeue | terminate | wait, from a disable request. (runner)
           `preparationAndRelease`: node id -> `{poolId, nodeId, jobPreparationTaskExecutionInfo,
           jobReleaseTaskExecutionInfo}`, what `jobpreparationandreleasetaskstatus` lists (nodeUrl and
           taskRootDirectoryUrl are made on the client's endpoint); `nodeTasks` and the rest are its own.

  Requests write the state they ask for and wake the scheduler; the runner finishes them:
  - terminate -> `terminating`: running tasks ended (completed, failureInfo UserError/TaskEnded), active ones left
    active, release tasks run; then `completed` with executionInfo.endTime.
  - delete -> `deleting`: the same, then the job row, its task rows and their directories go (the SDK's poller
    reads the job until 404).
  - disable -> `disabling` (runtime.disableTasks): requeue / terminate / wait for the running tasks; then
    `disabled`. enable -> `enabling`, then `active`. No task of a job that is not `active` is scheduled.
  - A job whose `jobManagerTask` is set gets that task as a task row (same id) at creation; its own settings
    (`runExclusive`, `allowLowPriorityNode`, `killJobOnCompletion`) are in the task body under `jobManager`.

`batch_tasks`
  body     (data plane) the task as the service answers it minus the server fields: `commandLine`,
           `environmentSettings`, `containerSettings{imageName, containerRunOptions, workingDirectory}`,
           `multiInstanceSettings{numberOfInstances, coordinationCommandLine, commonResourceFiles}`,
           `constraints{maxWallClockTime, retentionTime, maxTaskRetryCount}` (the job's retry count by default),
           `userIdentity`, `requiredSlots`, `resourceFiles`, `outputFiles`, `dependsOn`, `exitConditions`, ...
  status   `state` active | preparing | running | completed, `stateTransitionTime`, `previousState`,
           `previousStateTransitionTime`, `executionInfo{startTime, endTime, exitCode, result success|failure,
           failureInfo{category, code, message, details?}, retryCount, lastRetryTime?, requeueCount,
           lastRequeueTime?}`, `nodeInfo{affinityId, poolId, nodeId, taskRootDirectory, ...}` (URLs are made on the
           client's endpoint; without nodeInfo it is derived from runtime.node), `stats?`. New tasks are `active`
           (data plane); the runner moves them.
  runtime  (runner) `node` (the primary's node), `pool`, `taskDir` (absolute: the task file API reads it),
           `taskDirs` (node -> dir, removed with the task), `subtasks` (what `subtasksinfo` lists, nodeInfo URLs
           made on the client's endpoint), the rest its own. (data plane) `terminateRequested`: a terminate
           request for a preparing or running task; the runner ends its processes and completes it with
           UserError/TaskEnded.
  - A task terminated while `active` is completed by the data plane at once (no exitCode, TaskEnded).
  - Reactivate (a completed, failed task of a job that is not completing) sets `active`, retryCount 0 and runtime
    `{}`: the runner schedules it again like a new task.
  - A task row may vanish at any moment (task delete): the runner ends the processes of a task whose row is gone.

`batch_pools` / `batch_nodes` (the ARM part's): pool writes (create, PATCH, updateproperties, resize, stopresize,
removenodes, auto-scale on/off, delete) go through batch/pools.py's shared logic (`normalize_properties`,
`new_pool`, `change_properties`, `stop_resize`, `disable_auto_scale`, `mark_deleting`), evaluateautoscale through
`autoscale.evaluate`; removenodes marks the named nodes `leavingpool` (or `leaveAfterTask` for taskcompletion /
retaineddata) and lowers the targets; a reboot puts the node back to `starting` (due after
`node_preparation_s`). Reads render `properties`/`status` (ARM spelling) in the data plane's spelling and the
nodes' `state` and `runtime` (`ip`, `root`: the node file API, `isDedicated`, `schedulingState`, `allocationTime`,
`lastBootTime`, `startTask`, `startTaskInfo`, `errors`).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response

from batchai_spec.emulator.batch import tasks_runner  # noqa: F401 (its step finishes what requests ask for)
from batchai_spec.emulator.batch.dataplane import files, jobs, pools, tasks
from batchai_spec.emulator.batch.dataplane.app import ROUTES, body_limit, dispatch
from batchai_spec.emulator.batch.dataplane.auth import authenticate
from batchai_spec.emulator.batch.dataplane.rows import work_pending
from batchai_spec.emulator.batch.dataplane.wire import render_error
from batchai_spec.emulator.routing import ServiceError

__all__ = ["authenticate", "body_limit", "dispatch", "error_renderer", "work_pending"]

_TABLE = (
    ("POST", "pools", pools.create_pool),
    ("GET", "pools", pools.list_pools),
    ("GET", "pools/{pool}", pools.get_pool),
    ("HEAD", "pools/{pool}", pools.pool_exists),
    ("DELETE", "pools/{pool}", pools.delete_pool),
    ("PATCH", "pools/{pool}", pools.update_pool),
    ("POST", "pools/{pool}/updateproperties", pools.replace_pool_properties),
    ("POST", "pools/{pool}/evaluateautoscale", pools.evaluate_auto_scale),
    ("POST", "pools/{pool}/resize", pools.resize_pool),
    ("POST", "pools/{pool}/stopresize", pools.stop_resize),
    ("POST", "pools/{pool}/enableautoscale", pools.enable_auto_scale),
    ("POST", "pools/{pool}/disableautoscale", pools.disable_auto_scale),
    ("POST", "pools/{pool}/removenodes", pools.remove_nodes),
    ("GET", "pools/{pool}/nodes", pools.list_nodes),
    ("GET", "pools/{pool}/nodes/{node}", pools.get_node),
    ("POST", "pools/{pool}/nodes/{node}/reboot", pools.reboot_node),
    ("GET", "pools/{pool}/nodes/{node}/files", files.list_node_files),
    ("GET", "pools/{pool}/nodes/{node}/files/**", files.get_node_file),
    ("HEAD", "pools/{pool}/nodes/{node}/files/**", files.get_node_file),
    ("DELETE", "pools/{pool}/nodes/{node}/files/**", files.delete_node_file),
    ("GET", "nodecounts", pools.node_counts),
    ("POST", "jobs", jobs.create_job),
    ("GET", "jobs", jobs.list_jobs),
    ("GET", "jobs/{job}", jobs.get_job),
    ("PATCH", "jobs/{job}", jobs.update_job),
    ("PUT", "jobs/{job}", jobs.replace_job),
    ("DELETE", "jobs/{job}", jobs.delete_job),
    ("POST", "jobs/{job}/terminate", jobs.terminate_job),
    ("POST", "jobs/{job}/disable", jobs.disable_job),
    ("POST", "jobs/{job}/enable", jobs.enable_job),
    ("GET", "jobs/{job}/taskcounts", jobs.task_counts),
    ("GET", "jobs/{job}/jobpreparationandreleasetaskstatus", jobs.preparation_and_release_status),
    ("POST", "jobs/{job}/tasks", tasks.create_task),
    ("GET", "jobs/{job}/tasks", tasks.list_tasks),
    ("POST", "jobs/{job}/addtaskcollection", tasks.add_task_collection),
    ("GET", "jobs/{job}/tasks/{task}", tasks.get_task),
    ("PUT", "jobs/{job}/tasks/{task}", tasks.replace_task),
    ("DELETE", "jobs/{job}/tasks/{task}", tasks.delete_task),
    ("POST", "jobs/{job}/tasks/{task}/terminate", tasks.terminate_task),
    ("POST", "jobs/{job}/tasks/{task}/reactivate", tasks.reactivate_task),
    ("GET", "jobs/{job}/tasks/{task}/subtasksinfo", tasks.list_subtasks),
    ("GET", "jobs/{job}/tasks/{task}/files", files.list_task_files),
    ("GET", "jobs/{job}/tasks/{task}/files/**", files.get_task_file),
    ("HEAD", "jobs/{job}/tasks/{task}/files/**", files.get_task_file),
    ("DELETE", "jobs/{job}/tasks/{task}/files/**", files.delete_task_file),
)
for _method, _template, _handler in _TABLE:
    ROUTES.add(_method, _template, _handler)


def error_renderer(batch_url: str) -> Callable[[ServiceError], Response]:
    """Errors raised before a request reaches its handler (fault rules) name the service's origin."""
    return lambda error: render_error(error, batch_url)
