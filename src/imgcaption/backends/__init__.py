"""Every way a model runs: :func:`registry.load_model` picks one from the model directory and returns a
:class:`base.LoadedModel`.

- :mod:`.vitgpt2_exact` — the lean exact decoder for transformers' vit-gpt2 (the same tokens as ``generate``);
- :mod:`.torch_int8` — int8 weights in a small torch module tree, no transformers at run time;
- :mod:`.onnx_int8` — two int8 ONNX graphs on ONNX Runtime with numpy search and preprocessing, no torch at all;
- :mod:`.export` — ``imgcaption optimize``: writes the artifacts the two int8 backends load.

Nothing here imports the Captioner or an adapter.
"""
