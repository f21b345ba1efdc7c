"""Generative models: time to first token (TTFT), time per output token (TPOT) and output
tokens/s under budgets, in process and against a served OpenAI-compatible endpoint."""

import sys

import pytest
from zoo.tiny_llm import TinyLlama, prompts

import pytest_neuronperf as npf


# A tiny Llama-shaped model (random weights, nothing downloaded), 32 tokens per request, one
# sequence and four generated together. Budgets are service-level objectives: generous for a
# shared 2-core CI machine; tighten them to your own. slo_* define a good request (goodput).
@pytest.mark.neuronperf(scenario="generate", output_tokens=32, batch_sizes=[1, 4], n_models=1,
                        workers_per_model=1, duration=3, ttft_ms_p99=500, tpot_ms_p99=100,
                        slo_ttft_ms=250, slo_tpot_ms=50)
def test_tiny_llama_generates_within_its_budgets(neuronperf):
    reports = neuronperf.benchmark(TinyLlama, prompts(4))
    assert all(r["status"] == "ok" for r in reports)
    assert all(r["output_tokens_avg"] == 32 for r in reports)


# The same model served over HTTP (examples/zoo/llm_server.py: starlette + uvicorn, server-sent
# events like vLLM's). The fixture starts the command on a free port, waits until it answers,
# and stops it with everything it started after the test, pass, fail or Ctrl-C. With vLLM:
# neuronperf_server(["vllm", "serve", MODEL, "--port", "{port}"]).
@pytest.mark.neuronperf(scenario="generate", output_tokens=32, n_models=1,
                        workers_per_model=[1, 2], duration=3, tpot_ms_p99=150)
def test_tiny_llama_served_over_http(neuronperf, neuronperf_server):
    server = neuronperf_server([sys.executable, "-m", "zoo.llm_server", "--port", "{port}"],
                               timeout=300)
    reports = neuronperf.benchmark(npf.Endpoint(server.url + "/v1"), prompts(4))
    assert all(r["status"] == "ok" for r in reports)
