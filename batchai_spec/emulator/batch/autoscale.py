"""Auto-scale formulas: parsing, evaluation against the pool's tasks, and the periodic evaluation (`@on_tick`).

The language is the part of Batch's that generated formulas use (reference; learn.microsoft.com "Create a formula
to automatically scale compute nodes"): `;`-separated assignments `NAME = expression` (`//` comments allowed),
numbers, `+ - * / %`, comparisons, `&& || !`, `cond ? a : b`, parentheses, the functions `min max avg sum count
len ceil floor round abs sqrt lg ln log percentile std time`, the `TimeInterval_*` constants and the node
deallocation keywords (`requeue`, `terminate`, `taskcompletion`, `retaineddata`).

Service-defined variables: `$ActiveTasks`, `$RunningTasks`, `$PendingTasks` (= active + running),
`$SucceededTasks`, `$FailedTasks` and the node metrics (`$CPUPercent`, ...) are *samples*: they must be read with
`.GetSample(count|interval [, percent])` (a vector holding the current value: the emulator keeps no history),
`.GetSamplePercent(...)` (100) or `.Count()`; used bare in arithmetic they are an evaluation error, as on Azure.
Task counts are the tasks (data plane, `batch_tasks.status.state`) of the account's jobs whose
`poolInfo.poolId` is the pool: `active` ones are active, `preparing` and `running` ones running; a multi-instance
task counts once. `$CurrentDedicatedNodes`, `$CurrentLowPriorityNodes`, `$TaskSlotsPerNode` are plain numbers;
`$TargetDedicatedNodes`, `$TargetLowPriorityNodes` (start: the current targets) and `$NodeDeallocationOption`
(start: `requeue`) are what the formula sets.

An evaluation records `autoScaleRun` in the pool's status, ARM spelling: `{"evaluationTime", "results"}` with
results as the service writes them (`$TargetDedicatedNodes=2;$TargetLowPriorityNodes=0;`
`$NodeDeallocationOption=requeue`, then the formula's own variables), or `{"evaluationTime", "error": {"code",
"message"}}`: `AutoScalingFormulaSyntaxError` for a formula that does not parse (a code Batch has),
`AutoScalingFormulaEvaluationError` for one that fails when evaluated (the emulator's name). A failed evaluation
leaves the targets as they were. The formula is evaluated when it is set and then every `evaluationInterval`,
counted in emulated time: one minute of interval is one second at delay scale 1 (`BATCHAI_EMULATOR_DELAY_SCALE`),
never more often than every `_MINIMUM_PERIOD_S`.
"""

from __future__ import annotations

import copy
import math
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

import isodate

from batchai_spec.emulator.batch import store
from batchai_spec.emulator.batch.service import Context, on_tick
from batchai_spec.emulator.batch.store import Pool
from batchai_spec.emulator.batchai.config import Delays
from batchai_spec.emulator.clock import iso8601

SYNTAX_ERROR = "AutoScalingFormulaSyntaxError"
EVALUATION_ERROR = "AutoScalingFormulaEvaluationError"
# Expressions nested deeper than this (parentheses, operators, calls, a long chain of binary operators, all
# counted as the depth of the expression tree) are a syntax error, never a RecursionError.
MAX_FORMULA_DEPTH = 64
MAX_FORMULA_LENGTH = 8192  # AutoScaleFormulaTooLong beyond (Batch's limit)
_MINIMUM_PERIOD_S = 0.25
_EMULATED_SECONDS_PER_MINUTE = 1.0

DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")
TIME_INTERVALS = {
    "TimeInterval_Zero": 0.0, "TimeInterval_100ns": 1e-7, "TimeInterval_Microsecond": 1e-6,
    "TimeInterval_Millisecond": 1e-3, "TimeInterval_Second": 1.0, "TimeInterval_Minute": 60.0,
    "TimeInterval_Hour": 3600.0, "TimeInterval_Day": 86400.0, "TimeInterval_Week": 604800.0,
    "TimeInterval_Year": 31536000.0,
}
TASK_SAMPLES = ("$ActiveTasks", "$RunningTasks", "$PendingTasks", "$SucceededTasks", "$FailedTasks")
METRIC_SAMPLES = ("$CPUPercent", "$WallClockSeconds", "$MemoryBytes", "$DiskBytes", "$DiskReadBytes",
                  "$DiskWriteBytes", "$DiskReadOps", "$DiskWriteOps", "$NetworkInBytes", "$NetworkOutBytes",
                  "$SampleNodeCount", "$UsableNodeCount", "$PreemptedNodeCount")
