"""A BERT-base-shaped encoder (transformers config, random weights) on (ids, mask) inputs,
sequence length 128; reports carry tokens per second."""

import pytest
from zoo.bert import SEQ_LEN, BertBase, example_inputs


@pytest.mark.neuronperf(batch_sizes=1, n_models=[1, "max"], workers_per_model=1, duration=5)
def test_bert_base(neuronperf):
    reports = neuronperf.benchmark(BertBase, example_inputs(1, SEQ_LEN))
    for report in reports:
        assert report["status"] == "ok", report["error"]
        # one sample is one sequence: tokens/s is what NLP dashboards compare
        report["tokens_per_s"] = report["throughput_avg"] * SEQ_LEN
        report["tokens_per_s_peak"] = report["throughput_peak"] * SEQ_LEN
