"""Files: checkpoints read (torch, safetensors, npz, TorchScript, renamed weights) and written (npz, ONNX), judged before they are read."""