SETTABLE = ("$TargetDedicatedNodes", "$TargetLowPriorityNodes", "$NodeDeallocationOption")
READ_ONLY = ("$CurrentDedicatedNodes", "$CurrentLowPriorityNodes", "$TaskSlotsPerNode")


class FormulaError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Sample:
    """A service-defined sample variable: read through its methods only."""

    name: str
    value: float


Value = Union[float, list, str, Sample]  # noqa: UP007 - a runtime alias


# ----------------------------------------------------------------------------------------------- parsing

_TOKEN = re.compile(
    r"""(?P<space>\s+|//[^\n]*)
      | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
      | (?P<name>\$?[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:().,;=])""",
    re.VERBOSE,
)


def _tokens(formula: str) -> list[tuple[str, str, int]]:
    tokens, position = [], 0
    while position < len(formula):
        match = _TOKEN.match(formula, position)
        if match is None:
            raise FormulaError(SYNTAX_ERROR, f"Unexpected character {formula[position]!r} at position {position}.")
        kind = match.lastgroup
        if kind != "space":
            tokens.append((kind, match.group(), position))
        position = match.end()
    tokens.append(("end", "", position))
    return tokens


class _Parser:
    """Recursive descent; expressions are tuples: ("num", v), ("var", name), ("call", name, args),
    ("method", target, name, args), ("unary", op, e), ("bin", op, left, right), ("cond", c, a, b)."""

    _LEVELS = (("||",), ("&&",), ("==", "!="), ("<", "<=", ">", ">="), ("+", "-"), ("*", "/", "%"))

    def __init__(self, formula: str):
        self.tokens = _tokens(formula)
        self.index = 0
        self.depth = 0

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_FORMULA_DEPTH:
            kind, text, position = self.peek()
            raise self.error(f"the expression nests deeper than {MAX_FORMULA_DEPTH} levels", position)

    def statements(self) -> list[tuple[str, Any]]:
        result = []
        while self.peek()[0] != "end":
            if self.accept(";"):
                continue
            kind, name, position = self.next()
            if kind != "name":
                raise self.error(f"expected a variable to assign, found {name!r}", position)
            self.expect("=")
            result.append((name, self.expression()))
            if self.peek()[0] != "end":
                self.expect(";")
        if not result:
            raise FormulaError(SYNTAX_ERROR, "The formula assigns nothing.")
        return result

    def expression(self) -> Any:
        self.enter()
        condition = self.binary(0)
        if self.accept("?"):
            then = self.expression()
            self.expect(":")
            condition = ("cond", condition, then, self.expression())
        self.depth -= 1
        return condition

    def binary(self, level: int) -> Any:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        chain = 0
        while self.peek()[1] in self._LEVELS[level] and self.peek()[0] == "op":
            operator = self.next()[1]
            chain += 1  # a left-nested chain: each operator is one more level of the tree evaluated
            self.enter()
            left = ("bin", operator, left, self.binary(level + 1))
        self.depth -= chain
        return left

    def unary(self) -> Any:
        if self.peek()[0] == "op" and self.peek()[1] in ("-", "+", "!"):
            operator = self.next()[1]
            self.enter()
            node = ("unary", operator, self.unary())
            self.depth -= 1
            return node
        return self.postfix()

    def postfix(self) -> Any:
        node = self.primary()
        methods = 0
        while self.accept("."):
            kind, name, position = self.next()
            if kind != "name":
                raise self.error(f"expected a method name, found {name!r}", position)
            methods += 1
            self.enter()  # each method call wraps the target: one more level
            node = ("method", node, name, self.arguments())
        self.depth -= methods
        return node

    def primary(self) -> Any:
        kind, text, position = self.next()
        if kind == "number":
            return ("num", float(text))
        if kind == "name":
            if self.peek()[1] == "(":
                return ("call", text, self.arguments())
            return ("var", text)
        if text == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        raise self.error(f"unexpected {text!r}" if text else "unexpected end of formula", position)

    def arguments(self) -> list[Any]:
        self.expect("(")
        arguments = []
        if not self.accept(")"):
            arguments.append(self.expression())
            while self.accept(","):
                arguments.append(self.expression())
            self.expect(")")
        return arguments

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.index]

    def next(self) -> tuple[str, str, int]:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def accept(self, text: str) -> bool:
        if self.peek()[0] == "op" and self.peek()[1] == text:
            self.next()
            return True
        return False

    def expect(self, text: str) -> None:
        kind, found, position = self.peek()
        if not self.accept(text):
            raise self.error(f"expected {text!r}, found {found!r}" if found else f"expected {text!r} at the end",
                             position)

    @staticmethod
    def error(message: str, position: int) -> FormulaError:
        return FormulaError(SYNTAX_ERROR, f"Syntax error at position {position}: {message}.")


