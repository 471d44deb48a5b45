#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""batchai-spec's node-side launcher for Azure Batch: Batch AI's node contract, rebuilt from Batch's environment.

The tool uploads this file to the spec's Azure file share (`<share>/.batchai-spec/launcher.py`); the pool mounts
the share at `$AZ_BATCH_NODE_MOUNTS_DIR/<mount>` and Batch runs, inside the job's container:

  launcher.py job     the job's task (the primary node of a multi-instance task). Reads BATCHAI_SPEC_LAUNCH, a
                      JSON object: version 1, tool_type (Batch AI's toolType), settings (that toolkit's Batch AI
                      settings, REST camelCase), node_count, input_directories [{id, path}], output_directories
                      [{id, pathPrefix, pathSuffix}], std_out_err_path_prefix, output_segment, job_preparation
                      (a command line or null), secrets_file (a JSON object {NAME: value} on the share, or null).
                      Sets the AZ_BATCHAI_* variables, creates the stdouterr and output directories
                      (`<prefix>/<output_segment>/stdouterr`, `.../outputs[/<pathSuffix>]`), runs the job
                      preparation (output in stdouterr/stdout-job_prep.txt, stderr-job_prep.txt), then the
                      toolkit's command, whose output goes both to this process's stdout/stderr (the task's
                      stdout.txt and stderr.txt) and to stdouterr/stdout.txt and stderr.txt; execution.log says
                      what ran. Exits with the command's exit code (128 + N when signal N ended it).
  launcher.py worker  the coordination command of a multi-instance task, on every node: prepares the node (its
                      directories, the MPI host file, the job preparation, output in stdout-job_prep-<i>.txt); on
                      the other nodes of a per-node toolkit (pytorch, tensorflow, caffe2) it starts that node's
                      process (rank) in the background.
  launcher.py setup   the pool's start task (Batch AI's setup task). Reads BATCHAI_SPEC_SETUP: version 1,
                      command_line, std_out_err_path_prefix, output_segment, secrets_file. Runs the command line
                      through bash with AZ_BATCHAI_MOUNT_ROOT, AZ_BATCHAI_NUM_GPUS and the secrets, its output
                      teed to `<prefix>/<output_segment>/stdout-<node id>.txt` and `stderr-<node id>.txt`.

Several nodes (node_count > 1: one multi-instance task, `worker` its coordination command on every node, `job` its
command on the primary). The nodes are AZ_BATCH_HOST_LIST with the primary (AZ_BATCH_MASTER_NODE) first; node i
is rank i (AZ_BATCHAI_TASK_INDEX). A node finds its own index by its address: BATCHAI_EMULATOR_NODE_ADDRESS where
the emulator sets it (its nodes share one machine's interfaces), else the addresses its host name resolves to and
the source address of a route to the primary. PyTorch gets RANK, WORLD_SIZE, LOCAL_RANK (0), MASTER_ADDR,
MASTER_PORT and AZ_BATCHAI_PYTORCH_INIT_METHOD `tcp://MASTER_ADDR:MASTER_PORT` (the port: `rendezvous_port`), and
AZ_BATCHAI_PYTORCH_BACKEND when the settings name a communicationBackend. A per-node toolkit's output is
stdout-<i>.txt / stderr-<i>.txt in stdouterr (TensorFlow: stdout-wk-<i>.txt), rank 0's also in the task's files.
MPI toolkits (custommpi, horovod, and any toolkit with processCount > 1) run `mpirun --hostfile
$AZ_BATCHAI_MPI_HOST_FILE -np N ...` on the primary (a custommpi command line calls mpirun itself), one host file
line per node, the primary's first, those that are this machine as one `localhost` line; as root, with
OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM) set (Batch runs the task as an admin user; command lines that call mpirun do not
say --allow-run-as-root).

Every rank fails the job, not only the primary's (Batch completes a multi-instance task when its command ends and
does not track what the coordination command started). Rank i > 0 runs under a small `sh` wrapper that writes its
exit status to `<std_out_err_path_prefix>/<output_segment>/.ranks/<i>.exit` once it ended (the share: the one place
all nodes see; beside stdouterr, so never listed as output). While rank 0 runs, the primary polls these records;
a non-zero one stops rank 0 (SIGTERM to its process group, SIGKILL after STOP_GRACE_S) and the job ends with that
rank's exit code, after a line on stderr naming the rank, its node and the end of its stderr file. When rank 0
fails, its own exit code wins. When it succeeds, the primary waits for every other rank (the job's max wall clock
time bounds the wait) and fails with the first failure. execution.log says how each rank ended.

Secrets reach the processes' environment only: no value is written to any file or stream by this launcher (a
command line that names one through `$NAME` is logged with `***` in its place). SIGTERM, SIGINT and SIGHUP are
passed on to the running command's process group. A description that is missing or wrong ends the launcher with
one line on stderr and exit code 2.

