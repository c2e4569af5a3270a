import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StudyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STUDY_STATE_UNSPECIFIED: _ClassVar[StudyState]
    STUDY_ACTIVE: _ClassVar[StudyState]
    STUDY_COMPLETED: _ClassVar[StudyState]
    STUDY_STOPPED: _ClassVar[StudyState]
    STUDY_FAILED: _ClassVar[StudyState]

class TrialState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIAL_STATE_UNSPECIFIED: _ClassVar[TrialState]
    TRIAL_PENDING: _ClassVar[TrialState]
    TRIAL_RUNNING: _ClassVar[TrialState]
    TRIAL_SUCCEEDED: _ClassVar[TrialState]
    TRIAL_STOPPED_EARLY: _ClassVar[TrialState]
    TRIAL_FAILED: _ClassVar[TrialState]
    TRIAL_INFEASIBLE: _ClassVar[TrialState]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    CONTINUE: _ClassVar[Decision]
    STOP_STEP: _ClassVar[Decision]
    STOP_TRIAL: _ClassVar[Decision]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_SUCCEEDED: _ClassVar[Outcome]
    OUTCOME_FAILED: _ClassVar[Outcome]
    OUTCOME_INFEASIBLE: _ClassVar[Outcome]
    OUTCOME_RELEASED: _ClassVar[Outcome]
STUDY_STATE_UNSPECIFIED: StudyState
STUDY_ACTIVE: StudyState
STUDY_COMPLETED: StudyState
STUDY_STOPPED: StudyState
STUDY_FAILED: StudyState
TRIAL_STATE_UNSPECIFIED: TrialState
TRIAL_PENDING: TrialState
TRIAL_RUNNING: TrialState
TRIAL_SUCCEEDED: TrialState
TRIAL_STOPPED_EARLY: TrialState
TRIAL_FAILED: TrialState
TRIAL_INFEASIBLE: TrialState
DECISION_UNSPECIFIED: Decision
CONTINUE: Decision
STOP_STEP: Decision
STOP_TRIAL: Decision
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_SUCCEEDED: Outcome
OUTCOME_FAILED: Outcome
OUTCOME_INFEASIBLE: Outcome
OUTCOME_RELEASED: Outcome

class ParameterValue(_message.Message):
    __slots__ = ("float_value", "int_value", "categorical_value")
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    CATEGORICAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    float_value: float
    int_value: int
    categorical_value: str
    def __init__(self, float_value: _Optional[float] = ..., int_value: _Optional[int] = ..., categorical_value: _Optional[str] = ...) -> None: ...

class Measurement(_message.Message):
    __slots__ = ("step", "epoch", "metrics", "attempt", "time")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    step: str
    epoch: int
    metrics: _containers.ScalarMap[str, float]
    attempt: int
    time: _timestamp_pb2.Timestamp
    def __init__(self, step: _Optional[str] = ..., epoch: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., attempt: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Phase(_message.Message):
    __slots__ = ("index", "name", "budget", "trials_created", "trials_finished", "done", "best_trial_id", "space_json")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    TRIALS_CREATED_FIELD_NUMBER: _ClassVar[int]
    TRIALS_FINISHED_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    BEST_TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    SPACE_JSON_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    budget: int
    trials_created: int
    trials_finished: int
    done: bool
    best_trial_id: str
    space_json: str
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., budget: _Optional[int] = ..., trials_created: _Optional[int] = ..., trials_finished: _Optional[int] = ..., done: _Optional[bool] = ..., best_trial_id: _Optional[str] = ..., space_json: _Optional[str] = ...) -> None: ...

class Study(_message.Message):
    __slots__ = ("id", "name", "state", "spec_json", "phases", "current_phase", "message", "create_time", "update_time", "trial_counts")
    class TrialCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PHASE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    TRIAL_COUNTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    state: StudyState
    spec_json: str
    phases: _containers.RepeatedCompositeFieldContainer[Phase]
    current_phase: int
    message: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    trial_counts: _containers.ScalarMap[str, int]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[_Union[StudyState, str]] = ..., spec_json: _Optional[str] = ..., phases: _Optional[_Iterable[_Union[Phase, _Mapping]]] = ..., current_phase: _Optional[int] = ..., message: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trial_counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class Trial(_message.Message):
    __slots__ = ("id", "study_id", "phase", "number", "state", "parameters", "task_json", "attempt", "value", "has_value", "stop_reason", "error", "metrics", "artifacts", "measurements", "worker_id", "create_time", "start_time", "end_time")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ParameterValue, _Mapping]] = ...) -> None: ...
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ArtifactsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    TASK_JSON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    HAS_VALUE_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    study_id: str
    phase: int
    number: int
    state: TrialState
    parameters: _containers.MessageMap[str, ParameterValue]
    task_json: str
    attempt: int
    value: float
    has_value: bool
    stop_reason: str
    error: str
    metrics: _containers.ScalarMap[str, float]
    artifacts: _containers.ScalarMap[str, str]
    measurements: _containers.RepeatedCompositeFieldContainer[Measurement]
    worker_id: str
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., study_id: _Optional[str] = ..., phase: _Optional[int] = ..., number: _Optional[int] = ..., state: _Optional[_Union[TrialState, str]] = ..., parameters: _Optional[_Mapping[str, ParameterValue]] = ..., task_json: _Optional[str] = ..., attempt: _Optional[int] = ..., value: _Optional[float] = ..., has_value: _Optional[bool] = ..., stop_reason: _Optional[str] = ..., error: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., artifacts: _Optional[_Mapping[str, str]] = ..., measurements: _Optional[_Iterable[_Union[Measurement, _Mapping]]] = ..., worker_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Lease(_message.Message):
    __slots__ = ("id", "deadline")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    id: str
    deadline: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateStudyRequest(_message.Message):
    __slots__ = ("spec_json",)
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    spec_json: str
    def __init__(self, spec_json: _Optional[str] = ...) -> None: ...

