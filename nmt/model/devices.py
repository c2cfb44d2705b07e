"""Device placement: the one round-robin rule and the placement dict of a model.

Model parallelism (tensorflow/nmt, Wu et al. 2016 §3): with `num_gpus=N` and
`base_gpu=B`, recurrent layer i of the encoder and of the decoder runs on device
(i + B) mod N, wrapped in `cells.DeviceWrapper`. The other parts of
`model_placement`'s dict follow from the layers:

    encoder[i]           (i + B) mod N
    encoder_backward[i]  (i + 1 + B) mod N: the backward cell of a bidirectional layer
                         runs on the next device, in parallel with the forward one
                         (the same device when N = 1)
    decoder[i]           (i + B) mod N
    embedding            the device of layer 0, which reads the embeddings
    attention            the device of the decoder layer that queries it: the top one
                         (standard), the bottom one (gnmt)
    softmax              the next free device after the decoder layers, else the top
                         decoder layer's (tensorflow/nmt); the loss runs there too

The placed pieces (cells, attention, softmax projection and loss) run through
`call_on`, so their gradients are built on their devices too, not where
`tape.gradient` is called. Anything else (the bridge, the embedding's gradient, the
optimizer update) goes where TensorFlow's placer puts it; optimizer slots sit with
their variables. N = 0 means no placement.

Without GPUs, N devices are the first N logical CPUs, which `split_cpu(K)` makes
(before TensorFlow initialises its devices) - how the tests run on one CPU. A split
CPU runs one op at a time: with TensorFlow 2.21, oneDNN's batched matmuls corrupt the
heap when two logical CPUs run them at once, as mirrored replicas do (a crash within
a few thousand steps, docs/distributed.md); they share the same cores anyway.
"""
import contextlib

import tensorflow as tf

from nmt.config import ConfigError


class DeviceError(ConfigError):
    """More devices were asked for than exist, or the CPU split came too late."""


def scope(device):
    """`tf.device(device)`, or no change when device is None: `tf.device(None)` would
    clear the enclosing device scope (e.g. a tf.distribute replica's)."""
    return tf.device(device) if device is not None else contextlib.nullcontext()


def call_on(device, fn, *args):
    """fn(*args) on `device`, with its gradient built on `device` too (device None: just
    fn(*args)). args and the result: nests of tensors.

    A `tf.device` scope places forward ops only: TensorFlow 2 builds gradient ops where
    `tape.gradient` is called, and (TF 2.21) while_v2 builds a loop's gradient body
    without colocating its ops with their forward ops, even under `tf.gradients`, whose
    colocation stops at the `While` op. So a placed layer's backward pass would run on
    the default device. Here fn's ops are recorded on a tape of their own and a custom
    gradient replays it under `tf.device(device)`: the same gradient ops, on `device`,
    inside the loop's gradient body as well. Only floating args get gradients.
    """
    if device is None:
        return fn(*args)
    flat_args = [tf.convert_to_tensor(x) for x in tf.nest.flatten(args)]
    watched = [i for i, x in enumerate(flat_args) if x.dtype.is_floating]
    structure = []

    @tf.custom_gradient
    def placed(*flat):
        # persistent: the gradient may be asked for more than once (e.g. an outer
        # persistent tape); the forward tensors are kept alive by the gradient anyway.
        with tf.GradientTape(persistent=True) as tape, tf.device(device):
            tape.watch([flat[i] for i in watched])
            result = fn(*tf.nest.pack_sequence_as(args, list(flat)))
        structure.append(result)
        flat_result = tf.nest.flatten(result)

        def grad(*upstream, variables=()):
            # An output without a gradient (None) gets zeros: tape.gradient takes no None.
            upstream = [tf.zeros_like(y) if dy is None else dy
                        for y, dy in zip(flat_result, upstream)]
            with tf.device(device):
                grads = tape.gradient(flat_result, [flat[i] for i in watched] + list(variables),
                                      output_gradients=upstream)
            input_grads = [None] * len(flat)
            for i, g in zip(watched, grads):
                input_grads[i] = g
            return input_grads, grads[len(watched):]

        return flat_result, grad

    with tf.device(device):  # custom_gradient's identities too
        flat_result = placed(*flat_args)
    return tf.nest.pack_sequence_as(structure[0], flat_result)