def parse(formula: str) -> list[tuple[str, Any]]:
    """The assignments of a formula; FormulaError(SYNTAX_ERROR) when it does not parse."""
    if len(formula) > MAX_FORMULA_LENGTH:
        raise FormulaError("AutoScaleFormulaTooLong",
                           f"The autoscale formula is longer than {MAX_FORMULA_LENGTH} characters.")
    return _Parser(formula).statements()


# ----------------------------------------------------------------------------------------------- evaluation


@dataclass
class Inputs:
    """What a formula reads: the pool's task counts and nodes, the current targets."""

    active: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    current_dedicated: int = 0
    current_low_priority: int = 0
    target_dedicated: int = 0
    target_low_priority: int = 0
    task_slots_per_node: int = 1
    now: float = 0.0


@dataclass
class Outcome:
    dedicated: int
    low_priority: int
    deallocation_option: str
    results: str


def evaluate_formula(formula: str, inputs: Inputs) -> Outcome:
    """Run the formula; FormulaError for a syntax or evaluation error."""
    statements = parse(formula)
    samples = {
        "$ActiveTasks": inputs.active, "$RunningTasks": inputs.running,
        "$PendingTasks": inputs.active + inputs.running, "$SucceededTasks": inputs.succeeded,
        "$FailedTasks": inputs.failed, "$SampleNodeCount": inputs.current_dedicated + inputs.current_low_priority,
        "$UsableNodeCount": inputs.current_dedicated + inputs.current_low_priority,
    }
    variables: dict[str, Value] = {
        "$TargetDedicatedNodes": float(inputs.target_dedicated),
        "$TargetLowPriorityNodes": float(inputs.target_low_priority),
        "$NodeDeallocationOption": "requeue",
    }
    read_only = {"$CurrentDedicatedNodes": float(inputs.current_dedicated),
                 "$CurrentLowPriorityNodes": float(inputs.current_low_priority),
                 "$TaskSlotsPerNode": float(inputs.task_slots_per_node)}
    own: list[str] = []
    evaluator = _Evaluator(samples, variables, read_only, inputs.now)
    for name, expression in statements:
        if name in samples or name in read_only or name in METRIC_SAMPLES or name in TASK_SAMPLES:
            raise FormulaError(EVALUATION_ERROR, f"{name} is read-only: a formula cannot assign it.")
        value = evaluator.evaluate(expression)
        if name == "$NodeDeallocationOption":
            if not isinstance(value, str):
                raise FormulaError(EVALUATION_ERROR, "$NodeDeallocationOption must be requeue, terminate,"
                                                     " taskcompletion or retaineddata.")
        elif isinstance(value, (str, Sample)):
            raise FormulaError(EVALUATION_ERROR, f"{name} must be a number, not {_show(value)}.")
        variables[name] = value
        if name not in SETTABLE and name not in own:
            own.append(name)
    dedicated = _node_count(variables["$TargetDedicatedNodes"], "$TargetDedicatedNodes")
    low_priority = _node_count(variables["$TargetLowPriorityNodes"], "$TargetLowPriorityNodes")
    option = str(variables["$NodeDeallocationOption"])
    parts = [f"$TargetDedicatedNodes={dedicated}", f"$TargetLowPriorityNodes={low_priority}",
             f"$NodeDeallocationOption={option}"] + [f"{name}={_show(variables[name])}" for name in own]
    return Outcome(dedicated, low_priority, option, ";".join(parts))


def _node_count(value: Value, name: str) -> int:
    number = _scalar(value, name)
    if math.isnan(number) or math.isinf(number):
        raise FormulaError(EVALUATION_ERROR, f"{name} evaluated to {number}, not a node count.")
    return max(0, int(number))


def _show(value: Value) -> str:
    if isinstance(value, Sample):
        return value.name
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _scalar(value: Value, what: str) -> float:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, float):
        return value
    if isinstance(value, Sample):
        raise FormulaError(EVALUATION_ERROR,
                           f"{value.name} is a sample variable: read it with {value.name}.GetSample(...).")
    raise FormulaError(EVALUATION_ERROR, f"{what}: expected a number, found {_show(value)}.")