class CreateStudyResponse(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: Study
    def __init__(self, study: _Optional[_Union[Study, _Mapping]] = ...) -> None: ...

class GetStudyRequest(_message.Message):
    __slots__ = ("study_id",)
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    def __init__(self, study_id: _Optional[str] = ...) -> None: ...

class GetStudyResponse(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: Study
    def __init__(self, study: _Optional[_Union[Study, _Mapping]] = ...) -> None: ...

class ListStudiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListStudiesResponse(_message.Message):
    __slots__ = ("studies",)
    STUDIES_FIELD_NUMBER: _ClassVar[int]
    studies: _containers.RepeatedCompositeFieldContainer[Study]
    def __init__(self, studies: _Optional[_Iterable[_Union[Study, _Mapping]]] = ...) -> None: ...

class StopStudyRequest(_message.Message):
    __slots__ = ("study_id", "reason")
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    reason: str
    def __init__(self, study_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class StopStudyResponse(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: Study
    def __init__(self, study: _Optional[_Union[Study, _Mapping]] = ...) -> None: ...

class LeaseTrialRequest(_message.Message):
    __slots__ = ("worker_id", "study_id", "timeout_seconds", "request_id")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    study_id: str
    timeout_seconds: float
    request_id: str
    def __init__(self, worker_id: _Optional[str] = ..., study_id: _Optional[str] = ..., timeout_seconds: _Optional[float] = ..., request_id: _Optional[str] = ...) -> None: ...

class LeaseTrialResponse(_message.Message):
    __slots__ = ("trial", "lease")
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    trial: Trial
    lease: Lease
    def __init__(self, trial: _Optional[_Union[Trial, _Mapping]] = ..., lease: _Optional[_Union[Lease, _Mapping]] = ...) -> None: ...

class ReportProgressRequest(_message.Message):
    __slots__ = ("trial_id", "lease_id", "step", "epoch", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    trial_id: str
    lease_id: str
    step: str
    epoch: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, trial_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., step: _Optional[str] = ..., epoch: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ReportProgressResponse(_message.Message):
    __slots__ = ("decision", "reason", "lease_deadline")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LEASE_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    reason: str
    lease_deadline: _timestamp_pb2.Timestamp
    def __init__(self, decision: _Optional[_Union[Decision, str]] = ..., reason: _Optional[str] = ..., lease_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CompleteTrialRequest(_message.Message):
    __slots__ = ("trial_id", "lease_id", "outcome", "metrics", "artifacts", "error")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ArtifactsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    trial_id: str
    lease_id: str
    outcome: Outcome
    metrics: _containers.ScalarMap[str, float]
    artifacts: _containers.ScalarMap[str, str]
    error: str
    def __init__(self, trial_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., artifacts: _Optional[_Mapping[str, str]] = ..., error: _Optional[str] = ...) -> None: ...

class CompleteTrialResponse(_message.Message):
    __slots__ = ("trial",)
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    trial: Trial
    def __init__(self, trial: _Optional[_Union[Trial, _Mapping]] = ...) -> None: ...

class GetTrialRequest(_message.Message):
    __slots__ = ("trial_id",)
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    trial_id: str
    def __init__(self, trial_id: _Optional[str] = ...) -> None: ...

class GetTrialResponse(_message.Message):
    __slots__ = ("trial",)
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    trial: Trial
    def __init__(self, trial: _Optional[_Union[Trial, _Mapping]] = ...) -> None: ...

class ListTrialsRequest(_message.Message):
    __slots__ = ("study_id", "phase", "has_phase", "with_measurements")
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    HAS_PHASE_FIELD_NUMBER: _ClassVar[int]
    WITH_MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    phase: int
    has_phase: bool
    with_measurements: bool
    def __init__(self, study_id: _Optional[str] = ..., phase: _Optional[int] = ..., has_phase: _Optional[bool] = ..., with_measurements: _Optional[bool] = ...) -> None: ...

class ListTrialsResponse(_message.Message):
    __slots__ = ("trials",)
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    trials: _containers.RepeatedCompositeFieldContainer[Trial]
    def __init__(self, trials: _Optional[_Iterable[_Union[Trial, _Mapping]]] = ...) -> None: ...

class GetBestTrialRequest(_message.Message):
    __slots__ = ("study_id", "phase", "has_phase")
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    HAS_PHASE_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    phase: int
    has_phase: bool
    def __init__(self, study_id: _Optional[str] = ..., phase: _Optional[int] = ..., has_phase: _Optional[bool] = ...) -> None: ...

class GetBestTrialResponse(_message.Message):
    __slots__ = ("trial",)
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    trial: Trial
    def __init__(self, trial: _Optional[_Union[Trial, _Mapping]] = ...) -> None: ...

class WatchStudyRequest(_message.Message):
    __slots__ = ("study_id",)
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    study_id: str
    def __init__(self, study_id: _Optional[str] = ...) -> None: ...

class WatchStudyResponse(_message.Message):
    __slots__ = ("event", "study", "trial", "best_trial", "time")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    BEST_TRIAL_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    event: str
    study: Study
    trial: Trial
    best_trial: Trial
    time: _timestamp_pb2.Timestamp
    def __init__(self, event: _Optional[str] = ..., study: _Optional[_Union[Study, _Mapping]] = ..., trial: _Optional[_Union[Trial, _Mapping]] = ..., best_trial: _Optional[_Union[Trial, _Mapping]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
