"""The queue gives a crashing image room to be recorded: one death in its batch, ``max_attempts`` alone, one more
delivery to record the ``WorkerCrashedError``, and one to spare for an unrelated transient fault."""

from __future__ import annotations

from cdk_synth import Synth


def test_the_deployed_receive_count_outlasts_the_crash_isolation_attempts(default: Synth) -> None:
    from imgcaption_aws.settings import AwsSettings

    _, queue = next(
        (logical_id, resource)
        for logical_id, resource in default.template.find_resources("AWS::SQS::Queue").items()
        if "RedrivePolicy" in resource["Properties"]
    )
    max_receive_count = queue["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    deliveries_to_record_a_crash = 1 + AwsSettings().max_attempts + 1
    assert max_receive_count >= deliveries_to_record_a_crash + 1
