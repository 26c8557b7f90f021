"""The ``tunerail.yaml`` schema: one pydantic model per concern, every field documented.

Unknown keys fail (``extra="forbid"``) so a typo never silently falls back to a default;
errors name the key path and the line in the YAML file. Later steps extend their own
section; the defaults are the safe choice. One module per group of sections (``data``,
``criteria``, ``doctor``, ``train``, ``eval``, ``ops``), the whole config in ``schema``,
reading it in ``load``, the starter file and ``--help`` texts in ``starter``.
"""

from tunerail.config.base import DEFAULT_METRIC, TASK_METRICS, TaskType
from tunerail.config.criteria import BudgetConfig, CriteriaConfig, HumanCriteria
from tunerail.config.data import DataConfig, ModelConfig, ProjectConfig
from tunerail.config.doctor import DoctorConfig, SplitConfig
from tunerail.config.eval import EvalConfig, HostedModel, JudgeConfig, PromptTemplate, ReviewConfig, RubricItem
from tunerail.config.load import load_config
from tunerail.config.ops import MonitorConfig, PipelineConfig, ServeConfig, StoreConfig, TrackingConfig
from tunerail.config.schema import TunerailConfig
from tunerail.config.starter import STARTER_CONFIG, STARTER_EXAMPLES, STARTER_SECTIONS, field_help, starter_config
from tunerail.config.train import LoraConfig, PreferenceConfig, SelectConfig, SweepConfig, TrainConfig

__all__ = [
    "DEFAULT_METRIC",
    "STARTER_CONFIG",
    "STARTER_EXAMPLES",
    "STARTER_SECTIONS",
    "TASK_METRICS",
    "BudgetConfig",
    "CriteriaConfig",
    "DataConfig",
    "DoctorConfig",
    "EvalConfig",
    "HostedModel",
    "HumanCriteria",
    "JudgeConfig",
    "LoraConfig",
    "PreferenceConfig",
    "ModelConfig",
    "MonitorConfig",
    "PipelineConfig",
    "ProjectConfig",
    "PromptTemplate",
    "ReviewConfig",
    "RubricItem",
    "SelectConfig",
    "ServeConfig",
    "SplitConfig",
    "StoreConfig",
    "SweepConfig",
    "TaskType",
    "TrackingConfig",
    "TrainConfig",
    "TunerailConfig",
    "field_help",
    "load_config",
    "starter_config",
]