def _numbers(value: Value, what: str) -> list[float]:
    if isinstance(value, list):
        return value
    return [_scalar(value, what)]


class _Evaluator:
    def __init__(self, samples: dict[str, int], variables: dict[str, Value], read_only: dict[str, float],
                 now: float):
        self.samples = samples
        self.variables = variables
        self.read_only = read_only
        self.now = now

    def evaluate(self, node: Any) -> Value:
        kind = node[0]
        if kind == "num":
            return node[1]
        if kind == "var":
            return self.variable(node[1])
        if kind == "call":
            return self.call(node[1], [self.evaluate(argument) for argument in node[2]])
        if kind == "method":
            return self.method(self.evaluate(node[1]), node[2], [self.evaluate(argument) for argument in node[3]])
        if kind == "unary":
            operand = self.evaluate(node[2])
            if node[1] == "!":
                return 0.0 if _scalar(operand, "!") else 1.0
            return self.elementwise(operand, -1.0 if node[1] == "-" else 1.0, lambda a, b: a * b, node[1])
        if kind == "cond":
            return self.evaluate(node[2]) if _scalar(self.evaluate(node[1]), "condition") else self.evaluate(node[3])
        operator, left = node[1], self.evaluate(node[2])
        if operator == "&&":
            return 1.0 if _scalar(left, "&&") and _scalar(self.evaluate(node[3]), "&&") else 0.0
        if operator == "||":
            return 1.0 if _scalar(left, "||") or _scalar(self.evaluate(node[3]), "||") else 0.0
        right = self.evaluate(node[3])
        if operator in ("==", "!=") and isinstance(left, str) and isinstance(right, str):
            return 1.0 if (left == right) == (operator == "==") else 0.0
        return self.elementwise(left, right, _OPERATORS[operator], operator)

    def variable(self, name: str) -> Value:
        if name in self.variables:
            return self.variables[name]
        if name in self.read_only:
            return self.read_only[name]
        if name in self.samples:
            return Sample(name, float(self.samples[name]))
        if name in METRIC_SAMPLES:
            return Sample(name, 0.0)
        if name in TIME_INTERVALS:
            return TIME_INTERVALS[name]
        if name.lower() in DEALLOCATION_OPTIONS:
            return name.lower()
        raise FormulaError(EVALUATION_ERROR, f"The variable {name} is not defined.")

    def call(self, name: str, arguments: list[Value]) -> Value:
        function = _FUNCTIONS.get(name.lower())
        if function is None:
            raise FormulaError(EVALUATION_ERROR, f"The function {name}() is not defined.")
        if name.lower() == "time":
            return self.now
        try:
            return function(arguments)
        except FormulaError:
            raise
        except (ValueError, ZeroDivisionError, OverflowError, IndexError, TypeError) as error:
            raise FormulaError(EVALUATION_ERROR, f"{name}(): {error}") from None

    def method(self, target: Value, name: str, arguments: list[Value]) -> Value:
        if not isinstance(target, Sample):
            raise FormulaError(EVALUATION_ERROR, f".{name}() applies to sample variables only.")
        lowered = name.lower()
        if lowered in ("getsample", "getsamplepercent", "count", "getsampleperiod", "historybegintime"):
            if lowered == "getsample":
                if not 1 <= len(arguments) <= 2:
                    raise FormulaError(EVALUATION_ERROR, f"{target.name}.GetSample() takes 1 or 2 arguments.")
                for argument in arguments:
                    _scalar(argument, "GetSample")
                return [target.value]
            if lowered == "getsamplepercent":
                return 100.0
            if lowered == "count":
                return 1.0
            return self.now
        raise FormulaError(EVALUATION_ERROR, f"{target.name} has no method {name}().")

    @staticmethod
    def elementwise(left: Value, right: Value, operation: Callable[[float, float], float], operator: str) -> Value:
        if isinstance(left, list) or isinstance(right, list):
            lefts, rights = _numbers(left, operator), _numbers(right, operator)
            if len(lefts) == 1:
                lefts = lefts * len(rights)
            if len(rights) == 1:
                rights = rights * len(lefts)
            if len(lefts) != len(rights):
                raise FormulaError(EVALUATION_ERROR, f"'{operator}' on vectors of different lengths.")
            return [_apply(operation, a, b, operator) for a, b in zip(lefts, rights)]
        return _apply(operation, _scalar(left, operator), _scalar(right, operator), operator)


