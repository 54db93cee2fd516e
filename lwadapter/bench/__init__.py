"""Tools and benchmarks beside the pipeline: recipe search on validation users (`tuning`), training throughput of the
proxies (`throughput`), speed of the real LLMs per lever (`llm_speed`), the CPU scale benchmark (`scale`) and the
GPU check (`gpu_check`). Each runs as `python -m lwadapter.bench.<name>`; nothing in the pipeline imports them."""
