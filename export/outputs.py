"""Give a multi-output TFLite model a fixed output order and readable tensor names.

The converter lists a Keras model's outputs in an order of its own (the
signature keeps Keras' order, the subgraph's output list need not) and names
them ``StatefulPartitionedCall_1:0``. The device must never guess which output
is which, so export rewrites the flatbuffer: the subgraph outputs follow the
signature (= Keras) order and each output tensor is renamed to its contract
name. A loader that reads ``get_output_details()[0]`` still gets the class
probabilities; one that reads the names in the metadata gets both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from device.atomic import write_atomic
from export.int8 import ExportError


def name_outputs(tflite_path: str | os.PathLike, names: Sequence[str]) -> list[dict]:
    """Reorder and rename the outputs of ``tflite_path`` in place; return [{"name", "index", "shape"}] in order."""
    from tensorflow.lite.tools import flatbuffer_utils as fb

    path = Path(tflite_path)
    model = fb.read_model(str(path))
    sg = model.subgraphs[0]
    sig = model.signatureDefs[0] if model.signatureDefs else None
    if sig is None or len(sig.outputs) != len(names) or len(sg.outputs) != len(names):
        raise ExportError(f"{path}: expected {len(names)} outputs with a signature, "
                          f"found {len(sg.outputs)} (signature: {sig is not None})")
    # Keras names signature outputs output_0, output_1, ... in the model's own output order.
    ordered = [o.tensorIndex for o in sorted(sig.outputs, key=lambda o: int(o.name.decode().rsplit("_", 1)[1]))]
    sg.outputs = list(ordered)
    for o in sig.outputs:
        o.name = names[ordered.index(o.tensorIndex)].encode()
    for index, name in zip(ordered, names):
        sg.tensors[index].name = name.encode()
    write_atomic(path, bytes(fb.convert_object_to_bytearray(model)))
    return [{"name": name, "index": int(i), "shape": [int(d) for d in sg.tensors[i].shape]}
            for i, name in zip(ordered, names)]