def _apply(operation: Callable[[float, float], float], left: float, right: float, operator: str) -> float:
    try:
        return float(operation(left, right))
    except ZeroDivisionError:
        raise FormulaError(EVALUATION_ERROR, f"Division by zero in '{operator}'.") from None


def _modulo(left: float, right: float) -> float:
    if right == 0:
        raise ZeroDivisionError
    return math.fmod(left, right)


_OPERATORS: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
    "%": lambda a, b: _modulo(a, b),
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


def _flat(arguments: list[Value]) -> list[float]:
    values: list[float] = []
    for argument in arguments:
        values.extend(_numbers(argument, "argument"))
    if not values:
        raise FormulaError(EVALUATION_ERROR, "a function got no values")
    return values


def _one(arguments: list[Value]) -> float:
    if len(arguments) != 1:
        raise FormulaError(EVALUATION_ERROR, "the function takes one argument")
    return _scalar(arguments[0], "argument")


def _mapped(function: Callable[[float], float]) -> Callable[[list[Value]], Value]:
    def apply(arguments: list[Value]) -> Value:
        if len(arguments) == 1 and isinstance(arguments[0], list):
            return [float(function(value)) for value in arguments[0]]
        return float(function(_one(arguments)))
    return apply


def _percentile(arguments: list[Value]) -> float:
    if len(arguments) != 2:
        raise FormulaError(EVALUATION_ERROR, "percentile(vector, p) takes two arguments")
    values = sorted(_numbers(arguments[0], "percentile"))
    rank = _scalar(arguments[1], "percentile") / 100 * (len(values) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return values[low] + (values[high] - values[low]) * (rank - low)


def _std(arguments: list[Value]) -> float:
    values = _flat(arguments)
    mean = sum(values) / len(values)
    return math.sqrt(sum((value - mean) ** 2 for value in values) / len(values))


_FUNCTIONS: dict[str, Callable[[list[Value]], Value]] = {
    "min": lambda arguments: min(_flat(arguments)),
    "max": lambda arguments: max(_flat(arguments)),
    "avg": lambda arguments: sum(_flat(arguments)) / len(_flat(arguments)),
    "sum": lambda arguments: float(sum(_flat(arguments))),
    "count": lambda arguments: float(len(_flat(arguments))),
    "len": lambda arguments: float(len(_flat(arguments))),
    "ceil": _mapped(math.ceil),
    "floor": _mapped(math.floor),
    "round": _mapped(lambda value: math.floor(value + 0.5)),
    "abs": _mapped(abs),
    "sqrt": _mapped(math.sqrt),
    "lg": _mapped(math.log10),
    "ln": _mapped(math.log),
    "log": lambda arguments: (math.log(_scalar(arguments[0], "log"), _scalar(arguments[1], "log"))
                              if len(arguments) == 2 else math.log2(_one(arguments))),
    "percentile": _percentile,
    "std": _std,
    "time": lambda arguments: 0.0,  # replaced by the evaluator's clock
}


# ----------------------------------------------------------------------------------------------- pools


def is_auto_scale(pool: Pool) -> bool:
    return "autoScale" in (pool.properties.get("scaleSettings") or {})


def task_counts(db: sqlite3.Connection, account: str, pool: str) -> dict[str, int]:
    """Tasks of the account's jobs on `pool`, by data-plane state (`status.state` of batch_tasks; a finished task
    counts as succeeded or failed by `status.executionInfo.result`)."""
    rows = db.execute(
        """SELECT json_extract(t.status, '$.state') AS state,
                  json_extract(t.status, '$.executionInfo.result') AS result, COUNT(*) AS n
           FROM batch_tasks t JOIN batch_jobs j ON j.account = t.account AND j.job_id = t.job_id
           WHERE t.account = ? AND json_extract(j.body, '$.poolInfo.poolId') = ? COLLATE NOCASE
             AND COALESCE(json_extract(j.status, '$.state'), 'active') NOT IN
                 ('completed', 'deleting', 'disabled', 'terminating')
           GROUP BY 1, 2""",
        (account, pool),
    ).fetchall()
    counts = {"active": 0, "running": 0, "succeeded": 0, "failed": 0}
    for row in rows:
        state = (row["state"] or "active").lower()
        if state == "active":
            counts["active"] += row["n"]
        elif state in ("preparing", "running"):
            counts["running"] += row["n"]
        elif state == "completed":
            counts["succeeded" if (row["result"] or "success").lower() == "success" else "failed"] += row["n"]
    return counts


def evaluate(db: sqlite3.Connection, pool: Pool, moment: float, formula: str | None = None) -> dict[str, Any]:
    """Evaluate `formula` (the pool's own by default) against the pool now, changing nothing: the AutoScaleRun in
    ARM spelling, `{"evaluationTime", "results"}` or `{"evaluationTime", "error": {"code", "message"}}` (the data
    plane's evaluateautoscale shows it as `{"timestamp", "results"|"error"}`)."""
    return _run(db, pool, moment, formula)[0]


def _run(db: sqlite3.Connection, pool: Pool, moment: float,
         formula: str | None = None) -> tuple[dict[str, Any], Outcome | None]:
    formula = formula if formula is not None else pool.properties["scaleSettings"]["autoScale"]["formula"]
    counts = task_counts(db, pool.account, pool.name)
    nodes = [node for node in store.list_nodes(db, pool.account, pool.name) if node.state != "leavingpool"]
    dedicated = sum(1 for node in nodes if node.runtime.get("isDedicated", True))
    previous = pool.runtime.get("autoScale") or {}
    inputs = Inputs(
        active=counts["active"], running=counts["running"], succeeded=counts["succeeded"], failed=counts["failed"],
        current_dedicated=dedicated, current_low_priority=len(nodes) - dedicated,
        target_dedicated=int(previous.get("dedicated", 0)), target_low_priority=int(previous.get("lowPriority", 0)),
        task_slots_per_node=int(pool.properties.get("taskSlotsPerNode", 1)), now=moment,
    )
    run: dict[str, Any] = {"evaluationTime": iso8601(moment)}
    try:
        outcome = evaluate_formula(formula, inputs)
    except FormulaError as error:
        run["error"] = {"code": error.code, "message": error.message}
        return run, None
    run["results"] = outcome.results
    return run, outcome


def apply(db: sqlite3.Connection, pool: Pool, moment: float) -> bool:
    """Evaluate the pool's formula and take its targets; True when the targets or the error changed. The caller
    saves the pool."""
    run, outcome = _run(db, pool, moment)
    before = (copy.deepcopy(pool.runtime.get("autoScale")), (pool.status.get("autoScaleRun") or {}).get("error"))
    pool.status["autoScaleRun"] = run
    pool.runtime["autoScaleEvaluatedAt"] = moment
    pool.runtime["autoScaleFormula"] = pool.properties["scaleSettings"]["autoScale"]
    if outcome is not None:
        pool.runtime["autoScale"] = {"dedicated": outcome.dedicated, "lowPriority": outcome.low_priority,
                                     "nodeDeallocationOption": outcome.deallocation_option}
    return (pool.runtime.get("autoScale"), run.get("error")) != before


def refresh(db: sqlite3.Connection, pool: Pool, moment: float) -> None:
    """After a change of the pool's scale settings: evaluate a new or changed formula at once (as Batch does when
    auto-scale is enabled); forget auto-scale state when the pool no longer auto-scales. The caller saves."""
    if not is_auto_scale(pool):
        for name in ("autoScale", "autoScaleEvaluatedAt", "autoScaleFormula"):
            pool.runtime.pop(name, None)
        pool.status.pop("autoScaleRun", None)
        return
    if pool.runtime.get("autoScaleFormula") != pool.properties["scaleSettings"]["autoScale"]:
        apply(db, pool, moment)


def period_s(ctx: Context, pool: Pool) -> float:
    """The evaluation interval in emulated time (see the module docstring)."""
    interval = isodate.parse_duration(pool.properties["scaleSettings"]["autoScale"].get("evaluationInterval", "PT15M"))
    scale = ctx.config.delays.allocation_s / Delays().allocation_s
    return max(_MINIMUM_PERIOD_S, interval.total_seconds() / 60 * _EMULATED_SECONDS_PER_MINUTE * scale)


@on_tick
def evaluate_due(ctx: Context, now: float) -> bool:
    """Evaluate the formulas whose interval has passed; True when a pool's targets changed."""
    changed = False
    for candidate in store.list_pools(ctx.state.connection()):
        if not is_auto_scale(candidate) or candidate.deleting:
            continue
        if now < candidate.runtime.get("autoScaleEvaluatedAt", 0) + period_s(ctx, candidate):
            continue
        with ctx.state.transaction() as db:
            pool = store.get_pool(db, candidate.account, candidate.name)
            if pool is None or not is_auto_scale(pool) or pool.deleting:
                continue
            changed |= apply(db, pool, now)
            store.save_pool(db, pool)
    return changed