It runs in old images too: the standard library only, and Python 3.5 syntax (no f-strings, no annotations).
"""

import errno
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

VERSION = 1
LAUNCH_VARIABLE = "BATCHAI_SPEC_LAUNCH"
SETUP_VARIABLE = "BATCHAI_SPEC_SETUP"
TOOL_TYPES = ("cntk", "pytorch", "tensorflow", "caffe", "caffe2", "chainer", "horovod", "custommpi", "custom")
PER_TASK_TOOLKITS = ("pytorch", "tensorflow", "caffe2")
PYTHON_TOOLKITS = ("pytorch", "tensorflow", "caffe2", "chainer", "horovod")
# The emulator's stand-in for a node's own interface address (its nodes are all one machine); never set on Batch.
NODE_ADDRESS_VARIABLE = "BATCHAI_EMULATOR_NODE_ADDRESS"
# torch.distributed's rendezvous port on the primary (see rendezvous_port): below Linux's ephemeral port range
# (32768-60999), so no outgoing connection's local port holds it, and above the ports services commonly use.
RENDEZVOUS_PORTS = (20000, 29799)  # and below 29876-29877, the Batch node agent's
STDOUTERR = "stdouterr"
RANKS = ".ranks"  # the other ranks' exit records, beside stdouterr on the share
OUTPUTS = "outputs"
PREPARED_MARKER = ".job-preparation-done"
# Once the command has ended, how long its output is still copied while processes it left behind hold its pipes.
DRAIN_S = 5.0
EXIT_DESCRIPTION = 2
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126
# The primary polls the other ranks' exit records this often: from the first pause, growing to the last.
POLL_FIRST_S = 0.2
POLL_LAST_S = 2.0
# A rank 0 stopped because another rank failed gets SIGKILL if it outlives SIGTERM by this long.
STOP_GRACE_S = 10.0
# Once rank 0 failed, how long the primary looks for the records of ranks that may have failed just before it.
SETTLE_S = 3.0
TAIL_LINES = 19  # of a failed rank's stderr, shown in the task's stderr under the line that names the rank
PREFIX = "batchai-spec launcher: "
FORWARDED_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")

_REFERENCE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GPU_DEVICE = re.compile(r"^/dev/nvidia[0-9]+$")


class Problem(Exception):
    """The launch description (or the node) is not what the launcher needs: exit code 2."""


class Unrunnable(Exception):
    """The command cannot start here (a program or mpirun that the image lacks)."""

    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------------------------------- small things


def say(message):
    """One line on the launcher's stderr (the task's stderr.txt)."""
    try:
        sys.stderr.write(PREFIX + message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def expand(text, env):
    """Replace `$NAME` / `${NAME}` for names the node defines; leave anything else as written."""
    def replace(match):
        return env.get(match.group(1) or match.group(2), match.group(0))
    return _REFERENCE.sub(replace, text)


def utc_now():
    moment = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + ".%03dZ" % int((moment % 1) * 1000)


def makedirs(path):
    if not os.path.isdir(path):
        os.makedirs(path, exist_ok=True)


def shell(env):
    return shutil.which("bash", path=env.get("PATH")) or "/bin/sh"


def quoted(argv):
    return " ".join(shlex.quote(part) for part in argv)


def exit_status(returncode):
    """A shell's way of reporting an end: the code, or 128 + N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


class Redactor(object):
    """Replaces every secret value with `***` in what the launcher writes."""

    def __init__(self, secrets):
        self.values = sorted((value for value in secrets.values() if value), key=len, reverse=True)

    def __call__(self, text):
        for value in self.values:
            text = text.replace(value, "***")
        return text


class ExecutionLog(object):
    """execution.log in stdouterr: the launcher's own account of the run, one UTC-stamped line per event."""

    def __init__(self, path, redact):
        self.path = path
        self.redact = redact

    def write(self, message):
        if self.path is None:
            return
        line = "%s %s\n" % (utc_now(), self.redact(message))
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
        except OSError as error:
            say("cannot write %s: %s" % (self.path, error.strerror or error))


# --------------------------------------------------------------------------------------------------- descriptions


def load_description(environ, variable):
    text = environ.get(variable)
    if text is None or not text.strip():
        raise Problem("the environment variable %s is not set: it carries the launch description" % variable)
    try:
        value = json.loads(text)
    except ValueError as error:
        raise Problem("%s is not valid JSON (%s)" % (variable, error))
    if not isinstance(value, dict):
        raise Problem("%s must be a JSON object" % variable)
    version = value.get("version")
    if version != VERSION or isinstance(version, bool):
        raise Problem("%s has version %s; this launcher knows version %d (upload the tool's launcher again)"
                      % (variable, json.dumps(version), VERSION))
    return value


def field(description, variable, name, kinds, required=True):
    """description[name], checked to be one of `kinds` (None allows null or absence unless `required`)."""
    if name not in description or description[name] is None:
        if required:
            raise Problem("%s lacks %s" % (variable, name))
        return None
    value = description[name]
    if isinstance(value, bool) and bool not in kinds:
        raise Problem("%s: %s has the wrong type" % (variable, name))
    if not isinstance(value, kinds):
        raise Problem("%s: %s has the wrong type" % (variable, name))
    return value


def checked_segment(variable, segment):
    parts = segment.split("/")
    if not segment or segment.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise Problem("%s: output_segment must be a relative path without empty, . or .. parts" % variable)
    return segment


def parse_launch(description):
    variable = LAUNCH_VARIABLE
    tool_type = field(description, variable, "tool_type", (str,))
    if tool_type not in TOOL_TYPES:
        raise Problem("%s: tool_type %s is not one of %s" % (variable, json.dumps(tool_type), ", ".join(TOOL_TYPES)))
    settings = field(description, variable, "settings", (dict,))
    node_count = field(description, variable, "node_count", (int,))
    if node_count < 1:
        raise Problem("%s: node_count must be at least 1" % variable)
    inputs = []
    for item in field(description, variable, "input_directories", (list,), required=False) or []:
        if not isinstance(item, dict):
            raise Problem("%s: input_directories holds something that is not an object" % variable)
        inputs.append((directory_id(variable, item), field(item, variable + " input directory", "path", (str,))))
    outputs = []
    for item in field(description, variable, "output_directories", (list,), required=False) or []:
        if not isinstance(item, dict):
            raise Problem("%s: output_directories holds something that is not an object" % variable)
        what = variable + " output directory"
        outputs.append((directory_id(variable, item), field(item, what, "pathPrefix", (str,)),
                        field(item, what, "pathSuffix", (str,), required=False)))
    launch = {
        "tool_type": tool_type,
        "settings": settings,
        "node_count": node_count,
        "inputs": inputs,
        "outputs": outputs,
        "prefix": field(description, variable, "std_out_err_path_prefix", (str,)),
        "segment": checked_segment(variable, field(description, variable, "output_segment", (str,))),
        "preparation": field(description, variable, "job_preparation", (str,), required=False),
        "secrets_file": field(description, variable, "secrets_file", (str,), required=False),
    }
    check_settings(tool_type, settings)
    return launch


