"""llama.cpp glue: what the library offers and how specchat talks to it.

One model with its context (`model.py`), llama.cpp's start-up and shared threadpool, the devices
and RPC servers it offloads to, saved sequence states (`prompt_cache.py`), the GGUF's chat
template, and token bytes to text. No speculative decoding here: the algorithm in
`engine/speculative/` is built on these pieces."""