def device_for_layer(i, num_gpus, base_gpu=0, device_type="GPU"):
    """Device of layer i: "/device:TYPE:(i + base_gpu) % num_gpus", or None when num_gpus is 0."""
    if num_gpus < 0 or base_gpu < 0 or i < 0:
        raise ValueError(f"layer, num_gpus and base_gpu must be >= 0 "
                         f"(got {i}, {num_gpus}, {base_gpu})")
    if num_gpus == 0:
        return None
    return f"/device:{device_type}:{(i + base_gpu) % num_gpus}"


def device_type_for(num_devices, num_gpus_present=None, num_cpus_present=None):
    """"GPU" if num_devices GPUs exist, else "CPU" if that many logical CPUs do; else a
    DeviceError saying how many there are. Counts default to the logical devices."""
    if num_gpus_present is None:
        num_gpus_present = len(tf.config.list_logical_devices("GPU"))
    if num_cpus_present is None:
        num_cpus_present = len(tf.config.list_logical_devices("CPU"))
    if num_gpus_present:
        if num_devices > num_gpus_present:
            raise DeviceError(f"asked for {num_devices} devices but this machine has "
                              f"{num_gpus_present} GPUs")
        return "GPU"
    if num_devices > num_cpus_present:
        raise DeviceError(f"asked for {num_devices} devices but there is no GPU and "
                          f"{num_cpus_present} logical CPUs (set --num_cpu_devices={num_devices} "
                          f"to split the CPU)")
    return "CPU"


def model_placement(config, num_gpus, base_gpu=0, device_type="GPU"):
    """ModelConfig -> the `placement` dict of Seq2Seq (see the module docstring), or None
    when num_gpus is 0."""
    if num_gpus == 0:
        return None

    def device(i):
        return device_for_layer(i, num_gpus, base_gpu, device_type)

    enc, dec = config.num_encoder_layers, config.num_decoder_layers
    query_layer = 0 if config.attention_architecture == "gnmt" else dec - 1
    return {
        "encoder": [device(i) for i in range(enc)],
        "encoder_backward": [device(i + 1) for i in range(enc)],
        "decoder": [device(i) for i in range(dec)],
        "embedding": device(0),
        "attention": device(query_layer),
        "softmax": device(dec if dec < num_gpus else dec - 1),
    }


def replica_devices(num_devices=0):
    """Devices for MirroredStrategy: the first num_devices GPUs (0: all), or without GPUs
    the first num_devices logical CPUs (0: all)."""
    device_type = device_type_for(num_devices)
    present = tf.config.list_logical_devices(device_type)
    return [d.name for d in present[:num_devices or len(present)]]


def split_cpu(num_devices):
    """Splits the first physical CPU into num_devices logical devices (0: leave it).

    Must run before TensorFlow initialises its devices (first op, first device
    listing); if it is too late, an existing split of the same size is accepted.
    Ops then run one at a time (inter-op parallelism 1, see the module docstring).
    """
    if num_devices <= 0:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        present = len(tf.config.list_logical_devices("CPU"))
        if present != num_devices:
            raise DeviceError(f"cannot split the CPU into {num_devices} devices: TensorFlow "
                              f"already started with {present}; split it at program "
                              "start") from None


def training_placement(model_config, train_config):
    """The trainer's placement: model_placement over num_gpus devices (GPUs, else logical
    CPUs), or None under a strategy (each replica holds the whole model) or num_gpus=0."""
    if train_config.strategy != "none" or train_config.num_gpus == 0:
        return None
    device_type = device_type_for(train_config.num_gpus)
    return model_placement(model_config, train_config.num_gpus, train_config.base_gpu,
                           device_type)
