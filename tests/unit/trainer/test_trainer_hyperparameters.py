import pytest
from google.protobuf import struct_pb2

from longtail.models.v1 import trainer_pb2 as T

from trainer import hyperparameters

TASKS = {"stop_sign", "caution_lights"}


def spec(**values) -> T.RunSpec:
    s = struct_pb2.Struct()
    s.update(values)
    return T.RunSpec(model_name="unit", hyperparameters=s)


def test_the_values_every_caller_of_the_project_sends_are_accepted():
    hyperparameters.check(spec(lr=0.001, replay_samples=1200, replay_world="default", batch_size=64, fallback_samples=64, fallback_world="mixed", train_heads="caution_lights", min_auc=0.8), TASKS)
    hyperparameters.check(spec(), TASKS)


@pytest.mark.parametrize(
    "values, named",
    [
        ({"learning_rate": 0.01}, "learning_rate: unknown"),
        ({"lr": 0}, "lr: 0.0 is not a learning rate"),
        ({"lr": "fast"}, "lr: 'fast' is not"),
        ({"lr": float("nan")}, "lr: nan"),
        ({"batch_size": 2.5}, "batch_size: 2.5 is not an integer"),
        ({"replay_samples": -1}, "replay_samples: -1.0"),
        ({"replay_world": "moon"}, "replay_world: 'moon' is not one of default, common"),
        ({"train_heads": "stop_sign, lane"}, "train_heads: not tasks of this run: lane"),
        ({"min_auc": 1.5}, "min_auc: 1.5"),
    ],
)
def test_a_bad_value_or_key_is_refused_with_its_name(values, named):
    with pytest.raises(ValueError, match="spec.hyperparameters: ") as err:
        hyperparameters.check(spec(**values), TASKS)
    assert named in str(err.value)


def test_every_problem_is_named_at_once():
    with pytest.raises(ValueError) as err:
        hyperparameters.check(spec(lr=-1, epochz=3), TASKS)
    assert "epochz: unknown" in str(err.value) and "lr: -1.0" in str(err.value)


def test_values_come_back_in_their_type_and_absent_ones_as_the_default():
    s = spec(batch_size=32, lr=0.002, replay_world="common")
    assert hyperparameters.get(s, "batch_size", 64) == 32 and isinstance(hyperparameters.get(s, "batch_size", 64), int)
    assert hyperparameters.get(s, "lr", 1e-3) == 0.002
    assert hyperparameters.get(s, "replay_world", "default") == "common"
    assert hyperparameters.get(s, "fallback_samples", 800) == 800