def directory_id(variable, item):
    identifier = item.get("id")
    if not isinstance(identifier, str) or not _NAME.match(identifier):
        raise Problem("%s: a directory id must be a name of letters, digits and _ (%s)"
                      % (variable, json.dumps(identifier)))
    return identifier


def check_settings(tool_type, settings):
    what = "%s settings of the %s toolkit" % (LAUNCH_VARIABLE, tool_type)
    for name in ("pythonScriptFilePath", "pythonInterpreterPath", "commandLineArgs", "configFilePath",
                 "commandLine", "masterCommandLineArgs", "workerCommandLineArgs", "parameterServerCommandLineArgs",
                 "communicationBackend"):
        field(settings, what, name, (str,), required=False)
    processes = field(settings, what, "processCount", (int,), required=False)
    if processes is not None and processes < 1:
        raise Problem("%s: processCount must be at least 1" % what)
    if tool_type in PYTHON_TOOLKITS:
        field(settings, what, "pythonScriptFilePath", (str,))
    elif tool_type in ("cntk", "caffe"):
        if not settings.get("pythonScriptFilePath") and not settings.get("configFilePath"):
            raise Problem("%s: one of pythonScriptFilePath and configFilePath is needed" % what)
    elif tool_type == "custommpi":
        field(settings, what, "commandLine", (str,))


def parse_setup(description):
    variable = SETUP_VARIABLE
    return {
        "command_line": field(description, variable, "command_line", (str,)),
        "prefix": field(description, variable, "std_out_err_path_prefix", (str,)),
        "segment": checked_segment(variable, field(description, variable, "output_segment", (str,))),
        "secrets_file": field(description, variable, "secrets_file", (str,), required=False),
    }


def read_secrets(path):
    """The secrets file: a JSON object of names and values. Errors name the file, never its content."""
    if path is None:
        return {}
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise Problem("the secrets file %s cannot be read: %s" % (path, error.strerror or error))
    except ValueError:
        raise Problem("the secrets file %s is not UTF-8 text" % path)
    try:
        secrets = json.loads(text)
    except ValueError:
        secrets = None
    if not isinstance(secrets, dict):
        raise Problem("the secrets file %s is not a JSON object of names and values" % path)
    for name in sorted(secrets):
        if not _NAME.match(name) or not isinstance(secrets[name], str):
            raise Problem("the secrets file %s: every name must be a variable name and every value a string" % path)
    return secrets


# --------------------------------------------------------------------------------------------------- the node


def mounts_dir(environ):
    mounts = environ.get("AZ_BATCH_NODE_MOUNTS_DIR")
    if not mounts:
        raise Problem("AZ_BATCH_NODE_MOUNTS_DIR is not set: the launcher runs as an Azure Batch task")
    return mounts


def gpu_count():
    """The GPUs this node (container) sees: /dev/nvidiaN devices, else `nvidia-smi -L` lines, else 0."""
    devices = [path for path in glob.glob("/dev/nvidia*") if _GPU_DEVICE.match(path)]
    if devices:
        return len(devices)
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        listing = subprocess.check_output([smi, "-L"], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 0
    return len([line for line in listing.decode("utf-8", "replace").splitlines() if line.startswith("GPU ")])


def hosts_of(environ):
    return [host.strip() for host in environ.get("AZ_BATCH_HOST_LIST", "").split(",") if host.strip()]


def is_master(environ):
    return environ.get("AZ_BATCH_IS_CURRENT_NODE_MASTER", "true").lower() != "false"


def is_local_address(host):
    """Whether `host` is an address of this machine: a socket binds to it (on Linux, all of 127.0.0.0/8)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind((host, 0))
        return True
    except (OSError, ValueError, OverflowError):
        return False
    finally:
        probe.close()


def ordered_hosts(environ):
    """AZ_BATCH_HOST_LIST with the primary (AZ_BATCH_MASTER_NODE) first, whatever order Batch lists the nodes in:
    node 0, rank 0 and the MPI host file's first line are the primary's."""
    hosts = hosts_of(environ)
    master = environ.get("AZ_BATCH_MASTER_NODE", "").rsplit(":", 1)[0]
    if master not in hosts:
        return hosts
    return [master] + [host for host in hosts if host != master]


def own_addresses(environ, master):
    """This node's addresses. The emulator names its node's (BATCHAI_EMULATOR_NODE_ADDRESS): its nodes share one
    machine's interfaces. A Batch node: what its host name resolves to, and the source address of its route to the
    primary `master` (a UDP connect sends nothing; the kernel picks the address)."""
    emulated = environ.get(NODE_ADDRESS_VARIABLE)
    if emulated:
        return [emulated]
    found = []
    try:
        found.extend(info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None))
    except (OSError, UnicodeError):
        pass
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((master, 9))
        found.append(probe.getsockname()[0])
    except (OSError, ValueError, OverflowError):
        pass
    finally:
        probe.close()
    return found


def node_index(hosts, addresses, master):
    """This node's index in `hosts` (ordered_hosts): 0 on the primary (`master`: AZ_BATCH_IS_CURRENT_NODE_MASTER),
    else the other entry that is one of this node's `addresses`."""
    if master:
        return 0
    for index, host in enumerate(hosts):
        if index > 0 and host in addresses:
            return index
    raise Problem("cannot tell which node of %s this one is (its addresses: %s)"
                  % (",".join(hosts), ", ".join(addresses) or "none found"))


def rendezvous_port(environ, segment):
    """The port torch.distributed meets on at the primary: the same on every node of the task, and different for
    other jobs whose primaries share the machine (a fixed port collides there: the emulator's nodes are all one
    machine, and its concurrently running jobs meet on it at once). Port 6000 of AZ_BATCH_MASTER_NODE is Batch's
    own. Derived from the job, the task and the run's output segment (unique per job run); not from
    AZ_BATCH_TASK_SHARED_DIR, which is one path on every Batch node but differs per node on the emulator."""
    key = "\n".join((environ.get("AZ_BATCH_JOB_ID", ""), environ.get("AZ_BATCH_TASK_ID", ""), segment))
    low, high = RENDEZVOUS_PORTS
    return low + int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % (high - low + 1)


def checked_hosts(environ, launch):
    """The task's nodes (ordered_hosts): as many as the job's node_count."""
    hosts = ordered_hosts(environ)
    if launch["node_count"] > 1 and len(hosts) != launch["node_count"]:
        raise Problem("node_count is %d but the task runs on %d node(s) (AZ_BATCH_HOST_LIST): the job's task"
                      " must be a multi-instance task with numberOfInstances = node_count"
                      % (launch["node_count"], len(hosts) or 1))
    return hosts


class Node(object):
    """Where the job lives on this node, and the AZ_BATCHAI_* variables of the task with index `index`."""

    def __init__(self, environ, launch, hosts, index, gpus):
        self.environ = environ
        self.launch = launch
        self.hosts = hosts
        self.index = index
        self.gpus = gpus
        self.mounts = mounts_dir(environ)
        working = environ.get("AZ_BATCH_TASK_WORKING_DIR") or os.getcwd()
        local = os.path.join(working, "batchai")
        run = launch["segment"].rstrip("/").split("/")[-1]
        self.jobs_dir = os.path.join(local, "jobs")
        self.job_temp = os.path.join(self.jobs_dir, run)
        self.job_mount_root = os.path.join(local, "mounts")
        self.shared_temp = environ.get("AZ_BATCH_TASK_SHARED_DIR") or os.path.join(self.job_temp, "shared")
        self.host_file = os.path.join(self.job_temp, "hostfile")
        self.working = working

    def host_file_text(self):
        """One line per node, `slots` its GPUs (at least 1, enough for processCount). The nodes that are this
        machine share one `localhost` line: mpirun starts those ranks itself rather than through ssh (on a Batch
        node, the primary itself; on the emulator, every node: PRRTE started over ssh on its own machine hangs at
        exit now and then)."""
        settings = self.launch["settings"]
        processes = settings.get("processCount") or 1
        nodes = max(len(self.hosts), 1)
        slots = max(self.gpus, 1, -(-processes // nodes))
        if self.launch["node_count"] == 1:
            return "localhost slots=%d\n" % slots
        local = [host for host in self.hosts if is_local_address(host)]
        lines = []
        for host in self.hosts:
            if host not in local:
                lines.append("%s slots=%d\n" % (host, slots))
            elif host == local[0]:
                lines.append("localhost slots=%d\n" % (slots * len(local)))
        return "".join(lines)

    def environment(self, secrets):
        launch = self.launch
        env = dict(self.environ)
        env.update(secrets)
        env.update({
            "AZ_BATCHAI_MOUNT_ROOT": self.mounts,
            "AZ_BATCHAI_JOB_MOUNT_ROOT": self.job_mount_root,
            "AZ_BATCHAI_JOB_TEMP_DIR": self.jobs_dir,
            "AZ_BATCHAI_JOB_TEMP": self.job_temp,
            "AZ_BATCHAI_SHARED_JOB_TEMP": self.shared_temp,
            "AZ_BATCHAI_MPI_HOST_FILE": self.host_file,
            "AZ_BATCHAI_NUM_GPUS": str(self.gpus),
            "AZ_BATCHAI_TASK_INDEX": str(self.index),
            # Job output must reach stdout.txt while the job runs (the tool tails it).
            "PYTHONUNBUFFERED": "1",
        })
        if launch["tool_type"] == "pytorch":
            own = {"RANK": str(self.index), "WORLD_SIZE": str(launch["node_count"]), "LOCAL_RANK": "0"}
            if launch["node_count"] == 1:
                env["AZ_BATCHAI_PYTORCH_INIT_METHOD"] = "file://%s/pytorch_init" % self.shared_temp
            else:
                port = rendezvous_port(self.environ, launch["segment"])
                own.update(MASTER_ADDR=self.hosts[0], MASTER_PORT=str(port))
                env["AZ_BATCHAI_PYTORCH_INIT_METHOD"] = "tcp://%s:%d" % (self.hosts[0], port)
            for name, value in own.items():
                env.setdefault(name, value)  # torch.distributed's names, not Batch AI's: a job's own variable wins
            if launch["settings"].get("communicationBackend"):
                env["AZ_BATCHAI_PYTORCH_BACKEND"] = launch["settings"]["communicationBackend"].lower()
        if uses_mpi(launch) and hasattr(os, "geteuid") and os.geteuid() == 0:
            # Open MPI refuses root unless told; Batch runs the job's task as an admin user (root), and command
            # lines that call mpirun themselves (custommpi) do not say --allow-run-as-root.
            env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        env["AZ_BATCHAI_STDOUTERR_DIR"] = os.path.join(expand(launch["prefix"], env), launch["segment"], STDOUTERR)
        for identifier, path in launch["inputs"]:
            env["AZ_BATCHAI_INPUT_" + identifier] = expand(path, env)
        for identifier, prefix, suffix in launch["outputs"]:
            path = os.path.join(expand(prefix, env), launch["segment"], OUTPUTS)
            env["AZ_BATCHAI_OUTPUT_" + identifier] = os.path.join(path, suffix) if suffix else path
        return env

    def prepare(self, env):
        """The directories Batch AI created, and the MPI host file."""
        for path in (self.job_temp, self.job_mount_root, self.shared_temp, env["AZ_BATCHAI_STDOUTERR_DIR"]):
            makedirs(path)
        if self.launch["node_count"] > 1 and self.launch["tool_type"] in PER_TASK_TOOLKITS:
            makedirs(ranks_dir(env))
        for identifier, _, _ in self.launch["outputs"]:
            makedirs(env["AZ_BATCHAI_OUTPUT_" + identifier])
        with open(self.host_file, "w", encoding="utf-8") as handle:
            handle.write(self.host_file_text())


# --------------------------------------------------------------------------------------------------- the toolkits


def toolkit_argv(launch, env, index, notes):
    """What this node runs (as the emulator's Batch AI decided it, batchai/toolkits.py)."""
    tool_type, settings = launch["tool_type"], launch["settings"]
    if tool_type in PER_TASK_TOOLKITS:
        if settings.get("processCount") not in (None, launch["node_count"]):
            notes.append("processCount %d is not used: %s runs one process per node (%d)"
                         % (settings["processCount"], tool_type, launch["node_count"]))
        if tool_type == "tensorflow":
            arguments = settings.get("masterCommandLineArgs") if index == 0 else settings.get("workerCommandLineArgs")
        else:
            arguments = settings.get("commandLineArgs")
        return python_argv(settings, env, notes) + split_args(arguments, env)
    if tool_type == "custom":
        return [shell(env), "-c", settings.get("commandLine") or "true"]
    if tool_type == "custommpi":
        mpirun(env, notes)  # the command line calls mpirun itself
        return [shell(env), "-c", settings["commandLine"]]
    if settings.get("pythonScriptFilePath"):
        program = python_argv(settings, env, notes) + split_args(settings.get("commandLineArgs"), env)
    elif tool_type == "cntk":
        program = (["cntk", "configFile=" + expand(settings["configFilePath"], env)]
                   + split_args(settings.get("commandLineArgs"), env))
    else:  # caffe with a solver file
        program = (["caffe", "train", "--solver=" + expand(settings["configFilePath"], env)]
                   + split_args(settings.get("commandLineArgs"), env))
    if uses_mpi(launch):
        command = [mpirun(env, notes), "--hostfile", env["AZ_BATCHAI_MPI_HOST_FILE"], "-np",
                   str(settings.get("processCount") or 1)]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-run-as-root")  # OpenMPI refuses root otherwise; Batch AI ran jobs as root
        return command + program
    return program


def uses_mpi(launch):
    """Whether the job's processes start through mpirun: the MPI toolkits', and a toolkit's with several processes
    (the per-node toolkits start one process on each node themselves)."""
    tool_type = launch["tool_type"]
    if tool_type in ("custommpi", "horovod"):
        return True
    if tool_type in PER_TASK_TOOLKITS or tool_type == "custom":
        return False
    return (launch["settings"].get("processCount") or 1) > 1


def python_argv(settings, env, notes):
    interpreter = sys.executable or "python3"
    asked = settings.get("pythonInterpreterPath")
    if asked:
        found = shutil.which(expand(asked, env), path=env.get("PATH"))
        if found:
            interpreter = found
        else:
            notes.append("pythonInterpreterPath %s does not exist on this node; using %s" % (asked, interpreter))
    return [interpreter, expand(settings["pythonScriptFilePath"], env)]


def split_args(text, env):
    if not text:
        return []
    try:
        return shlex.split(expand(text, env))
    except ValueError as error:
        raise Unrunnable(EXIT_DESCRIPTION, "the command line arguments cannot be split (%s)" % error)


def mpirun(env, notes):
    found = shutil.which("mpirun", path=env.get("PATH"))
    if not found:
        raise Unrunnable(EXIT_NOT_FOUND,
                         "this job needs MPI (mpirun) to start its processes, and mpirun is not on the node's PATH."
                         " Use a container image with OpenMPI, or run the job with one process.")
    version = ""
    try:
        text = subprocess.check_output([found, "--version"], stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                       timeout=30)
        version = next((line.strip() for line in text.decode("utf-8", "replace").splitlines() if line.strip()), "")
    except (OSError, subprocess.SubprocessError):
        pass
    notes.append("MPI: %s%s" % (found, " (%s)" % version if version else ""))
    return found


# --------------------------------------------------------------------------------------------------- processes


class Runner(object):
    """Runs one command at a time in a process group of its own, passing on the signals the launcher gets."""

    def __init__(self, log):
        self.log = log
        self.process = None
        self.stopped_by = None
        for name in FORWARDED_SIGNALS:
            number = getattr(signal, name, None)
            if number is not None:
                signal.signal(number, self._on_signal)

    def _on_signal(self, number, frame):
        if self.stopped_by is None:
            self.stopped_by = number
        self._signal_group(number)

    def _signal_group(self, number):
        process = self.process
        if process is not None and process.returncode is None:
            try:
                os.killpg(process.pid, number)
            except OSError:
                pass

    def run(self, argv, env, cwd, stdout_path, stderr_path, tee, redact, watch=None):
        """The command's exit status; its output appended to the two files (and to the launcher's own streams
        when `tee`). `watch`: see _wait."""
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        out_file = open(stdout_path, "ab")
        err_file = open(stderr_path, "ab")
        try:
            try:
                process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
            except OSError as error:
                code = EXIT_NOT_FOUND if error.errno == errno.ENOENT else EXIT_NOT_EXECUTABLE
                message = redact("cannot run %s: %s" % (argv[0], error.strerror or error))
                err_file.write((message + "\n").encode("utf-8"))
                err_file.flush()
                say(message)
                self.log.write(message)
                return code
            self.process = process
            if self.stopped_by is not None:  # a signal came while the process started
                self._on_signal(self.stopped_by, None)
            self.log.write("Started process %d (its own process group)" % process.pid)
            pumps = [
                Pump(process.stdout, [out_file] + ([standard_stream(sys.stdout)] if tee else [])),
                Pump(process.stderr, [err_file] + ([standard_stream(sys.stderr)] if tee else [])),
            ]
            self._wait(watch)
            deadline = time.time() + DRAIN_S
            for pump in pumps:
                pump.thread.join(max(deadline - time.time(), 0))
            if any(pump.thread.is_alive() for pump in pumps):
                self.log.write("Processes the command left running still hold its output; stopped copying it")
            if self.stopped_by is not None:
                self.log.write("Signal %d was passed on to process group %d" % (self.stopped_by, process.pid))
            return exit_status(process.returncode)
        finally:
            self.process = None
            out_file.close()
            err_file.close()

    def _wait(self, watch):
        """Until the command ends. With `watch` (a function that says whether the command must stop), call it
        meanwhile at a bounded backoff; once it says so, SIGTERM the command's process group, SIGKILL after
        STOP_GRACE_S."""
        pause, kill_at = POLL_FIRST_S, None
        while True:
            try:
                self.process.wait(timeout=pause if watch is not None else None)
                return
            except subprocess.TimeoutExpired:
                pass
            pause = min(pause * 1.5, POLL_LAST_S)
            if kill_at is None:
                if watch():
                    self.log.write("Stopping process group %d (SIGTERM, SIGKILL %ds later)"
                                   % (self.process.pid, STOP_GRACE_S))
                    self._signal_group(signal.SIGTERM)
                    kill_at = time.time() + STOP_GRACE_S
            elif time.time() > kill_at:
                self._signal_group(signal.SIGKILL)
                kill_at = float("inf")


def standard_stream(stream):
    return getattr(stream, "buffer", None) or stream


class Pump(object):
    """Copies a pipe to its sinks as the bytes come."""

    def __init__(self, source, sinks):
        self.source = source
        self.sinks = sinks
        self.thread = threading.Thread(target=self._copy)
        self.thread.daemon = True
        self.thread.start()

    def _copy(self):
        descriptor = self.source.fileno()
        while True:
            try:
                chunk = os.read(descriptor, 65536)
            except OSError as error:
                if error.errno == errno.EINTR:
                    continue
                break
            if not chunk:
                break
            for sink in self.sinks:
                try:
                    sink.write(chunk)
                    sink.flush()
                except (OSError, ValueError, TypeError):
                    pass


# --------------------------------------------------------------------------------------------------- the ranks


def ranks_dir(env):
    """Where the ranks' exit records are: `.ranks` beside stdouterr, on the share every node mounts."""
    return os.path.join(os.path.dirname(env["AZ_BATCHAI_STDOUTERR_DIR"]), RANKS)


def rank_record(env, index):
    return os.path.join(ranks_dir(env), "%d.exit" % index)


def read_record(path):
    """A rank's exit status from its record, None while there is none."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def recorded_argv(record, argv):
    """`argv` under an `sh` wrapper that writes its exit status (128 + N for signal N) to `record` once it ended:
    to a temporary file first and renamed, so that no one reads half a record."""
    script = 'r=$1; shift; "$@"; c=$?; echo "$c" > "$r.tmp" && mv -f "$r.tmp" "$r"; exit "$c"'
    return ["/bin/sh", "-c", script, "rank", record] + argv


def tail(path, count=TAIL_LINES):
    """The last `count` lines of a file (of its last 64 KiB), [] when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(handle.tell() - 65536, 0))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-count:]


class Ranks(object):
    """The primary's view of ranks 1..N-1 of a per-node toolkit, through their exit records (recorded_argv).

    When several ranks fail, the first to fail is the cause (a rank that dies breaks its connections, and the
    others fail at their next collective a moment later), as the emulator's Batch AI decides: the records are
    ordered by their modification times, which one clock gives (the share's), rank 0's own record included."""

    def __init__(self, launch, env, hosts, log, redact):
        self.launch = launch
        self.env = env
        self.hosts = hosts
        self.log = log
        self.redact = redact
        self.pending = list(range(1, len(hosts)))
        self.failures = []  # (when, rank, exit code) of every failure seen

    @property
    def failure(self):
        """(rank, exit code) of the earliest failure seen (on a tie, the lower rank's), or None."""
        return min(self.failures)[1:] if self.failures else None

    def check(self):
        """Read the records that appeared since; whether a rank failed (rank 0 must stop: Runner.run's watch)."""
        for index in list(self.pending):
            path = rank_record(self.env, index)
            code = read_record(path)
            if code is None:
                continue
            self.pending.remove(index)
            self.log.write("Rank %d (node %s) ended with exit code %d" % (index, self.hosts[index], code))
            if code != 0:
                self.failures.append((modified(path), index, code))
        return bool(self.failures)

    def outcome(self, code, runner):
        """The job's exit code, rank 0 having ended with `code`: that of the earliest failure among the ranks
        (rank 0's included); 0 once every rank ended with 0."""
        stopped_rank_0 = bool(self.failures)
        if code != 0 and not stopped_rank_0:
            # Rank 0 failed: on its own, or because another rank died a moment before. The records of ranks that
            # died first are on the share already, or about to be: a short look settles which came first.
            self.failures.append((self.record_rank_0(code), 0, code))
            self.wait(lambda: self.pending, time.time() + SETTLE_S, runner)
        elif not stopped_rank_0 and not self.check() and self.pending:
            self.log.write("Rank 0 succeeded; waiting for rank(s) %s to end" % ", ".join(map(str, self.pending)))
            self.wait(lambda: self.pending and not self.failures, None, runner)
            if runner.stopped_by is not None and not self.failures:
                return 128 + runner.stopped_by
        first = self.failure
        if first is None:
            return code
        for _, index, other in sorted(self.failures):
            if index != first[0] and index != 0:
                self.report(index, other, "also failed")
        if first[0] != 0:
            self.report(first[0], first[1], "failed" if code == 0 or stopped_rank_0 else "failed first")
        return first[1]

    def wait(self, waiting, deadline, runner):
        """Poll the records (bounded backoff) while `waiting()`, until `deadline` (None: no end) or a signal."""
        pause = POLL_FIRST_S
        while waiting() and runner.stopped_by is None and (deadline is None or time.time() < deadline):
            time.sleep(pause)
            pause = min(pause * 1.5, POLL_LAST_S)
            self.check()

    def record_rank_0(self, code):
        """Rank 0's exit record, beside the others' on the share; when it was written (that clock orders them)."""
        path = rank_record(self.env, 0)
        try:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write("%d\n" % code)
        except OSError:
            return time.time()
        return modified(path)

    def report(self, index, code, how):
        """A line on stderr (the task's stderr.txt) naming a failed rank and its node, with its stderr's end."""
        path = os.path.join(self.env["AZ_BATCHAI_STDOUTERR_DIR"], output_names(self.launch, index)[1])
        message = "rank %d on node %s %s with exit code %d" % (index, self.hosts[index], how, code)
        self.log.write(message)
        lines = tail(path)
        say(message + ("; the end of %s:" % path if lines else " (%s is empty)" % path))
        for line in lines:
            say("  " + self.redact(line))


def modified(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return time.time()


# --------------------------------------------------------------------------------------------------- the modes


def run_job(environ, role):
    launch = parse_launch(load_description(environ, LAUNCH_VARIABLE))
    mounts = mounts_dir(environ)
    multi = launch["node_count"] > 1
    if role == "worker" and not multi:
        raise Problem("`worker` is the coordination command of a multi-instance job; this job has one node")
    hosts = checked_hosts(environ, launch)
    index = node_index(hosts, own_addresses(environ, hosts[0]), is_master(environ)) if multi else 0
    secrets_path = None
    if launch["secrets_file"] is not None:
        secrets_path = expand(launch["secrets_file"], dict(environ, AZ_BATCHAI_MOUNT_ROOT=mounts))
    secrets = read_secrets(secrets_path)
    redact = Redactor(secrets)
    node = Node(environ, launch, hosts, index, gpu_count())
    env = node.environment(secrets)
    stdouterr = env["AZ_BATCHAI_STDOUTERR_DIR"]
    try:
        node.prepare(env)
    except OSError as error:
        say(redact("cannot prepare the job's directories: %s" % error))
        return 1
    log = ExecutionLog(os.path.join(stdouterr, "execution.log"), redact)
    runner = Runner(log)
    log.write("batchai-spec launcher (%s) on node %s, task %s of job %s: node %d of %d, %s toolkit"
              % (role, environ.get("AZ_BATCH_NODE_ID", "?"), environ.get("AZ_BATCH_TASK_ID", "?"),
                 environ.get("AZ_BATCH_JOB_ID", "?"), index, launch["node_count"], launch["tool_type"]))
    log.write("Toolkit settings: %s" % json.dumps(launch["settings"], sort_keys=True))
    log.write("GPUs: %d; MPI host file %s: %s" % (node.gpus, node.host_file,
                                                   node.host_file_text().strip().replace("\n", ", ")))
    if secrets:
        log.write("Secrets from %s: %s" % (secrets_path, ", ".join(sorted(secrets))))

    # On several nodes the coordination command (`worker`) runs the preparation, on the primary too.
    marker = os.path.join(node.job_temp, PREPARED_MARKER)
    if launch["preparation"] is not None and not (multi and os.path.exists(marker)):
        suffix = "-%d" % index if multi else ""
        argv = [shell(env), "-c", launch["preparation"]]
        log.write("Job preparation: %s" % quoted(argv))
        code = runner.run(argv, env, node.working, os.path.join(stdouterr, "stdout-job_prep%s.txt" % suffix),
                          os.path.join(stdouterr, "stderr-job_prep%s.txt" % suffix), False, redact)
        log.write("Job preparation ended with exit code %d" % code)
        if code != 0:
            say("the job preparation failed with exit code %d (see %s)"
                % (code, os.path.join(stdouterr, "stderr-job_prep%s.txt" % suffix)))
            return code
        if multi:
            with open(marker, "w") as handle:
                handle.write("0\n")

    per_task = launch["tool_type"] in PER_TASK_TOOLKITS
    if role == "worker":
        if index == 0 or not per_task:
            log.write("Node %d is prepared" % index)
            return 0
        return start_in_background(launch, env, node, index, log, redact)

    notes = []
    try:
        argv = toolkit_argv(launch, env, index, notes)
    except Unrunnable as error:
        for note in notes:
            log.write(note)
        say(error.message)
        log.write(error.message)
        with open(os.path.join(stdouterr, "stderr.txt"), "a", encoding="utf-8") as handle:
            handle.write(PREFIX + error.message + "\n")
        log.write("Job ended with exit code %d" % error.code)
        return error.code
    for note in notes:
        log.write(note)
    stdout_name, stderr_name = output_names(launch, index)
    log.write("Command: %s" % quoted(argv))
    ranks = Ranks(launch, env, hosts, log, redact) if multi and per_task else None
    code = runner.run(argv, env, node.working, os.path.join(stdouterr, stdout_name),
                      os.path.join(stdouterr, stderr_name), True, redact, watch=ranks and ranks.check)
    if ranks is not None:
        log.write("Rank 0 (node %s) ended with exit code %d" % (hosts[0], code))
        code = ranks.outcome(code, runner)
    log.write("Job ended with exit code %d" % code)
    return code


def output_names(launch, index):
    if launch["tool_type"] in PER_TASK_TOOLKITS and launch["node_count"] > 1:
        name = ("stdout-wk-%d.txt" if launch["tool_type"] == "tensorflow" else "stdout-%d.txt") % index
    else:
        name = "stdout.txt"
    return name, name.replace("stdout", "stderr", 1)


def start_in_background(launch, env, node, index, log, redact):
    """A per-node toolkit's process (rank `index`) on a node other than the primary: started under recorded_argv,
    and left running (Batch keeps what the coordination command started until the task ends)."""
    record = rank_record(env, index)
    for stale in (record, record + ".tmp"):  # a record of an earlier try of the task
        try:
            os.remove(stale)
        except OSError as error:
            if error.errno != errno.ENOENT:
                raise
    notes = []
    try:
        argv = toolkit_argv(launch, env, index, notes)
    except Unrunnable as error:
        say(error.message)
        log.write(error.message)
        return error.code
    for note in notes:
        log.write(note)
    stdout_name, stderr_name = output_names(launch, index)
    stdouterr = env["AZ_BATCHAI_STDOUTERR_DIR"]
    with open(os.path.join(stdouterr, stdout_name), "ab") as out_file:
        with open(os.path.join(stdouterr, stderr_name), "ab") as err_file:
            try:
                process = subprocess.Popen(recorded_argv(record, argv), env=env, cwd=node.working,
                                           stdin=subprocess.DEVNULL, stdout=out_file, stderr=err_file,
                                           start_new_session=True, close_fds=True)
            except OSError as error:
                message = redact("cannot run %s: %s" % (argv[0], error.strerror or error))
                say(message)
                log.write(message)
                return EXIT_NOT_FOUND if error.errno == errno.ENOENT else EXIT_NOT_EXECUTABLE
    log.write("Node %d: started %s in the background (process %d); its exit status goes to %s"
              % (index, quoted(argv), process.pid, record))
    return 0


def run_setup(environ):
    setup = parse_setup(load_description(environ, SETUP_VARIABLE))
    mounts = mounts_dir(environ)
    secrets_path = None
    if setup["secrets_file"] is not None:
        secrets_path = expand(setup["secrets_file"], dict(environ, AZ_BATCHAI_MOUNT_ROOT=mounts))
    secrets = read_secrets(secrets_path)
    redact = Redactor(secrets)
    env = dict(environ)
    env.update(secrets)
    env.update({"AZ_BATCHAI_MOUNT_ROOT": mounts, "AZ_BATCHAI_NUM_GPUS": str(gpu_count()), "PYTHONUNBUFFERED": "1"})
    directory = os.path.join(expand(setup["prefix"], env), setup["segment"])
    node_id = environ.get("AZ_BATCH_NODE_ID") or socket.gethostname()
    try:
        makedirs(directory)
    except OSError as error:
        say(redact("cannot create the setup task's log directory: %s" % error))
        return 1
    runner = Runner(ExecutionLog(None, redact))
    working = environ.get("AZ_BATCH_TASK_WORKING_DIR") or os.getcwd()
    return runner.run([shell(env), "-c", setup["command_line"]], env, working,
                      os.path.join(directory, "stdout-%s.txt" % node_id),
                      os.path.join(directory, "stderr-%s.txt" % node_id), True, redact)


def main(argv=None):
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1 or arguments[0] not in ("job", "worker", "setup"):
        say("usage: launcher.py job|worker|setup (the launch description is in %s or %s)"
            % (LAUNCH_VARIABLE, SETUP_VARIABLE))
        return EXIT_DESCRIPTION
    try:
        if arguments[0] == "setup":
            return run_setup(os.environ)
        return run_job(os.environ, arguments[0])
    except Problem as problem:
        say(str(problem))
        return EXIT_DESCRIPTION
    except OSError as error:  # the share or the node's disk failed under the launcher
        say("%s failed: %s" % (arguments[0], error))
        return 1


if __name__ == "__main__":
    sys.exit(main())
